import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire

/// What the coordinator does on its timers: heartbeats, metrics, sweeps, rollouts, garbage collection.
extension CoordinatorLoop {
    /// Audit rows deleted per transaction by retention.
    static let auditExpiryBatch = 10_000
    /// Transactions of each kind of collection per `--gc-interval` tick.
    static let collectionBatches = 10

    func onTimers(_ timers: inout CoordinatorTimers, _ sockets: CoordinatorSockets) throws {
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
        // The turn so far may have blocked (a slow run or sweep): the intake went unread meanwhile.
        let judging = ContinuousClock.now
        couldNotRecordReports(for: judging - intakeReadAt, now: judging, cause: "the leader's loop stalled")
        // After a database outage, waves wait until another transaction has shown it back (and set the hold).
        if judging >= judgeWavesFrom, database.isHealthy, timers.due(.rollouts, now) || rolloutsDue, database.isUsable() {
            rolloutsDue = false
            let (readAt, unrecordedLimit) = (intakeReadAt, reportsGoUnrecordedAfter)
            try run([.task("rollouts") { [rollouts, config] batch in
                try rollouts.tick(staleAfter: config.plans.reportStaleAfter, readRecently: { ContinuousClock.now - readAt <= unrecordedLimit }, in: &batch)
            }])
        }
        if timers.due(.collection, now), database.isUsable() {
            _ = try collectInBatches("garbage collection", full: Replicas.batchSize) { [replicas] batch in
                try replicas.collectGarbage(in: &batch)
            }
            if let retention = config.auditRetention {
                let total = try collectInBatches("audit retention", full: Self.auditExpiryBatch) { [queries = intake.queries] batch in
                    try queries.expireAudit(batch.db, olderThan: retention, limit: Self.auditExpiryBatch)
                }
                if total > 0 {
                    logger.info("audit entries expired", metadata: ["count": "\(total)", "retention_seconds": "\(retention.components.seconds)"])
                }
            }
        }
    }

    /// Runs `collect` (one transaction deleting up to `full` rows, returning how many) until one
    /// deletes fewer, at most ``collectionBatches`` times back to back; the rest (a retention just
    /// shortened) waits for the next tick rather than holding the loop. A transaction that did not
    /// commit deleted nothing, and ends the run. - Returns: the rows deleted.
    private func collectInBatches(_ name: String, full: Int, _ collect: @escaping (inout Batch) throws -> Int) throws -> Int {
        var total = 0
        for _ in 0..<Self.collectionBatches where !stop.isStopped && database.isUsable() {
            var deleted = 0
            guard try run([.task(name) { batch in deleted = try collect(&batch) }]) else { break }
            total += deleted
            if deleted < full { break }
        }
        return total
    }
}
