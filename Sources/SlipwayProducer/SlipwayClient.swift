public import SlipwayProto
import SlipwayCore
public import SlipwayThreads
public import SlipwayWire
#if canImport(Glibc)
import Glibc
#endif

/// The library CI calls: submit a build, wait for it, stream its log, cancel it.
///
/// Requests use the Lazy Pirate pattern: send, wait `requestTimeout` for the
/// reply, and on silence throw the socket away, back off and resend, up to
/// `retries` times. Replies are matched to requests by message id, so a late
/// reply to an earlier try is ignored. Resending a submission is safe: the
/// idempotency key makes the coordinator return the same job.
///
/// Socket I/O runs on the client's own thread (the actor is pinned to it).
public actor SlipwayClient {
    /// The thread every request runs on.
    public nonisolated let thread = OwnedThread(name: "producer")
    /// The actor runs on ``thread``.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    /// The coordinator's intake endpoint.
    public nonisolated let endpoint: String
    private let requestTimeout: Duration
    private let retries: Int
    private let sender: String
    private let security: ClientSecurity
    private let codec = WireCodec()
    private let context: ZMQContext
    private var socket: ZMQSocket?

    /// A client for the coordinator at `endpoint` (e.g. `tcp://127.0.0.1:7700`),
    /// authenticated with `security` (CURVE with the caller's `ci` or `operator`
    /// key and the coordinator's public key; `.plain` for a coordinator run `--insecure`).
    public init(endpoint: String, security: ClientSecurity = .plain, requestTimeout: Duration = .seconds(3), retries: Int = 4,
                sender: String = "producer") throws {
        self.endpoint = endpoint
        self.security = security
        self.requestTimeout = requestTimeout
        self.retries = max(1, retries)
        self.sender = sender
        self.context = try ZMQContext()
    }

    /// Submits a build; returns once the job is committed in the coordinator's database.
    public func submit(_ request: Slipway_V1_SubmitBuild) throws -> Slipway_V1_SubmitBuildAck {
        try call(request, expecting: Slipway_V1_SubmitBuildAck.self).reply
    }

    /// The job's current state.
    public func job(_ id: String) throws -> Slipway_V1_JobInfo {
        var query = Slipway_V1_JobQuery()
        query.jobID = id
        return try call(query, expecting: Slipway_V1_JobInfo.self).reply
    }

    /// Recent jobs, newest first.
    public func jobs(_ query: Slipway_V1_JobListQuery) throws -> [Slipway_V1_JobInfo] {
        try call(query, expecting: Slipway_V1_JobList.self).reply.jobs
    }

    /// Artifacts with provenance and replica status (one digest, or the newest of a name, or of all).
    public func artifacts(_ query: Slipway_V1_ArtifactQuery) throws -> [Slipway_V1_ArtifactInfo] {
        try call(query, expecting: Slipway_V1_ArtifactList.self).reply.artifacts
    }

    /// Sets a service's target build: globally, which starts a rollout with the
    /// request's plan (the reply carries it), or at once in the request's regions.
    /// Refused (`ProducerError.rejected`, server code `failed_precondition`) until
    /// the artifact is replicated to every region the target covers. Deploying
    /// the build a rollout already goes to changes nothing, so retries are safe.
    public func deploy(_ request: Slipway_V1_DeployRequest) throws -> Slipway_V1_DeployReply {
        try call(request, expecting: Slipway_V1_DeployReply.self).reply
    }

    /// Sets each target back to the build its last change replaced.
    public func rollback(_ request: Slipway_V1_RollbackRequest) throws -> Slipway_V1_DeployReply {
        try call(request, expecting: Slipway_V1_DeployReply.self).reply
    }

    /// A service's newest rollout (or rollout `id`), with each region's latest wave progress.
    public func rollout(service: String, id: UInt64 = 0) throws -> Slipway_V1_RolloutStatus {
        var query = Slipway_V1_RolloutQuery()
        query.service = service
        query.rolloutID = id
        return try call(query, expecting: Slipway_V1_RolloutStatus.self).reply
    }

    /// Pauses, resumes, promotes or aborts a service's rollout.
    public func control(service: String, _ action: Slipway_V1_RolloutAction, setBy: String) throws -> Slipway_V1_RolloutStatus {
        var request = Slipway_V1_RolloutControl()
        request.service = service
        request.action = action
        request.setBy = setBy
        return try call(request, expecting: Slipway_V1_RolloutStatus.self).reply
    }

    /// A service's targets, deployment history and the regions' agent reports.
    public func status(service: String, historyLimit: UInt32 = 20) throws -> Slipway_V1_ServiceStatus {
        var query = Slipway_V1_ServiceStatusQuery()
        query.service = service
        query.historyLimit = historyLimit
        return try call(query, expecting: Slipway_V1_ServiceStatus.self).reply
    }

    /// Every service (with a target, or reported by a region's machines), by
    /// name: its targets, newest rollout and machines per region.
    public func services() throws -> [Slipway_V1_ServiceStatus] {
        try call(Slipway_V1_ServiceListQuery(), expecting: Slipway_V1_ServiceList.self).reply.services
    }

    /// The audit log: privileged actions and refusals, newest first (an `operator` key only).
    public func audit(_ query: Slipway_V1_AuditQuery) throws -> [Slipway_V1_AuditEntry] {
        try call(query, expecting: Slipway_V1_AuditList.self).reply.entries
    }

    /// Cancels a job (a running one stops when its worker confirms).
    public func cancel(_ id: String, reason: String = "") throws -> Slipway_V1_CancelBuildAck {
        var request = Slipway_V1_CancelBuild()
        request.jobID = id
        request.reason = reason
        return try call(request, expecting: Slipway_V1_CancelBuildAck.self).reply
    }

    /// Log bytes of the job's latest attempt from `offset`.
    public func log(_ id: String, from offset: UInt64) throws -> (header: Slipway_V1_LogData, bytes: [UInt8]) {
        var query = Slipway_V1_LogQuery()
        query.jobID = id
        query.offset = offset
        let (header, payload) = try call(query, expecting: Slipway_V1_LogData.self)
        return (header, payload ?? [])
    }

    /// Waits until the job is succeeded, failed or cancelled, or `timeout` passes.
    /// `update` sees every change of status.
    public nonisolated func wait(for id: String, timeout: Duration = .seconds(3_600),
                                 update: @Sendable (Slipway_V1_JobInfo) -> Void = { _ in }) async throws -> Slipway_V1_JobInfo {
        let deadline = ContinuousClock.now + timeout
        var last: Slipway_V1_JobStatus?
        while true {
            guard let info = try await riding(out: deadline, { try await self.job(id) }) else { continue }
            if info.status != last { update(info); last = info.status }
            if info.status.isTerminal { return info }
            guard ContinuousClock.now < deadline else {
                throw ProducerError(.timedOut, "job \(id) still \(JobStatus(info.status)?.rawValue ?? "unknown") after waiting")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Streams the log of the job's latest attempt to `sink` until the job ends.
    public nonisolated func followLog(_ id: String, timeout: Duration = .seconds(3_600),
                                      sink: @Sendable ([UInt8]) -> Void) async throws -> Slipway_V1_JobInfo {
        let deadline = ContinuousClock.now + timeout
        var offset: UInt64 = 0, attempt: UInt32 = 0
        while true {
            let from = offset
            guard let (header, bytes) = try await riding(out: deadline, { try await self.log(id, from: from) }) else { continue }
            if header.attempt != attempt {
                let first = attempt == 0
                attempt = header.attempt
                if !first {
                    // A retried job starts a new log from its beginning.
                    sink(Array("[slipway] --- attempt \(header.attempt) ---\n".utf8))
                    offset = 0
                    continue
                }
            }
            if !bytes.isEmpty {
                sink(bytes)
                offset += UInt64(bytes.count)
                // A build that prints without pause must not hold the follower past its deadline.
                if ContinuousClock.now < deadline { continue }
            }
            if header.complete { return try await job(id) }
            guard ContinuousClock.now < deadline else {
                let status = (try? await job(id)).map { JobStatus($0.status)?.rawValue ?? "unknown" } ?? "not finished"
                throw ProducerError(.timedOut, "job \(id) still \(status) after waiting")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Runs one poll of a long wait; a coordinator that is briefly unreachable
    /// or unavailable (its database restarting) is waited out until `deadline`.
    /// - Returns: nil after a transient failure (try again), else the value.
    private nonisolated func riding<T: Sendable>(out deadline: ContinuousClock.Instant,
                                                 _ poll: @Sendable () async throws -> T) async throws -> T? {
        do {
            return try await poll()
        } catch let error as ProducerError where error.isTransient && ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            return nil
        }
    }

    /// Closes the socket and stops the client's thread.
    public nonisolated func close() async {
        await dropSocket()
        thread.shutdown()
    }

    private func dropSocket() {
        socket?.close()
        socket = nil
    }

    private func call<Reply: WireBody>(_ body: some WireBody, expecting: Reply.Type) throws -> (reply: Reply, payload: [UInt8]?) {
        let message = WireMessage(body, sender: sender)
        var backoff = Duration.milliseconds(100)
        for attempt in 0..<retries {
            let socket = try connected()
            _ = try socket.send(codec.encode(message), wait: .timeout(requestTimeout))
            let deadline = ContinuousClock.now + requestTimeout
            while ContinuousClock.now < deadline {
                guard let frames = try socket.receive(wait: .timeout(deadline - ContinuousClock.now)) else { break }
                guard let reply = try? codec.decode(frames), reply.envelope.inReplyTo == message.envelope.messageID else {
                    continue // a late reply to an earlier try, or garbage
                }
                if reply.type == .errorReply {
                    let error = (try? reply.body(as: Slipway_V1_ErrorReply.self)) ?? Slipway_V1_ErrorReply()
                    // The coordinator's database is away for a moment: the request did nothing; ask again.
                    if error.code == .unavailable, attempt < retries - 1 { break }
                    throw ProducerError(.rejected, error.message, serverCode: error.code)
                }
                do {
                    return (try reply.body(as: Reply.self), reply.payload)
                } catch {
                    throw ProducerError(.invalidReply, "coordinator sent \(reply.type) where \(Reply.messageType) was expected")
                }
            }
            dropSocket()
            usleep(UInt32(backoff.components.attoseconds / 1_000_000_000_000 + backoff.components.seconds * 1_000_000))
            backoff *= 2
        }
        throw ProducerError(.unreachable, "coordinator unreachable at \(endpoint) (no reply after \(retries) tries)")
    }

    private func connected() throws -> ZMQSocket {
        if let socket { return socket }
        let socket = try ZMQSocket.requestDealer(context: context, connectedTo: endpoint, options: security.options)
        self.socket = socket
        return socket
    }
}

extension Slipway_V1_JobStatus {
    /// True for succeeded, failed and cancelled.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}
