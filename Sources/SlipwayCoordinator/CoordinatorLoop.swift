import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire

/// The coordinator's I/O shell, on one thread: it owns the database
/// connection and the sockets, decodes what arrives into typed requests, runs
/// each turn's requests as one ``Batch`` in one transaction (``Intake``,
/// ``Dispatch``, ``Replicas``, ``Targets`` decide what to write and send),
/// and sends what the batch produced once it has committed.
final class CoordinatorLoop: ServingLoop {
    private let config: CoordinatorConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    /// Dispatch carries log chunks of at most 1 MiB.
    private let dispatchCodec = WireCodec(maxPayloadBytes: 1 << 20)
    private let context: ZMQContext
    /// Answers the CURVE handshakes of the context's sockets (nil when `--insecure`).
    private let zap: ZAPHandler?
    private let authorization: Authorization
    private let db: PGConnection
    private var leadership: Leadership
    private var registry: WorkerRegistry
    private let dispatch: Dispatch
    private let intake: Intake
    private let replicas: Replicas
    private let rollouts: Rollouts
    private let snapshots: Snapshots
    private var sockets: CoordinatorSockets?
    private var intakeRejections = RejectionLog(daemon: "coordinator", socket: "intake")
    private var dispatchRejections = RejectionLog(daemon: "coordinator", socket: "dispatch")
    private var snapshotRejections = RejectionLog(daemon: "coordinator", socket: "snapshot")
    private var lastEventSequence: UInt64 = 0
    private var database = DatabaseHealth()
    /// Requeues decided after a commit (an assignment found undeliverable) that
    /// still need their own transaction; kept until one commits.
    private var pendingActions: [DispatchAction] = []
    /// A batch failed with its outcome unknown: the registry is reconciled with
    /// the database at the next chance.
    private var reconcileSoon = false
    /// A region report arrived: progressing rollouts are judged at once rather
    /// than at the next tick, so each wave waits on the gate as little as possible.
    private var rolloutsDue = false
    private var lastTurn = ContinuousClock.now
    /// Refusals made before a transaction (role checks), written with the next batch.
    private var pendingAudit = PendingAudit()

    /// Checks everything a standby can check (the database URL, that every
    /// endpoint is an address of this machine) and connects to the database,
    /// waiting with back-off while it is down. The sockets are bound on
    /// becoming leader: until then the active coordinator holds them.
    init(config: CoordinatorConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.logger = logger
        self.stop = stop
        let queries = CoordinatorQueries(defaultMaxAttempts: config.defaultMaxAttempts, defaultTimeoutSeconds: config.defaultTimeoutSeconds,
                                         retryBackoff: config.retryBackoff, regions: config.regions, signer: config.security.targetSigner)
        registry = WorkerRegistry(heartbeatInterval: config.heartbeatInterval, liveness: config.liveness)
        dispatch = Dispatch(queries: queries, logger: logger)
        replicas = Replicas(queries: queries, logger: logger, retention: config.artifactRetention)
        rollouts = Rollouts(queries: queries, plans: config.plans, logger: logger)
        intake = Intake(queries: queries, replicas: replicas, targets: Targets(queries: queries, logger: logger), rollouts: rollouts, logger: logger)
        snapshots = Snapshots(sender: config.id, logger: logger)
        context = try ZMQContext()
        authorization = Authorization(security: config.security)
        zap = try config.security.startZAP(context: context, daemon: "coordinator", logger: logger)
        do {
            try PGConnection.checkSyntax(config.databaseURL)
        } catch {
            throw StartupError(setting: "--database-url", reason: "not a PostgreSQL URL: \(error.message)")
        }
        let nextEndpoints = config.next.map { [$0.intake, $0.dispatch, $0.events, $0.snapshot] } ?? []
        for endpoint in [config.intakeEndpoint, config.dispatchEndpoint, config.eventsEndpoint, config.snapshotEndpoint] + nextEndpoints {
            try endpoint.checkBindable()
        }
        leadership = Leadership(url: config.databaseURL, logger: logger, stop: stop)
        db = try leadership.connect()
    }

    var opened: [String: String] {
        var opened = ["intake": "\(config.intakeEndpoint)", "dispatch": "\(config.dispatchEndpoint)",
                      "events": "\(config.eventsEndpoint)", "snapshot": "\(config.snapshotEndpoint)"]
        if let next = config.next {
            opened["next_key"] = next.key.identity.userID
            opened["next_intake"] = "\(next.intake)"
            opened["next_dispatch"] = "\(next.dispatch)"
            opened["next_events"] = "\(next.events)"
            opened["next_snapshot"] = "\(next.snapshot)"
        }
        return opened
    }

    /// A coordinator that took the lock from another (it waited as a standby) but found a
    /// port held hands the lock back and waits again (the holder may be a leader that has
    /// not yet seen it lost the lock, and may take it back); this many take-overs in a row
    /// (each within a minute of the last) failing that way end the process. A first take-over
    /// that found the lock free exits at once: the holder is no leader it replaces.
    static let takeOverAttempts = 3

    /// Waits to lead, leads until stopped; a leader that loses its lock steps down and waits again.
    func serve() throws {
        var portsHeld = 0
        var lastHeld: ContinuousClock.Instant?
        while !stop.isStopped {
            guard leadership.waitUntilLeader(db) else { break }
            do {
                try lead { portsHeld = 0 }
            } catch let lost as Leadership.Lost {
                logger.error("stepping down to standby", metadata: ["reason": "\(lost)"])
                registry = WorkerRegistry(heartbeatInterval: config.heartbeatInterval, liveness: config.liveness)
            } catch let held as CoordinatorSockets.PortHeld {
                // In a row: a failure long after the last one (another leader served between) starts the count again.
                if let lastHeld, ContinuousClock.now - lastHeld > .seconds(60) { portsHeld = 0 }
                lastHeld = .now
                portsHeld += 1
                // A first take-over that found the lock free replaces no leader: the port's holder is something else.
                guard leadership.tookOverFromAnother || portsHeld > 1, portsHeld < Self.takeOverAttempts else { throw held.failure }
                logger.error("cannot take over: a port is still in use; handing the lock back and waiting again",
                             metadata: ["endpoint": "\(held.failure.endpoint.labelled)", "attempt": "\(portsHeld)",
                                        "attempts_left": "\(Self.takeOverAttempts - portsHeld)"])
                leadership.release(db)
                registry = WorkerRegistry(heartbeatInterval: config.heartbeatInterval, liveness: config.liveness)
                // Long enough for a leader that lost its lock only across a reconnect to take it back.
                if leadership.sleep(.seconds(2)) { break }
            }
        }
        logger.info("coordinator stopped")
    }

    /// - Parameter bound: called once every socket is bound.
    private func lead(bound: () -> Void) throws {
        try prepareToLead()
        let sockets = try CoordinatorSockets.takingOver(context: context, config: config, logger: logger) { leadership.sleep($0) }
        bound()
        self.sockets = sockets
        defer {
            sockets.close()
            self.sockets = nil
        }
        logger.info("coordinator active", metadata: ["intake": "\(config.intakeEndpoint)", "adopted_workers": "\(registry.all.count)"])
        let poller = ZMQPoller()
        try poller.add(sockets.intake)
        try poller.add(sockets.dispatch)
        try poller.add(sockets.snapshots)
        // New connections wake the loop: the guards must know them at once.
        for watch in sockets.guards { try poller.add(watch.events) }
        var timers = CoordinatorTimers(now: .now, config: config)
        lastTurn = .now
        while !stop.isStopped {
            sockets.pollGuards()
            // A turn that took long (a slow commit, a paused process): heartbeats may be
            // waiting unread, so nobody's silence during it counts.
            let turnStart = ContinuousClock.now
            if turnStart - lastTurn > .seconds(1) { registry.stalled(for: turnStart - lastTurn, now: turnStart) }
            lastTurn = turnStart
            let ready = try poller.poll(wait: .timeout(min(timers.tick, .milliseconds(100))))
            var work: [CoordinatorWork] = []
            if ready[0].contains(.readable) { try receiveIntake(sockets.intake, into: &work) }
            if ready[1].contains(.readable) { try receiveDispatch(sockets.dispatch, into: &work) }
            if work.isEmpty, !pendingAudit.isEmpty, database.isUsable() { work.append(.task("audit") { _ in }) }
            if !work.isEmpty {
                if try run(work), work.contains(where: \.isRegionReport) { rolloutsDue = true }
            }
            if ready[2].contains(.readable), database.isUsable() {
                do { try snapshots.serve(sockets.snapshots, db: db, authorization: authorization, rejections: &snapshotRejections,
                                             audit: &pendingAudit) } catch { noteDatabase(error) }
            }
            try onTimers(&timers, sockets)
        }
    }

    /// Migrates and adopts the running jobs' workers, retrying while the database is briefly away.
    private func prepareToLead() throws {
        var backoff = Backoff(initial: .milliseconds(200), cap: .seconds(5))
        while true {
            do {
                try Migrator.migrate(db, logger: logger)
                let now = ContinuousClock.now
                // Heartbeats are recorded only while the database works: if none is recent (it was
                // down, or the old leader stuck), nobody's silence is known, and everyone gets a full period.
                let recorded = try dispatch.queries.freshestHeartbeat(db).map { $0 <= config.heartbeatInterval * 2 } ?? false
                for (worker, held) in try dispatch.queries.runningByWorker(db) {
                    registry.adopt(workerID: worker, running: held.attempts, lastSeen: recorded ? now - held.silent : now)
                }
                lastEventSequence = UInt64(try Outbox.lastSequence(db))
                try db.transaction { try leadership.confirm($0) }
                return
            } catch let error as PGError where error.code == .connectionLost || error.code == .connectionFailed {
                logger.warning("database unavailable while taking over; retrying", metadata: ["error": "\(error.oneLine)"])
                if leadership.sleep(backoff.failed()) { throw CancellationError() }
            }
        }
    }

    // MARK: receiving

    private func receiveIntake(_ socket: ZMQSocket, into work: inout [CoordinatorWork]) throws {
        for _ in 0..<256 {
            guard let (peer, message) = try codec.receiveRouted(from: socket, wait: .never, dropped: { intakeRejections.record($0, logger: logger) })
            else { return }
            let id = message.envelope.messageID
            let sender = DaemonSecurity.sender(of: socket)
            do throws(Rejection) {
                if let refusal = authorization.refusal(message.type, from: sender, on: socket) { throw refused(refusal, message.type, sender) }
                let request = try IntakeRequest.decode(message, regions: config.regions, transports: config.repoTransports)
                if let refusal = authorization.refusal(request, from: sender) { throw refused(refusal, message.type, sender) }
                if database.isUsable() {
                    work.append(.intake(peer: peer, id: id, request, sender: sender))
                } else {
                    send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(.unavailable, Self.unavailable), sender: config.id, inReplyTo: id))
                }
            } catch {
                intakeRejections.record(reason: error.code == .permissionDenied ? "permission_denied" : "bad_request", detail: error.message,
                                        logger: logger)
                send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(error.code, error.message), sender: config.id, inReplyTo: id))
            }
        }
    }

    private func receiveDispatch(_ socket: ZMQSocket, into work: inout [CoordinatorWork]) throws {
        for _ in 0..<256 {
            guard let (routingID, message) = try dispatchCodec.receiveRouted(from: socket, wait: .never,
                                                                     dropped: { dispatchRejections.record($0, logger: logger) })
            else { return }
            let sender = DaemonSecurity.sender(of: socket)
            do throws(Rejection) {
                if let refusal = authorization.refusal(message.type, from: sender, on: socket)
                    ?? authorization.refusal(workerRoutingID: routingID, from: sender) {
                    let rejection = refused(refusal, message.type, sender)
                    send(.worker(routingID), WireMessage(Slipway_V1_ErrorReply(rejection.code, rejection.message), sender: config.id,
                                                         inReplyTo: message.envelope.messageID))
                    throw rejection
                }
                let request = try DispatchRequest.decode(message, routingID: routingID)
                // Liveness is what was heard, database or not.
                registry.heard(String(decoding: routingID, as: UTF8.self), routingID: routingID, now: .now)
                if database.isUsable() {
                    work.append(.dispatch(routingID: routingID, request))
                } else {
                    database.deferred += 1  // the worker resends it (results, logs) or repeats it (credit)
                }
            } catch {
                dispatchRejections.record(reason: error.code == .permissionDenied ? "permission_denied" : "bad_request",
                                          detail: error.message, logger: logger)
            }
        }
    }

    static let unavailable = "the coordinator's database is unavailable; retry"

    /// Counts a refusal by role and type, queues it for the audit log, and hands it back to be answered and logged.
    private func refused(_ refusal: Rejection, _ type: Slipway_V1_MessageType, _ sender: Identity?) -> Rejection {
        Authorization.count(type, from: sender)
        pendingAudit.append(AuditRecord(sender, action: "\(type)", object: "", outcome: .refused, detail: refusal.message))
        return refusal
    }

    // MARK: batches

    /// Runs `work` in one transaction, then sends what it produced. Requests are
    /// checked before they get here, so one failing in the database is rare: then
    /// the whole batch rolls back and each request runs again alone (no savepoint
    /// per request in the common case: two round trips each). If the transaction
    /// cannot commit, intake requests are answered `unavailable` and nothing else
    /// leaves: workers resend what matters.
    /// - Returns: whether the transaction committed.
    @discardableResult
    private func run(_ work: [CoordinatorWork]) throws -> Bool {
        var batch = Batch(db: db, registry: registry, sender: config.id)
        let refusals = pendingAudit.take()
        do {
            try db.transaction { db in
                try leadership.confirm(db)
                for item in work { try run(item, in: &batch) }
                if batch.dispatchDue { try dispatch.assignWaiting(in: &batch, lookFirst: false) }
                try intake.queries.writeAudit(db, refusals + batch.audits)
                try batch.writeEventsAndCommit()
            }
        } catch let error as PGError where !error.isConnectionTrouble && work.count > 1 {
            // One request failed in the database: the others must not fail with it.
            for record in refusals { pendingAudit.append(record) }
            var committed = false
            for item in work { committed = try run([item]) || committed }
            return committed
        } catch let error as PGError {
            for record in refusals { pendingAudit.append(record) }
            if !error.isConnectionTrouble {
                // The request itself failed in the database, alone: not an outage.
                logger.error("request failed in the database", metadata: ["error": "\(error.oneLine)"])
                if case .intake(let peer, let id, _, _) = work[0] {
                    let reply = Slipway_V1_ErrorReply(.internal, "the coordinator's database refused this request: \(error.message)")
                    send(.intake(peer), WireMessage(reply, sender: config.id, inReplyTo: id))
                }
                return false
            }
            // With the connection gone during COMMIT the outcome is unknown: check the registry against the database.
            reconcileSoon = true
            noteDatabase(error)
            for case .intake(let peer, let id, _, _) in work {
                send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(.unavailable, Self.unavailable), sender: config.id, inReplyTo: id))
            }
            database.deferred += work.filter { if case .dispatch = $0 { true } else { false } }.count
            return false
        }
        database.succeeded(logger: logger)
        registry = batch.registry
        try deliver(batch)
        return true
    }

    private func run(_ item: CoordinatorWork, in batch: inout Batch) throws {
        switch item {
        case .intake(let peer, let id, let request, let sender): try intake.handle(request, from: peer, sender: sender, id: id, in: &batch)
        case .dispatch(let routingID, let request): try dispatch.handle(request, from: routingID, in: &batch)
        case .task(_, let body): try body(&batch)
        }
        if db.isTransactionFailed { throw PGError(.queryFailed, message: "a statement failed inside the request") }
    }

    /// Sends a committed batch's replies, assignments, events and log acknowledgements.
    private func deliver(_ batch: Batch) throws {
        for refusal in batch.refusals { dispatchRejections.record(reason: "permission_denied", detail: refusal, logger: logger) }
        var undeliverable: [DispatchAction] = []
        for item in batch.outgoing where !send(item.destination, item.message) {
            if let (job, workerID) = item.assignment { undeliverable += registry.undeliverable(job, to: workerID) }
        }
        for item in batch.published {
            _ = try? sockets?.events.send(codec.encode(WireMessage(item.event, sender: config.id, topic: item.topic)), wait: .never)
            lastEventSequence = max(lastEventSequence, UInt64(item.sequence))
        }
        for (key, sequences) in batch.storedLogs {
            var ack = Slipway_V1_LogAck()
            ack.jobID = key.job.jobID
            ack.attempt = UInt32(key.job.attempt)
            ack.sequences = sequences
            send(.worker(key.worker), WireMessage(ack, sender: config.id))
        }
        if !undeliverable.isEmpty {
            pendingActions += undeliverable
            try runPendingActions()
        }
    }

    /// Runs the requeues that need a transaction of their own; they stay pending until one commits.
    private func runPendingActions() throws {
        guard !pendingActions.isEmpty else { return }
        let actions = pendingActions
        if try run([.task("pending requeues") { [dispatch] batch in try dispatch.apply(actions, in: &batch) }]) {
            pendingActions.removeFirst(actions.count)
        }
    }

    /// Sends one message now. - Returns: false if its peer is not connected (or its queue is full).
    @discardableResult
    private func send(_ destination: Outgoing.Destination, _ message: WireMessage) -> Bool {
        guard let sockets else { return false }
        switch destination {
        case .intake(let peer): return (try? sockets.intake.send(codec.encode(message, to: peer), wait: .never)) == true
        case .worker(let peer): return (try? sockets.dispatch.send(codec.encode(message, to: peer), wait: .never)) == true
        }
    }

    private func noteDatabase(_ error: any Error) {
        guard let error = error as? PGError else { return }
        database.failed(error, logger: logger)
    }

    // MARK: timers

    private func onTimers(_ timers: inout CoordinatorTimers, _ sockets: CoordinatorSockets) throws {
        let now = ContinuousClock.now
        if timers.due(.heartbeat, now) {
            var beat = Slipway_V1_CoordinatorHeartbeat()
            beat.coordinatorID = config.id
            beat.lastEventSeq = lastEventSequence
            for worker in registry.all { send(.worker(worker.routingID), WireMessage(beat, sender: config.id)) }
            // Subscribers compare this with what they have: a lost last event shows up here.
            _ = try? sockets.events.send(codec.encode(WireMessage(beat, sender: config.id, topic: "hb")), wait: .never)
        }
        if timers.due(.metrics, now), database.isUsable() {
            do {
                for (state, count) in try dispatch.queries.jobCounts(db) { SlipwayMetrics.jobs(state: state).record(count) }
                for (state, count) in try rollouts.counts(db) { SlipwayMetrics.rollouts(state: state).record(count) }
            } catch {
                noteDatabase(error)
            }
        }
        if timers.due(.sweep, now), database.isUsable() {
            try runPendingActions()
            let reconcile = reconcileSoon || timers.due(.reconcile, now)
            let swept = try run([.task("sweep") { [dispatch] batch in
                if reconcile { try dispatch.reconcile(now: now, in: &batch) }
                try dispatch.sweep(now: now, in: &batch)
                try dispatch.assignWaiting(in: &batch, lookFirst: true)
            }])
            if reconcile, swept { reconcileSoon = false }
            intakeRejections.flush(logger: logger)
            dispatchRejections.flush(logger: logger)
            snapshotRejections.flush(logger: logger)
            database.report(logger: logger)
        }
        if timers.due(.rollouts, now) || rolloutsDue, database.isUsable() {
            rolloutsDue = false
            try run([.task("rollouts") { [rollouts, config] batch in try rollouts.tick(staleAfter: config.plans.reportStaleAfter, in: &batch) }])
        }
        if timers.due(.collection, now), database.isUsable() {
            var deleted = Replicas.batchSize
            while deleted == Replicas.batchSize, !stop.isStopped, database.isUsable() {
                deleted = 0
                try run([.task("garbage collection") { [replicas] batch in deleted = try replicas.collectGarbage(in: &batch) }])
            }
        }
    }
}
