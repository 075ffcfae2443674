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
        if timers.due(.rollouts, now) || rolloutsDue, database.isUsable() {
            rolloutsDue = false
            try run([.task("rollouts") { [rollouts, config] batch in try rollouts.tick(staleAfter: config.plans.reportStaleAfter, in: &batch) }])
        }
        if timers.due(.collection, now), database.isUsable() {
            // At most ``collectionBatches`` transactions of each kind per tick, back to back; the rest
            // (a retention just shortened) waits for the next tick rather than holding the loop.
            var deleted = Replicas.batchSize
            for _ in 0..<Self.collectionBatches where deleted == Replicas.batchSize && !stop.isStopped && database.isUsable() {
                deleted = 0
                // Counted only once committed: a batch that rolled back deleted nothing.
                guard try run([.task("garbage collection") { [replicas] batch in deleted = try replicas.collectGarbage(in: &batch) }]) else { break }
            }
            if let retention = config.auditRetention {
                var expired = Self.auditExpiryBatch, total = 0
                for _ in 0..<Self.collectionBatches where expired == Self.auditExpiryBatch && !stop.isStopped && database.isUsable() {
                    expired = 0
                    guard try run([.task("audit retention") { [queries = intake.queries] batch in
                        expired = try queries.expireAudit(batch.db, olderThan: retention, limit: Self.auditExpiryBatch)
                    }]) else { break }
                    total += expired
                }
                if total > 0 {
                    logger.info("audit entries expired", metadata: ["count": "\(total)", "retention_seconds": "\(retention.components.seconds)"])
                }
            }
        }
    }
}
