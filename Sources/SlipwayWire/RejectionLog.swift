public import Logging
import SlipwayCore
import SlipwayMetrics

/// Accounts for the messages one socket drops before handling them: each is
/// counted at once in `slipway_messages_rejected_total` by reason, and the log
/// gets one summary line per interval (by reason, with the last detail) instead
/// of a line per message, so a peer sending garbage cannot flood the log.
public struct RejectionLog {
    /// The daemon and socket, as metric labels and in the summary line.
    public let daemon: String, socket: String
    private var counts: [String: Int] = [:]
    private var lastDetail = ""
    private var gate: RepeatedEvent
    /// Messages dropped since start.
    public private(set) var total = 0

    /// A log for `socket` of `daemon`, writing at most one line per `interval`.
    public init(daemon: String, socket: String, interval: Duration = .seconds(60)) {
        self.daemon = daemon
        self.socket = socket
        self.gate = RepeatedEvent(interval: interval)
    }

    /// Counts one dropped message.
    public mutating func record(_ error: WireError, logger: Logger, now: ContinuousClock.Instant = .now) {
        record(reason: error.code.rawValue, detail: error.detail, logger: logger, now: now)
    }

    /// Counts one dropped message for `reason` (a metric label: lowercase, underscores).
    public mutating func record(reason: String, detail: String, logger: Logger, now: ContinuousClock.Instant = .now) {
        SlipwayMetrics.rejected(daemon: daemon, socket: socket, reason: reason)
        total += 1
        counts[reason, default: 0] += 1
        lastDetail = SafeText.printable(detail, limit: 200)
        if gate.occurred(now: now) != nil { write(logger) }
    }

    /// Writes the summary of what was dropped since the last line, if the interval allows.
    public mutating func flush(logger: Logger, now: ContinuousClock.Instant = .now) {
        if gate.flush(now: now) != nil { write(logger) }
    }

    private mutating func write(_ logger: Logger) {
        guard !counts.isEmpty else { return }
        let reasons = counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        logger.warning("dropped bad messages", metadata: [
            "socket": "\(socket)", "count": "\(counts.values.reduce(0, +))", "reasons": "\(reasons)",
            "last": "\(lastDetail)", "total": "\(total)"])
        counts.removeAll()
    }
}
