import Logging
#if canImport(Glibc)
import Glibc
#endif
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire
import SwiftProtobuf
import SlipwayMetrics

/// The coordinator's I/O loop. Lives on one thread and owns the database
/// connection and all three sockets; the protocol decisions sit in
/// `WorkerRegistry`, the SQL in `CoordinatorQueries`.
final class CoordinatorLoop: ServingLoop {
    /// Session advisory lock held by the active coordinator ("slipcoor").
    static let leaderLockKey: Int64 = 0x736c_6970_636f_6f72

    struct LeadershipLost: Error, CustomStringConvertible {
        var description: String { "lost the coordinator lock after a database reconnect; another coordinator is active" }
    }

    private let config: CoordinatorConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let queries: CoordinatorQueries
    private var registry: WorkerRegistry
    private let context: ZMQContext
    private var db: PGConnection!
    private var intake: ZMQSocket!
    private var dispatch: ZMQSocket!
    private var events: ZMQSocket!
    private var snapshots: ZMQSocket!
    private var leaderReconnects = 0
    private var lastEventSequence: UInt64 = 0
    private var nextJobCount = ContinuousClock.now
    private var intakeRejections = RejectionLog(daemon: "coordinator", socket: "intake")
    private var dispatchRejections = RejectionLog(daemon: "coordinator", socket: "dispatch")
    private var snapshotRejections = RejectionLog(daemon: "coordinator", socket: "snapshot")
    /// Replies, assignments and events held back until the batch's COMMIT: nothing
    /// leaves the coordinator before the state it describes is durable.
    private var outgoing: [Outgoing] = []
    private var batching = false
    /// The newest sequence number written to the outbox by this process.
    private var lastAppendedSequence: Int64 = 0

    private struct Outgoing {
        let socket: ZMQSocket
        let frames: [[UInt8]]
        /// Set for an assignment: requeued if the worker is gone at flush time.
        let assignment: JobAttempt?
        /// An error reply: still sent when the message's work is rolled back.
        let survivesRollback: Bool
    }

    /// A decoded message waiting to be handled in the current batch.
    private struct Inbound {
        let peer: [UInt8]
        let message: WireMessage
        let fromIntake: Bool
    }

    private struct RolledBack: Error {}

    /// Checks everything a standby can check (the database URL, that every
    /// endpoint is an address of this machine) and connects to the database,
    /// waiting with back-off while it is down. The sockets are bound on
    /// becoming leader: until then the active coordinator holds them.
    init(config: CoordinatorConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.logger = logger
        self.stop = stop
        self.queries = CoordinatorQueries(defaultMaxAttempts: config.defaultMaxAttempts,
                                          defaultTimeoutSeconds: config.defaultTimeoutSeconds,
                                          retryBackoff: config.retryBackoff, regions: config.regions)
        self.registry = WorkerRegistry(heartbeatInterval: config.heartbeatInterval, liveness: config.liveness)
        self.context = try ZMQContext()
        do {
            try PGConnection.checkSyntax(config.databaseURL)
        } catch {
            throw StartupError(setting: "--database-url", reason: "not a PostgreSQL URL: \(error.message)")
        }
        for endpoint in [config.intakeEndpoint, config.dispatchEndpoint, config.eventsEndpoint, config.snapshotEndpoint] {
            try endpoint.checkBindable()
        }
        db = try connect()
    }

    var opened: [String: String] {
        ["intake": "\(config.intakeEndpoint)", "dispatch": "\(config.dispatchEndpoint)",
         "events": "\(config.eventsEndpoint)", "snapshot": "\(config.snapshotEndpoint)"]
    }

    func serve() throws {
        guard try becomeLeader() else { return }
        try Migrator.migrate(db, logger: logger)
        try openSockets()
        defer { closeSockets() }
        let now = ContinuousClock.now
        for (worker, attempts) in try queries.runningByWorker(db) {
            registry.adopt(workerID: worker, running: attempts, now: now)
        }
        lastEventSequence = UInt64(try Outbox.lastSequence(db))
        logger.info("coordinator active", metadata: [
            "intake": "\(config.intakeEndpoint)", "dispatch": "\(config.dispatchEndpoint)",
            "events": "\(config.eventsEndpoint)", "adopted_workers": "\(registry.all.count)",
        ])
        try serveLoop()
        logger.info("coordinator stopped")
    }

    // MARK: leadership

    /// Connects, waiting with back-off (0.5 s doubling to 30 s, one log line a
    /// minute) while the server is unreachable.
    /// - Throws: `CancellationError` if asked to stop first.
    private func connect() throws -> PGConnection {
        var backoff = Backoff(initial: .milliseconds(500), cap: .seconds(30))
        var unreachable = RepeatedEvent(interval: .seconds(60))
        while true {
            do {
                let connection = try PGConnection(url: config.databaseURL, logger: logger)
                if backoff.failures > 0 { logger.info("database reachable", metadata: ["failed_attempts": "\(backoff.failures)"]) }
                return connection
            } catch {
                let delay = backoff.failed()
                if let count = unreachable.occurred(now: .now) {
                    logger.error("cannot reach the database; retrying with back-off",
                                 metadata: ["error": "\(error.oneLine)", "attempts": "\(count)", "next_try_in": "\(delay)"])
                }
                if sleepUnlessStopped(delay) { throw CancellationError() }
            }
        }
    }

    /// Waits as a standby until this process holds the coordinator lock. A
    /// database that restarts meanwhile is waited for, not a reason to exit.
    /// - Returns: false if asked to stop first.
    private func becomeLeader() throws -> Bool {
        var announced = false
        var backoff = Backoff(initial: .milliseconds(500), cap: .seconds(10))
        var trouble = RepeatedEvent(interval: .seconds(60))
        while !stop.isStopped {
            do {
                if try db.query("SELECT pg_try_advisory_lock($1) AS ok", [.int(Self.leaderLockKey)]).first?.bool("ok") == true {
                    leaderReconnects = db.reconnectCount
                    return true
                }
                backoff.succeeded()
                if !announced {
                    logger.info("standby: another coordinator holds the lock; waiting to take over")
                    announced = true
                }
                _ = sleepUnlessStopped(.milliseconds(500))
            } catch {
                let delay = backoff.failed()
                if let count = trouble.occurred(now: .now) {
                    logger.warning("standby: database unavailable; waiting", metadata: ["error": "\(error.oneLine)", "attempts": "\(count)"])
                }
                _ = sleepUnlessStopped(delay)
            }
        }
        return false
    }

    /// A reconnect drops the session's advisory lock: take it again or step down.
    private func checkLeadership() throws {
        guard db.reconnectCount != leaderReconnects else { return }
        guard try db.query("SELECT pg_try_advisory_lock($1) AS ok", [.int(Self.leaderLockKey)]).first?.bool("ok") == true else {
            throw LeadershipLost()
        }
        leaderReconnects = db.reconnectCount
        logger.warning("database reconnected; coordinator lock re-acquired")
    }

    /// - Returns: true if stop was requested during the sleep.
    private func sleepUnlessStopped(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if stop.isStopped { return true }
            usleep(50_000)
        }
        return stop.isStopped
    }

    // MARK: sockets

    private func openSockets() throws {
        intake = try ZMQSocket(context: context, type: .router)
        try intake.set(.routerMandatory(true))
        try intake.bind(config.intakeEndpoint)
        dispatch = try ZMQSocket(context: context, type: .router)
        try dispatch.set(.routerMandatory(true))
        // A worker that reconnects keeps its routing id (its worker id) and takes over.
        try dispatch.set(.routerHandover(true))
        try dispatch.bind(config.dispatchEndpoint)
        events = try ZMQSocket(context: context, type: .pub)
        try events.bind(config.eventsEndpoint)
        snapshots = try ZMQSocket(context: context, type: .router)
        // A catch-up reply is many messages at once; do not drop them at the HWM.
        try snapshots.set(.sendHighWaterMark(Self.snapshotPageLimit * 2))
        try snapshots.bind(config.snapshotEndpoint)
    }

    private func closeSockets() {
        intake?.close()
        dispatch?.close()
        events?.close()
        snapshots?.close()
    }

    // MARK: loop

    private func serveLoop() throws {
        let poller = ZMQPoller()
        try poller.add(intake)
        try poller.add(dispatch)
        try poller.add(snapshots)
        let tick = min(config.heartbeatInterval, .milliseconds(500))
        var nextHeartbeat = ContinuousClock.now
        var nextSweep = ContinuousClock.now
        var nextCollection = ContinuousClock.now + config.collectionInterval
        while !stop.isStopped {
            let ready = try poller.poll(wait: .timeout(tick))
            var inbox: [Inbound] = []
            if ready[0].contains(.readable) { try receive(from: intake, intake: true, into: &inbox) }
            if ready[1].contains(.readable) { try receive(from: dispatch, intake: false, into: &inbox) }
            if !inbox.isEmpty { try process(inbox) }
            if ready[2].contains(.readable) { try guarded("snapshot") { try serveSnapshots() } }
            let now = ContinuousClock.now
            if now >= nextHeartbeat {
                nextHeartbeat = now + config.heartbeatInterval
                try guarded("heartbeat") { try heartbeat(now: now) }
            }
            if now >= nextCollection {
                nextCollection = now + config.collectionInterval
                try guarded("garbage collection") { try collectGarbage() }
            }
            if now >= nextSweep {
                nextSweep = now + tick
                try guarded("sweep") {
                    try checkLeadership()
                    try dispatchWaiting()
                }
            }
        }
    }

    /// Handles everything that was ready in one transaction, so one COMMIT (one
    /// fsync) covers many jobs, then sends what the batch produced: nothing
    /// leaves before the state it describes is durable. With several messages,
    /// each runs under a savepoint so a failing one rolls back alone.
    private func process(_ inbox: [Inbound]) throws {
        let saved = (registry, lastAppendedSequence, lastEventSequence)
        batching = true
        do {
            defer { batching = false }
            try db.transaction { db in
                let before = lastAppendedSequence
                if inbox.count == 1 {
                    try handle(inbox[0])
                    if db.isTransactionFailed { throw RolledBack() }
                } else {
                    for item in inbox { try isolated { try handle(item) } }
                }
                if lastAppendedSequence > before { try Outbox.notifyCommitted(db, through: lastAppendedSequence) }
            }
        } catch let error where error is PGError || error is RolledBack {
            if error is PGError {
                logger.error("batch rolled back", metadata: ["error": "\(error)", "messages": "\(inbox.count)"])
            }
            (registry, lastAppendedSequence, lastEventSequence) = saved
            outgoing.removeAll { !$0.survivesRollback }
        }
        flush()
    }

    private func handle(_ item: Inbound) throws {
        try guarded("\(item.message.type)") {
            if item.fromIntake {
                try handleIntake(item.peer, item.message)
            } else {
                try handleDispatch(item.peer, item.message)
            }
        }
    }

    private func flush() {
        let pending = outgoing
        outgoing.removeAll()
        var unreachable: [JobAttempt] = []
        for item in pending {
            do {
                _ = try item.socket.send(item.frames, wait: .never)
            } catch {
                if let job = item.assignment { unreachable.append(job) }
            }
        }
        if !unreachable.isEmpty {
            for job in unreachable { registry.finished(job) }
            try? guarded("requeue unreachable") {
                publish(try queries.requeue(db, lost: unreachable, reason: "worker unreachable at dispatch"))
            }
        }
    }

    /// Runs one message's handler under a savepoint; if it failed, its work is
    /// rolled back and only its error reply (if any) stays queued.
    private func isolated(_ body: () throws -> Void) throws {
        let mark = outgoing.count
        let saved = (registry, lastAppendedSequence, lastEventSequence)
        try db.execute("SAVEPOINT message")
        try body()
        if db.isTransactionFailed {
            try db.execute("ROLLBACK TO SAVEPOINT message")
            let survivors = outgoing[mark...].filter(\.survivesRollback)
            outgoing.removeSubrange(mark...)
            outgoing.append(contentsOf: survivors)
            (registry, lastAppendedSequence, lastEventSequence) = saved
        } else {
            try db.execute("RELEASE SAVEPOINT message")
        }
    }

    /// Takes every message waiting on `socket` (up to 256), dropping bad ones.
    private func receive(from socket: ZMQSocket, intake: Bool, into inbox: inout [Inbound]) throws {
        for _ in 0..<256 {
            let received = try codec.receiveRouted(from: socket, wait: .never) { error in
                if intake { intakeRejections.record(error, logger: logger) } else { dispatchRejections.record(error, logger: logger) }
            }
            guard let (peer, message) = received else { return }
            inbox.append(Inbound(peer: peer, message: message, fromIntake: intake))
        }
    }

    /// Runs a handler; database trouble is logged and survived (the loop must
    /// keep serving), anything else propagates.
    private func guarded(_ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as PGError {
            logger.error("database error", metadata: ["while": "\(what)", "error": "\(error)"])
        } catch let error as WireError {
            logger.warning("bad message body", metadata: ["while": "\(what)", "error": "\(error)"])
        } catch let error as ZMQError where error.code == .hostUnreachable {
            logger.info("peer went away", metadata: ["while": "\(what)"])
        }
    }

    // MARK: intake

    private func handleIntake(_ peer: [UInt8], _ message: WireMessage) throws {
        let id = message.envelope.messageID
        do {
            switch message.type {
            case .submitBuild:
                let request = try message.body(as: Slipway_V1_SubmitBuild.self)
                do {
                    try SubmissionValidator.validate(request)
                } catch {
                    return reply(peer, to: id, error: "invalid_argument", error.message)
                }
                let (ack, published) = try queries.submit(db, request)
                publish(published)
                reply(peer, to: id, ack)
                logger.info("job submitted", metadata: ["job_id": "\(ack.jobID)", "duplicate": "\(ack.duplicate)", "cache_hit": "\(ack.cacheHit)"])
                try dispatchWaiting()
            case .cancelBuild:
                let request = try message.body(as: Slipway_V1_CancelBuild.self)
                let (status, published) = try queries.cancel(db, jobID: request.jobID, reason: request.reason.isEmpty ? "cancelled by user" : request.reason)
                guard let status else { return reply(peer, to: id, error: "not_found", "no job \(SafeText.printable(request.jobID))") }
                publish(published)
                if status == .running, let (worker, job) = registry.holder(of: request.jobID) {
                    abort(job, on: worker.routingID, reason: "cancelled")
                }
                var ack = Slipway_V1_CancelBuildAck()
                ack.jobID = request.jobID
                ack.status = status.proto
                reply(peer, to: id, ack)
            case .jobQuery:
                let request = try message.body(as: Slipway_V1_JobQuery.self)
                guard let info = try queries.jobInfo(db, id: request.jobID) else {
                    return reply(peer, to: id, error: "not_found", "no job \(SafeText.printable(request.jobID))")
                }
                reply(peer, to: id, info)
            case .jobListQuery:
                reply(peer, to: id, try queries.listJobs(db, try message.body(as: Slipway_V1_JobListQuery.self)))
            case .artifactQuery:
                let query = try message.body(as: Slipway_V1_ArtifactQuery.self)
                let list = try queries.artifacts(db, query)
                if !query.digest.isEmpty, list.artifacts.isEmpty {
                    return reply(peer, to: id, error: "not_found", "no artifact \(SafeText.printable(query.digest))")
                }
                reply(peer, to: id, list)
            case .replicationStatus:
                let report = try message.body(as: Slipway_V1_ReplicationStatus.self)
                guard Manifest.isDigest(report.digest), SubmissionValidator.isName(report.region, max: 64) else {
                    return reply(peer, to: id, error: "invalid_argument", "a replication report needs a 64-hex digest and a region name")
                }
                if let problem = unknownRegionProblem([report.region]) { return reply(peer, to: id, error: "invalid_argument", problem) }
                let (recorded, published) = try queries.recordReplica(db, report)
                guard let recorded else {
                    return reply(peer, to: id, error: "not_found", "no artifact \(report.digest); it may have been collected")
                }
                publish(published)
                reply(peer, to: id, recorded)
                if report.state == .complete || report.state == .failed {
                    logger.info("replica report", metadata: ["digest": "\(report.digest)", "region": "\(report.region)",
                                                            "state": "\(report.state)", "error": "\(SafeText.printable(report.error))"])
                }
            case .regionReport:
                let report = try message.body(as: Slipway_V1_RegionReport.self)
                guard SubmissionValidator.isName(report.region, max: 64) else {
                    return reply(peer, to: id, error: "invalid_argument", "a region report needs a region name")
                }
                if let problem = unknownRegionProblem([report.region]) { return reply(peer, to: id, error: "invalid_argument", problem) }
                guard report.counts.count <= 10_000, report.failures.count <= 100 else {
                    return reply(peer, to: id, error: "invalid_argument", "a region report carries at most 10000 counts and 100 failures")
                }
                try queries.recordRegionReport(db, report)
                var ack = Slipway_V1_RegionReport()
                ack.region = report.region
                reply(peer, to: id, ack)
            case .deployRequest:
                let request = try message.body(as: Slipway_V1_DeployRequest.self)
                if let problem = targetRequestProblem(service: request.service, regions: request.regions, setBy: request.setBy) {
                    return reply(peer, to: id, error: "invalid_argument", problem)
                }
                guard Manifest.isDigest(request.artifactDigest) else {
                    return reply(peer, to: id, error: "invalid_argument", "artifact digest must be 64 lowercase hex characters")
                }
                try changeTargets(peer, id, "deploy", service: request.service) {
                    try queries.deploy(db, service: request.service, digest: request.artifactDigest, regions: request.regions, setBy: request.setBy)
                }
            case .rollbackRequest:
                let request = try message.body(as: Slipway_V1_RollbackRequest.self)
                if let problem = targetRequestProblem(service: request.service, regions: request.regions, setBy: request.setBy) {
                    return reply(peer, to: id, error: "invalid_argument", problem)
                }
                try changeTargets(peer, id, "rollback", service: request.service) {
                    try queries.rollback(db, service: request.service, regions: request.regions, setBy: request.setBy)
                }
            case .serviceStatusQuery:
                let query = try message.body(as: Slipway_V1_ServiceStatusQuery.self)
                guard SubmissionValidator.isName(query.service, max: 128) else {
                    return reply(peer, to: id, error: "invalid_argument", "service name must be 1 to 128 characters of A-Z a-z 0-9 . _ -")
                }
                let limit = query.historyLimit == 0 ? 20 : min(Int(query.historyLimit), 1_000)
                reply(peer, to: id, try queries.serviceStatus(db, service: query.service, limit: limit))
            case .logQuery:
                let request = try message.body(as: Slipway_V1_LogQuery.self)
                let limit = request.maxBytes == 0 ? 256 << 10 : min(Int(request.maxBytes), 4 << 20)
                guard let (header, bytes) = try queries.readLog(db, jobID: request.jobID, offset: request.offset, maxBytes: limit) else {
                    return reply(peer, to: id, error: "not_found", "no job \(SafeText.printable(request.jobID))")
                }
                reply(peer, to: id, header, payload: bytes)
            default:
                reply(peer, to: id, error: "unsupported", "the coordinator's intake does not handle \(message.type)")
            }
        } catch let error as PGError {
            logger.error("database error on intake", metadata: ["error": "\(error)"])
            reply(peer, to: id, error: "unavailable", "the coordinator's database failed this request; retry")
        } catch let error as WireError {
            reply(peer, to: id, error: "invalid_argument", error.description)
        }
    }

    /// Why a deploy or rollback request is malformed, or nil.
    private func targetRequestProblem(service: String, regions: [String], setBy: String) -> String? {
        guard SubmissionValidator.isName(service, max: 128) else {
            return "service name must be 1 to 128 characters of A-Z a-z 0-9 . _ -"
        }
        guard regions.count <= 64, Set(regions).count == regions.count, regions.allSatisfy({ SubmissionValidator.isName($0, max: 64) }) else {
            return "regions must be distinct names of A-Z a-z 0-9 . _ -, at most 64"
        }
        if let problem = unknownRegionProblem(regions) { return problem }
        guard (1...128).contains(setBy.utf8.count), SafeText.printable(setBy, limit: 128) == setBy else {
            return "set_by must name who asked: 1 to 128 printable characters"
        }
        return nil
    }

    /// Why one of `regions` is refused: not in `--regions` (any name goes when none are configured).
    private func unknownRegionProblem(_ regions: [String]) -> String? {
        guard !config.regions.isEmpty, let unknown = regions.first(where: { !config.regions.contains($0) }) else { return nil }
        return "region \(unknown) is not one of this coordinator's regions (\(config.regions.joined(separator: ", ")))"
    }

    /// Runs a deploy or rollback; a refusal becomes an error reply with its reason.
    private func changeTargets(_ peer: [UInt8], _ id: String, _ action: String, service: String,
                               _ body: () throws -> (Slipway_V1_DeployReply, [OutboxEvent])) throws {
        do {
            let (answer, published) = try body()
            publish(published)
            reply(peer, to: id, answer)
            for change in answer.targets where !answer.unchanged.contains(change.region) {
                logger.info("target changed", metadata: ["action": "\(action)", "service": "\(service)",
                                                        "region": "\(change.region.isEmpty ? "(global)" : change.region)",
                                                        "digest": "\(change.artifactDigest)", "version": "\(change.version)",
                                                        "set_by": "\(change.setBy)"])
            }
        } catch let refusal as TargetRefusal {
            reply(peer, to: id, error: refusal.code, refusal.message)
        }
    }

    private func reply(_ peer: [UInt8], to requestID: String, _ body: some WireBody, payload: [UInt8]? = nil) {
        let message = WireMessage(body, sender: config.id, inReplyTo: requestID, payload: payload)
        emit(intake, codec.encode(message, to: peer), survivesRollback: body is Slipway_V1_ErrorReply)
    }

    private func reply(_ peer: [UInt8], to requestID: String, error code: String, _ text: String) {
        var body = Slipway_V1_ErrorReply()
        body.code = code
        body.message = text
        reply(peer, to: requestID, body)
    }

    // MARK: dispatch

    private func handleDispatch(_ peer: [UInt8], _ message: WireMessage) throws {
        let now = ContinuousClock.now
        switch message.type {
        case .workRequest:
            let request = try message.body(as: Slipway_V1_WorkRequest.self)
            guard SubmissionValidator.isName(request.workerID, max: 200), request.workerID.utf8.elementsEqual(peer) else {
                return logger.warning("work request with a bad worker id dropped")
            }
            registry.workRequest(workerID: request.workerID, routingID: peer, labels: request.labels, region: request.region,
                                 freeSlots: Int(min(request.freeSlots, 1_024)), assignmentsReceived: request.assignmentsReceived, now: now)
            if let worker = registry.worker(request.workerID) { try assign(to: worker) }
        case .workerHeartbeat:
            let beat = try message.body(as: Slipway_V1_WorkerHeartbeat.self)
            guard beat.workerID.utf8.elementsEqual(peer) else { return }
            if !registry.heartbeat(workerID: beat.workerID, routingID: peer, now: now) {
                let running = Set(beat.running.map { JobAttempt(jobID: $0.jobID, attempt: Int($0.attempt)) })
                registry.adopt(workerID: beat.workerID, running: running, now: now)
            }
        case .logChunk:
            let chunk = try message.body(as: Slipway_V1_LogChunk.self)
            let live = try queries.appendLog(db, chunk, bytes: message.payload ?? [])
            if !live {
                abort(JobAttempt(jobID: chunk.jobID, attempt: Int(chunk.attempt)), on: peer, reason: "attempt is no longer current")
            }
        case .buildResult:
            let result = try message.body(as: Slipway_V1_BuildResult.self)
            let job = JobAttempt(jobID: result.jobID, attempt: Int(result.attempt))
            registry.finished(job)
            let (accepted, published) = try queries.finish(db, result)
            publish(published)
            var ack = Slipway_V1_ResultAck()
            ack.jobID = result.jobID
            ack.attempt = result.attempt
            ack.accepted = accepted
            send(toWorker: peer, ack)
            logger.info("build result", metadata: ["job_id": "\(result.jobID)", "attempt": "\(result.attempt)",
                                                   "outcome": "\(result.outcome)", "accepted": "\(accepted)"])
        default:
            logger.warning("unexpected message on the dispatch socket", metadata: ["type": "\(message.type)"])
        }
    }

    /// Claims as many jobs as the worker has credit for and hands them over.
    private func assign(to worker: WorkerRegistry.Worker) throws {
        guard worker.credit > 0 else { return }
        let started = ContinuousClock.now
        let (claimed, published) = try queries.claim(db, worker: worker, limit: worker.credit)
        SlipwayMetrics.claimLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        publish(published)
        for job in claimed {
            var assignment = Slipway_V1_WorkAssignment()
            assignment.jobID = job.id
            assignment.attempt = UInt32(job.attempt)
            assignment.repoURL = job.repoURL
            assignment.commit = job.commitSHA
            assignment.artifactName = job.artifactName
            assignment.recipe = job.recipe
            assignment.artifactPath = job.artifactPath
            assignment.timeoutSeconds = UInt32(job.timeoutSeconds)
            assignment.leaseExpiresAtUnixMicros = job.leaseExpiresAtUnixMicros
            let attempt = JobAttempt(jobID: job.id, attempt: job.attempt)
            send(toWorker: worker.routingID, assignment, assignment: attempt)
            registry.assigned(attempt, to: worker.id)
            logger.debug("job assigned", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)", "worker": "\(worker.id)"])
        }
    }

    /// Offers queued work to every worker with credit, longest-waiting first.
    private func dispatchWaiting() throws {
        for worker in registry.waiting() { try assign(to: worker) }
    }

    private func heartbeat(now: ContinuousClock.Instant) throws {
        var beat = Slipway_V1_CoordinatorHeartbeat()
        beat.coordinatorID = config.id
        beat.lastEventSeq = lastEventSequence
        for worker in registry.all { send(toWorker: worker.routingID, beat) }
        // Subscribers compare this with what they have: a lost last event shows up here.
        emit(events, codec.encode(WireMessage(beat, sender: config.id, topic: "hb")))
        if now >= nextJobCount {
            nextJobCount = now + .seconds(5)
            for (state, count) in try queries.jobCounts(db) { SlipwayMetrics.jobs(state: state).record(count) }
        }
        for lost in registry.expire(now: now) {
            SlipwayMetrics.workersLost.increment()
            let seconds = Double((config.heartbeatInterval * config.liveness).components.seconds)
            logger.warning("worker lost", metadata: ["worker": "\(lost.id)", "jobs": "\(lost.running.count)"])
            publish(try queries.requeue(db, lost: Array(lost.running), reason: "worker lost: no heartbeat for \(Int(seconds)) s"))
        }
        let (overdue, published) = try queries.expireOverdue(db)
        publish(published)
        for job in overdue {
            if let (worker, _) = registry.holder(of: job.jobID) { abort(job, on: worker.routingID, reason: "timed out") }
            registry.finished(job)
        }
    }

    /// Deletes expired artifacts in batches and tells every region to drop them.
    private func collectGarbage() throws {
        guard let retention = config.artifactRetention else { return }
        let seconds = Int(retention.components.seconds)
        while true {
            let batch = 100  // artifacts per transaction
            let deleted = try queries.collectGarbage(db, retentionSeconds: seconds, limit: batch)
            if deleted.isEmpty { return }
            publish(deleted)
            logger.info("artifacts collected", metadata: ["count": "\(deleted.count)", "retention_seconds": "\(seconds)"])
            if deleted.count < batch || stop.isStopped { return }
        }
    }

    private func abort(_ job: JobAttempt, on peer: [UInt8], reason: String) {
        var abort = Slipway_V1_AbortJob()
        abort.jobID = job.jobID
        abort.attempt = UInt32(job.attempt)
        abort.reason = reason
        send(toWorker: peer, abort)
    }

    private func send(toWorker peer: [UInt8], _ body: some WireBody, assignment: JobAttempt? = nil) {
        emit(dispatch, codec.encode(WireMessage(body, sender: config.id), to: peer), assignment: assignment)
    }

    /// Sends now, or after COMMIT when inside a batch.
    private func emit(_ socket: ZMQSocket, _ frames: [[UInt8]], assignment: JobAttempt? = nil, survivesRollback: Bool = false) {
        outgoing.append(Outgoing(socket: socket, frames: frames, assignment: assignment, survivesRollback: survivesRollback))
        if !batching { flush() }
    }

    // MARK: events

    /// Most events sent in answer to one snapshot request; the subscriber asks again for more.
    static let snapshotPageLimit: Int32 = 10_000

    /// Answers catch-up requests from the outbox: every event after the asked-for
    /// number, then `SnapshotEnd` with the newest committed number.
    private func serveSnapshots() throws {
        for _ in 0..<64 {
            guard let frames = try? snapshots.receive(wait: .never, maxFrames: 4) else { return }
            guard let (peer, message) = try? codec.decodeRouted(frames), message.type == .snapshotRequest,
                  let request = try? message.body(as: Slipway_V1_SnapshotRequest.self) else {
                snapshotRejections.record(reason: "not_a_snapshot_request", detail: "only snapshot requests are served here", logger: logger)
                continue
            }
            var after = Int64(clamping: request.afterSequence)
            var sent: Int32 = 0
            while sent < Self.snapshotPageLimit {
                let page = try Outbox.events(db, after: after, limit: 1_000)
                if page.isEmpty { break }
                for stored in page {
                    var event = try Slipway_V1_Event(serializedBytes: stored.payload)
                    event.sequence = UInt64(stored.sequence)
                    let reply = WireMessage(event, sender: config.id, topic: stored.topic, inReplyTo: message.envelope.messageID)
                    _ = try? snapshots.send(codec.encode(reply, to: peer), wait: .never)
                    after = stored.sequence
                    sent += 1
                }
            }
            var end = Slipway_V1_SnapshotEnd()
            end.lastSequence = UInt64(try Outbox.lastSequence(db))
            _ = try? snapshots.send(codec.encode(WireMessage(end, sender: config.id, inReplyTo: message.envelope.messageID), to: peer), wait: .never)
        }
    }

    private func publish(_ published: [OutboxEvent]) {
        for item in published {
            lastAppendedSequence = max(lastAppendedSequence, item.sequence)
            let message = WireMessage(item.event, sender: config.id, topic: item.topic)
            emit(events, codec.encode(message))
            lastEventSequence = max(lastEventSequence, UInt64(item.sequence))
        }
    }
}
