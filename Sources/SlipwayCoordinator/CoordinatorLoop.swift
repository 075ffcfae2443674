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
    let config: CoordinatorConfig
    let logger: Logger
    let stop: StopSignal
    let codec = WireCodec()
    /// Dispatch carries log chunks of at most 1 MiB.
    let dispatchCodec = WireCodec(maxPayloadBytes: 1 << 20)
    let context: ZMQContext
    /// Answers the CURVE handshakes of the context's sockets (nil when `--insecure`).
    let zap: ZAPHandler?
    let authorization: Authorization
    let db: PGConnection
    var leadership: Leadership
    var registry: WorkerRegistry
    let dispatch: Dispatch
    let intake: Intake
    let replicas: Replicas
    let rollouts: Rollouts
    let snapshots: Snapshots
    var sockets: CoordinatorSockets?
    var intakeRejections = RejectionLog(daemon: "coordinator", socket: "intake")
    var dispatchRejections = RejectionLog(daemon: "coordinator", socket: "dispatch")
    var snapshotRejections = RejectionLog(daemon: "coordinator", socket: "snapshot")
    var lastEventSequence: UInt64 = 0
    var database = DatabaseHealth()
    /// Requeues decided after a commit (an assignment found undeliverable) that
    /// still need their own transaction; kept until one commits.
    var pendingActions: [DispatchAction] = []
    /// A batch failed with its outcome unknown: the registry is reconciled with
    /// the database at the next chance.
    var reconcileSoon = false
    /// A region report arrived: progressing rollouts are judged at once rather
    /// than at the next tick, so each wave waits on the gate as little as possible.
    var rolloutsDue = false
    var lastTurn = ContinuousClock.now
    /// Waves are not judged before this: see ``couldNotRecordReports(for:now:cause:)``.
    var judgeWavesFrom = ContinuousClock.now
    /// When the loop last read its intake.
    var intakeReadAt = ContinuousClock.now
    /// How long the regions take to report again once they can: a report that went
    /// unanswered is re-sent after 3 s, on a fresh connection; with room.
    static let reportCatchUp: Duration = .seconds(6)
    /// How old a live region's latest report can be when the leader stops recording:
    /// regions refresh every 5 s, and a report sent into the gap times out after 3 s.
    static let reportLag: Duration = .seconds(8)
    /// Refusals made before a transaction (role checks), written with the next batch.
    var pendingAudit = PendingAudit()
    /// What each source may still add to the audit log this minute.
    var auditBudget = AuditBudget()

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
                database = DatabaseHealth()  // an outage it led through is not the next leadership's
            } catch let held as CoordinatorSockets.PortHeld {
                // In a row: a failure long after the last one (another leader served between) starts the count again.
                if let lastHeld, ContinuousClock.now - lastHeld > .seconds(60) { portsHeld = 0 }
                lastHeld = .now
                portsHeld += 1
                // A first take-over that found the lock free replaces no leader: the port's holder is something else.
                guard leadership.tookOverFromAnother || portsHeld > 1, portsHeld < Self.takeOverAttempts else { throw held.failure }
                logger.error("cannot take over: a port is still in use; handing the lock back and waiting again",
                             metadata: ["endpoint": "\(held.failure.endpoint.labelled)", "reason": "\(held.failure.reason)", "attempt": "\(portsHeld)",
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
        intakeReadAt = lastTurn
        judgeWavesFrom = lastTurn + Self.reportCatchUp
        while !stop.isStopped {
            sockets.pollGuards()
            let ready = try poller.poll(wait: .timeout(min(timers.tick, .milliseconds(100))))
            readingIntake(now: .now)
            var work: [CoordinatorWork] = []
            if ready[0].contains(.readable) { try receiveIntake(sockets.intake, into: &work) }
            if ready[1].contains(.readable) { try receiveDispatch(sockets.dispatch, into: &work) }
            if work.isEmpty, !pendingAudit.isEmpty || auditBudget.summaryDue(now: .now), database.isUsable() { work.append(.task("audit") { _ in }) }
            if !work.isEmpty {
                if try run(work), work.contains(where: \.isRegionReport) { rolloutsDue = true }
            }
            if ready[2].contains(.readable), database.isUsable() {
                do { try snapshots.serve(sockets.snapshots, db: db, authorization: authorization, rejections: &snapshotRejections,
                                             audit: &pendingAudit) } catch { noteDatabase(error) }
            }
            noteStall(now: .now)
            try onTimers(&timers, sockets)
        }
    }

    /// A turn that took long (a slow commit, a paused process): heartbeats may be
    /// waiting unread, so nobody's silence during it counts. Looked at just before
    /// the timers that judge silence, so a stall anywhere in the turn (even inside
    /// the wait) is caught before it counts.
    private func noteStall(now: ContinuousClock.Instant) {
        let gap = now - lastTurn
        lastTurn = now
        if gap > .seconds(1) { registry.stalled(for: gap, now: now) }
    }

    /// The intake (where region reports arrive) is read at `now`: a long time
    /// since the last read (a stall anywhere in the loop, inside the wait too)
    /// left reports unrecorded.
    private func readingIntake(now: ContinuousClock.Instant) {
        couldNotRecordReports(for: now - intakeReadAt, now: now, cause: "the leader's loop stalled")
        intakeReadAt = now
    }

    /// A gap in reading the intake longer than this could make a live region's report look stale.
    var reportsGoUnrecordedAfter: Duration { max(Self.reportLag, config.plans.reportStaleAfter - Self.reportLag) }

    /// The leader could not record region reports for `gap` (its intake went
    /// unread, its database was away). The reports it holds are older by that
    /// much, and regions whose reports went unanswered re-send them only on a
    /// fresh connection: judged at once, a wave could find every region stale
    /// and pause. So when the gap could have made a live region's report look
    /// stale, waves wait ``reportCatchUp``; shorter gaps hold nothing back.
    func couldNotRecordReports(for gap: Duration, now: ContinuousClock.Instant, cause: String) {
        guard gap > reportsGoUnrecordedAfter else { return }
        let holding = judgeWavesFrom > now
        judgeWavesFrom = max(judgeWavesFrom, now + Self.reportCatchUp)
        guard !holding else { return }
        logger.warning("region reports went unrecorded; waves are judged again once the regions have reported",
                       metadata: ["cause": "\(cause)", "seconds": "\(gap.components.seconds)", "judging_in": "\(Self.reportCatchUp)"])
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
}
