/// When the coordinator's periodic work is due.
struct CoordinatorTimers {
    enum Kind: CaseIterable {
        /// Heartbeats to workers and on the event PUB.
        case heartbeat
        /// Lost workers, overdue builds, queued work for idle workers.
        case sweep
        /// Queue-depth gauges.
        case metrics
        /// Garbage collection of old artifacts.
        case collection
        /// The registry checked against what the database says runs where.
        case reconcile
        /// Progressing rollouts judged on the regions' latest reports.
        case rollouts
    }

    /// The longest the loop waits in a poll.
    let tick: Duration
    private let intervals: [Kind: Duration]
    private var next: [Kind: ContinuousClock.Instant]

    init(now: ContinuousClock.Instant, config: CoordinatorConfig) {
        tick = min(config.heartbeatInterval, .milliseconds(500))
        intervals = [.heartbeat: config.heartbeatInterval, .sweep: tick, .metrics: .seconds(5), .collection: config.collectionInterval,
                     .reconcile: .seconds(10), .rollouts: .seconds(1)]
        next = [.heartbeat: now, .sweep: now, .metrics: now, .collection: now + config.collectionInterval, .reconcile: now + .seconds(10), .rollouts: now]
    }

    /// Whether `kind` is due at `now`; if so, schedules its next run.
    mutating func due(_ kind: Kind, _ now: ContinuousClock.Instant) -> Bool {
        guard now >= next[kind]! else { return false }
        next[kind] = now + intervals[kind]!
        return true
    }
}
