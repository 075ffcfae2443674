import SlipwayCore
import Logging
import SlipwayProto
import SlipwayThreads
import SlipwayWire

/// The worker's I/O loop: owns the DEALER to the coordinator and the inproc
/// PULL that running builds report through. Builds run on threads of their own.
final class WorkerLoop: ServingLoop {
    private struct Running {
        let attempt: UInt32
        let control: BuildControl
        let thread: OwnedThread
    }

    private let config: WorkerConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private let outboxEndpoint: String
    private var coordinator: ZMQSocket!
    private var outbox: ZMQSocket!
    private var running: [String: Running] = [:]
    private var assignmentsReceived: UInt64 = 0
    private var lastHeard = ContinuousClock.now
    private var labels: [String: String]
    private var rejections = RejectionLog(daemon: "worker", socket: "coordinator")

    init(config: WorkerConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        self.outboxEndpoint = "inproc://worker-outbox-\(WireMessage.newMessageID())"
        var labels = config.labels
        // Defaults only: a label given on the command line wins.
        var defaults = ["os": "linux", "region": config.region]
        #if arch(x86_64)
        defaults["arch"] = "x86_64"
        #elseif arch(arm64)
        defaults["arch"] = "arm64"
        #endif
        for (key, value) in defaults where labels[key] == nil {
            labels[key] = value
        }
        self.labels = labels
        try StartupCheck.writableDirectory(config.workDirectory, setting: "--work-dir")
        outbox = try ZMQSocket(context: context, type: .pull)
        try outbox.bind(outboxEndpoint)
        try connect()
    }

    var opened: [String: String] {
        ["worker": config.id, "slots": "\(config.slots)", "labels": labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
         "coordinator": "\(config.coordinatorEndpoint)", "store": "\(config.storeEndpoint)", "work_dir": config.workDirectory]
    }

    func serve() throws {
        defer {
            coordinator?.close()
            outbox?.close()
        }
        var nextHeartbeat = ContinuousClock.now
        var drainDeadline: ContinuousClock.Instant?
        while true {
            if stop.isStopped, drainDeadline == nil {
                // Stop taking work; builds in flight end as retryable so they run elsewhere.
                drainDeadline = .now + .seconds(10)
                for build in running.values { build.control.abort(.shutdown) }
                logger.info("worker draining", metadata: ["builds": "\(running.count)"])
            }
            // Draining ends when the builds are done and the coordinator has their results (or at the deadline).
            if let deadline = drainDeadline, (running.isEmpty && deliveries.isEmpty) || ContinuousClock.now > deadline { break }

            let poller = ZMQPoller()
            try poller.add(coordinator)
            try poller.add(outbox)
            let ready = try poller.poll(wait: .timeout(.milliseconds(100)))
            if ready[0].contains(.readable) { try drainCoordinator() }
            if ready[1].contains(.readable) { try drainOutbox() }

            let now = ContinuousClock.now
            for frames in deliveries.due(now: now) { _ = try? coordinator.send(frames, wait: .never) }
            if now >= nextHeartbeat {
                nextHeartbeat = now + config.heartbeatInterval
                sendHeartbeat()
                if now - lastHeard > config.heartbeatInterval * config.liveness, now >= nextReconnect {
                    // Silent for a while: a fresh socket, tried less and less often, said once a minute.
                    nextReconnect = now + reconnectBackoff.failed()
                    if let attempts = silence.occurred(now: now) {
                        logger.warning("no answer from the coordinator; reconnecting", metadata: [
                            "coordinator": "\(config.coordinatorEndpoint)", "silent_for": "\(now - lastHeard)", "attempts": "\(attempts)"])
                    }
                    coordinator.close()
                    try connect(resetSilence: false)
                    deliveries.resendAll()
                }
            }
        }
        for build in running.values { build.thread.shutdown() }
        logger.info("worker stopped")
    }

    private var freeSlots: Int { stop.isStopped ? 0 : max(0, config.slots - running.count) }

    /// Log chunks and results the coordinator has not acknowledged yet.
    private var deliveries = Deliveries()

    /// The leader we last heard a heartbeat from.
    private var coordinatorID: String?

    /// Reconnection after silence: back-off between fresh sockets, and one log line a minute.
    private var reconnectBackoff = Backoff(initial: .seconds(1), cap: .seconds(30))
    private var nextReconnect = ContinuousClock.now
    private var silence = RepeatedEvent(interval: .seconds(60))

    private func connect(resetSilence: Bool = true) throws {
        coordinator = try ZMQSocket(context: context, type: .dealer)
        try coordinator.set(.routingID(Array(config.id.utf8)))
        try coordinator.set(.linger(.seconds(2)))
        for option in config.coordinatorSecurity.options { try coordinator.set(option) }
        try coordinator.connect(config.coordinatorEndpoint)
        if resetSilence { lastHeard = .now }
        requestWork()
    }

    /// Something arrived from the coordinator.
    private func heard() {
        let now = ContinuousClock.now
        if reconnectBackoff.failures > 0 {
            logger.info("coordinator answering again", metadata: ["coordinator": "\(config.coordinatorEndpoint)", "silent_for": "\(now - lastHeard)"])
            reconnectBackoff.succeeded()
            silence.reset()
        }
        lastHeard = now
    }

    private func requestWork() {
        var request = Slipway_V1_WorkRequest()
        request.workerID = config.id
        request.labels = labels
        request.freeSlots = UInt32(freeSlots)
        request.region = config.region
        request.assignmentsReceived = assignmentsReceived
        send(request)
    }

    /// Liveness, and everything a work request says, so a coordinator that
    /// lost this worker's registration or credit rebuilds it from one beat.
    private func sendHeartbeat() {
        var beat = Slipway_V1_WorkerHeartbeat()
        beat.workerID = config.id
        beat.freeSlots = UInt32(freeSlots)
        beat.labels = labels
        beat.region = config.region
        beat.assignmentsReceived = assignmentsReceived
        let held = Set(running.map { Deliveries.Attempt(jobID: $0.key, attempt: $0.value.attempt) }).union(deliveries.unacknowledgedResults)
        beat.running = held.sorted().map { attempt in
            var job = Slipway_V1_RunningJob()
            job.jobID = attempt.jobID
            job.attempt = attempt.attempt
            return job
        }
        send(beat)
    }

    private func send(_ body: some WireBody, payload: [UInt8]? = nil) {
        _ = try? coordinator.send(codec.encode(WireMessage(body, sender: config.id, payload: payload)), wait: .never)
    }

    private func drainCoordinator() throws {
        let before = assignmentsReceived
        // Confirm new assignments at once (a heartbeat lists what this worker holds, with the
        // credit left): a coordinator that loses this worker knows which jobs it got.
        defer { if assignmentsReceived != before { sendHeartbeat() } }
        for _ in 0..<256 {
            let received = try coordinator.receive(wait: .never) {
                rejections.record(reason: "too_many_frames", detail: "a message from the coordinator had too many frames", logger: logger)
            }
            guard let frames = received else { return }
            heard()
            let message: WireMessage
            do {
                message = try codec.decode(frames)
            } catch {
                rejections.record(error, logger: logger)
                continue
            }
            do {
                switch message.type {
                case .workAssignment: start(try message.body(as: Slipway_V1_WorkAssignment.self))
                case .abortJob:
                    let abort = try message.body(as: Slipway_V1_AbortJob.self)
                    if let build = running[abort.jobID], build.attempt == abort.attempt {
                        logger.info("aborting build", metadata: ["job_id": "\(abort.jobID)", "reason": "\(abort.reason.name)",
                                                                 "detail": "\(SafeText.printable(abort.detail, limit: 200))"])
                        build.control.abort(abort.reason == .cancelled ? .cancelled : .superseded)
                    }
                case .coordinatorHeartbeat:
                    let beat = try message.body(as: Slipway_V1_CoordinatorHeartbeat.self)
                    if let known = coordinatorID, known != beat.coordinatorID {
                        // A standby took over and heard our heartbeat before we noticed the silence:
                        // it knows us only as an adopted worker, without labels or credit. Register again.
                        logger.info("new coordinator leader; registering again", metadata: ["coordinator": "\(beat.coordinatorID)"])
                        requestWork()
                    }
                    coordinatorID = beat.coordinatorID
                case .resultAck:
                    let ack = try message.body(as: Slipway_V1_ResultAck.self)
                    deliveries.resultAcknowledged(Deliveries.Attempt(jobID: ack.jobID, attempt: ack.attempt))
                case .logAck:
                    let ack = try message.body(as: Slipway_V1_LogAck.self)
                    deliveries.logAcknowledged(Deliveries.Attempt(jobID: ack.jobID, attempt: ack.attempt), sequences: ack.sequences)
                default: logger.warning("unexpected message from the coordinator", metadata: ["type": "\(message.type)"])
                }
            } catch {
                logger.warning("bad message body from the coordinator", metadata: ["error": "\(error)"])
            }
        }
    }

    private func start(_ assignment: Slipway_V1_WorkAssignment) {
        assignmentsReceived += 1
        guard running[assignment.jobID] == nil, running.count < config.slots, !stop.isStopped else {
            // Credit accounting makes this rare; hand the job back rather than queue it here.
            var result = Slipway_V1_BuildResult()
            result.jobID = assignment.jobID
            result.attempt = assignment.attempt
            result.outcome = .retryable
            result.error = "worker \(config.id) had no free slot"
            result.region = config.region
            send(result)
            return
        }
        let control = BuildControl()
        let thread = OwnedThread(name: "build")
        running[assignment.jobID] = Running(attempt: assignment.attempt, control: control, thread: thread)
        logger.info("build started", metadata: ["job_id": "\(assignment.jobID)", "attempt": "\(assignment.attempt)"])
        let job = BuildJob(assignment: assignment, config: config, context: context, outbox: outboxEndpoint,
                           control: control, logger: logger)
        thread.execute { job.run() }
    }

    /// Takes what builds produced: log chunks and results go to ``deliveries``,
    /// which sends them and keeps them until the coordinator acknowledges them.
    private func drainOutbox() throws {
        let now = ContinuousClock.now
        for _ in 0..<256 {
            guard let frames = try outbox.receive(wait: .never), let message = try? codec.decode(frames) else { return }
            switch message.type {
            case .logChunk:
                guard let chunk = try? message.body(as: Slipway_V1_LogChunk.self) else { continue }
                let attempt = Deliveries.Attempt(jobID: chunk.jobID, attempt: chunk.attempt)
                if !deliveries.log(attempt, sequence: chunk.sequence, frames: frames) {
                    _ = try? coordinator.send(frames, wait: .never)
                }
            case .buildResult:
                guard let result = try? message.body(as: Slipway_V1_BuildResult.self) else { continue }
                deliveries.result(Deliveries.Attempt(jobID: result.jobID, attempt: result.attempt), frames: frames, now: now)
                if let build = running.removeValue(forKey: result.jobID) {
                    build.thread.shutdown()
                }
                logger.info("build finished", metadata: ["job_id": "\(result.jobID)", "outcome": "\(result.outcome)"])
                requestWork()
            default:
                continue
            }
        }
    }
}
