import Logging
import SlipwayCore
import SlipwayStore
import SlipwayThreads
#if canImport(Glibc)
import Glibc
#endif

/// Which coordinator is active: the one holding a PostgreSQL session advisory
/// lock. A standby waits for it; the leader re-takes it after every reconnect
/// before anything else commits (a reconnect drops session locks, and another
/// coordinator may have taken it meanwhile).
struct Leadership {
    /// Session advisory lock held by the active coordinator ("slipcoor").
    static let lockKey: Int64 = 0x736c_6970_636f_6f72

    /// The lock was lost across a reconnect: another coordinator is active.
    struct Lost: Error, CustomStringConvertible {
        var description: String { "lost the coordinator lock after a database reconnect; another coordinator is active" }
    }

    private let url: String
    private let logger: Logger
    private let stop: StopSignal
    /// The connection's reconnect count when the lock was last known held.
    private var heldSince: Int?
    /// The last ``waitUntilLeader(_:)`` found another coordinator holding the lock at first.
    private(set) var tookOverFromAnother = false

    init(url: String, logger: Logger, stop: StopSignal) {
        self.url = url
        self.logger = logger
        self.stop = stop
    }

    /// Connects, waiting with back-off (0.5 s doubling to 30 s, one log line a
    /// minute) while the server is unreachable.
    /// - Throws: `CancellationError` if asked to stop first.
    func connect() throws -> PGConnection {
        var backoff = Backoff(initial: .milliseconds(500), cap: .seconds(30))
        var unreachable = RepeatedEvent(interval: .seconds(60))
        while true {
            do {
                let connection = try PGConnection(url: url, logger: logger)
                if backoff.failures > 0 { logger.info("database reachable", metadata: ["failed_attempts": "\(backoff.failures)"]) }
                return connection
            } catch {
                let delay = backoff.failed()
                if let count = unreachable.occurred(now: .now) {
                    logger.error("cannot reach the database; retrying with back-off",
                                 metadata: ["error": "\(error.oneLine)", "attempts": "\(count)", "next_try_in": "\(delay)"])
                }
                if sleep(delay) { throw CancellationError() }
            }
        }
    }

    /// Waits as a standby until this process holds the lock. A database that
    /// restarts meanwhile is waited for, not a reason to exit.
    /// - Returns: false if asked to stop first.
    mutating func waitUntilLeader(_ db: PGConnection) -> Bool {
        var announced = false
        var backoff = Backoff(initial: .milliseconds(500), cap: .seconds(10))
        var trouble = RepeatedEvent(interval: .seconds(60))
        tookOverFromAnother = false
        while !stop.isStopped {
            do {
                if try tryLock(db) {
                    heldSince = db.reconnectCount
                    return true
                }
                tookOverFromAnother = true
                backoff.succeeded()
                if !announced {
                    logger.info("standby: another coordinator holds the lock; waiting to take over")
                    announced = true
                }
                _ = sleep(.milliseconds(500))
            } catch {
                let delay = backoff.failed()
                if let count = trouble.occurred(now: .now) {
                    logger.warning("standby: database unavailable; waiting", metadata: ["error": "\(error.oneLine)", "attempts": "\(count)"])
                }
                _ = sleep(delay)
            }
        }
        return false
    }

    /// Makes sure this process still holds the lock; call inside every
    /// transaction before it commits. After a reconnect the lock is taken again
    /// (inside the transaction: a session lock survives its COMMIT or ROLLBACK).
    /// - Throws: ``Lost`` when another coordinator holds it now.
    mutating func confirm(_ db: PGConnection) throws {
        guard db.reconnectCount != heldSince else { return }
        guard try tryLock(db) else { throw Lost() }
        heldSince = db.reconnectCount
        logger.warning("database reconnected; coordinator lock re-acquired")
    }

    /// Gives the lock up (stepping down to standby).
    mutating func release(_ db: PGConnection) {
        _ = try? db.query("SELECT pg_advisory_unlock($1)", [.int(Self.lockKey)])
        heldSince = nil
    }

    private func tryLock(_ db: PGConnection) throws(PGError) -> Bool {
        try db.query("SELECT pg_try_advisory_lock($1) AS ok", [.int(Self.lockKey)]).first?.bool("ok") == true
    }

    /// Sleeps up to `duration`, waking early to stop.
    /// - Returns: true if stop was requested.
    func sleep(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if stop.isStopped { return true }
            usleep(50_000)
        }
        return stop.isStopped
    }
}
