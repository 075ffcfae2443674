/// Exponential back-off with a cap, for retrying something that keeps failing
/// (a database that is down, a coordinator that does not answer): the first
/// retry waits `initial`, each further one twice as long, never more than `cap`.
public struct Backoff: Sendable, Hashable {
    /// The first delay.
    public let initial: Duration
    /// The longest delay.
    public let cap: Duration
    /// Failures since the last success.
    public private(set) var failures = 0

    /// A back-off starting at `initial`, doubling up to `cap`.
    public init(initial: Duration, cap: Duration) {
        precondition(initial > .zero && cap >= initial, "back-off needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
    }

    /// Records a failure; returns how long to wait before the next try.
    public mutating func failed() -> Duration {
        failures += 1
        var delay = initial
        for _ in 1..<min(failures, 64) {
            delay *= 2
            if delay >= cap { return cap }
        }
        return min(delay, cap)
    }

    /// Records a success: the next failure waits `initial` again.
    public mutating func succeeded() { failures = 0 }
}

/// Decides when a condition that keeps recurring deserves a log line: the first
/// time, then at most once per `interval`, saying how often it happened since
/// the last line. Garbage from a peer or a refused report every second then
/// costs one line a minute, not one per occurrence.
public struct RepeatedEvent: Sendable, Hashable {
    /// The least time between two lines.
    public let interval: Duration
    private var lastLine: ContinuousClock.Instant?
    private var unreported = 0

    /// A gate that opens at most once per `interval`.
    public init(interval: Duration) { self.interval = interval }

    /// Counts one occurrence at `now`.
    /// - Returns: nil to stay quiet, or the number of occurrences to report in a
    ///   line now (this one included).
    public mutating func occurred(now: ContinuousClock.Instant) -> Int? {
        unreported += 1
        guard lastLine.map({ now - $0 >= interval }) ?? true else { return nil }
        lastLine = now
        defer { unreported = 0 }
        return unreported
    }

    /// Occurrences counted but not yet reported; a summary at a quiet moment
    /// can report and clear them with ``flush(now:)``.
    public var pending: Int { unreported }

    /// Reports what is pending, if the interval allows a line now.
    public mutating func flush(now: ContinuousClock.Instant) -> Int? {
        guard unreported > 0, lastLine.map({ now - $0 >= interval }) ?? true else { return nil }
        lastLine = now
        defer { unreported = 0 }
        return unreported
    }

    /// The condition ended: the next occurrence is reported at once.
    public mutating func reset() {
        lastLine = nil
        unreported = 0
    }
}

extension Duration {
    /// The whole nanoseconds in this duration (saturating).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : scaled &+ attoseconds / 1_000_000_000
    }

    /// This duration in seconds, with its fraction.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
