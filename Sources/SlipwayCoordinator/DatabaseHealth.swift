import Logging
import SlipwayCore
import SlipwayStore

/// Whether the coordinator should touch its database now. After a failure it
/// backs off (0.2 s doubling to 1 s): intake requests meanwhile are answered
/// `unavailable` at once, worker messages are left for the workers to resend,
/// and the trouble is logged once a minute with counts.
///
/// The cap is short because each retry is also the leader's check of its lock:
/// a standby may take the lock the moment the database is back, and waits only
/// ``CoordinatorSockets/takeOverWait`` for this leader to see that and release
/// its ports. (Chaos saw a 10 s cap leave a new leader unable to bind for 5 s.)
struct DatabaseHealth {
    private var backoff = Backoff(initial: .milliseconds(200), cap: .seconds(1))
    private var retryAt: ContinuousClock.Instant?
    private var trouble = RepeatedEvent(interval: .seconds(60))
    private var lastError = ""
    /// The first failure since the last commit.
    private var failingSince: ContinuousClock.Instant?
    /// Worker messages not handled because the database was unavailable since the last line.
    var deferred = 0

    /// False while backing off after a failure.
    func isUsable(now: ContinuousClock.Instant = .now) -> Bool {
        retryAt.map { now >= $0 } ?? true
    }

    /// Whether nothing failed since the last commit.
    var isHealthy: Bool { failingSince == nil }

    /// A statement or commit failed: wait before the next try.
    mutating func failed(_ error: PGError, logger: Logger, now: ContinuousClock.Instant = .now) {
        failingSince = failingSince ?? now
        let delay = backoff.failed()
        retryAt = now + delay
        lastError = error.oneLine
        if let count = trouble.occurred(now: now) { write(logger, failures: count, delay: delay) }
    }

    /// A transaction committed: the database is back.
    /// - Returns: how long it was unavailable, when this commit ends an outage.
    @discardableResult
    mutating func succeeded(logger: Logger, now: ContinuousClock.Instant = .now) -> Duration? {
        guard let since = failingSince else { return nil }
        failingSince = nil
        logger.notice("database available again", metadata: ["failed_attempts": "\(backoff.failures)", "deferred_worker_messages": "\(deferred)"])
        backoff.succeeded()
        trouble.reset()
        retryAt = nil
        deferred = 0
        return now - since
    }

    /// Writes the pending summary if a minute has passed.
    mutating func report(logger: Logger, now: ContinuousClock.Instant = .now) {
        if let count = trouble.flush(now: now) { write(logger, failures: count, delay: nil) }
    }

    private mutating func write(_ logger: Logger, failures: Int, delay: Duration?) {
        logger.error("database unavailable; intake answered 'unavailable', worker messages left to be resent", metadata: [
            "error": "\(lastError)", "failures": "\(failures)", "deferred_worker_messages": "\(deferred)",
            "next_try_in": "\(delay.map { "\($0)" } ?? "-")"])
        deferred = 0
    }
}
