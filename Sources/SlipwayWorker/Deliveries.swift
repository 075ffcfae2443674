/// What a worker still owes the coordinator, until it says it has it: the log
/// chunks and the result of each attempt. A pure state machine; the worker
/// loop feeds it what builds produce and what the coordinator acknowledges,
/// and sends what ``due(now:)`` hands back.
///
/// A result that reaches the coordinator while its database is down is not
/// recorded there, so it is resent (every ``resendAfter``) until a `ResultAck`
/// arrives; the same for log chunks and `LogAck`. A result waits until its log
/// chunks are acknowledged (at most ``logWait``), so a job never ends with the
/// end of its log missing. Unacknowledged log bytes are capped per attempt
/// (``logBudget``); a chunk past the cap is sent once and not kept.
struct Deliveries {
    /// A build attempt, as the coordinator fences it.
    struct Attempt: Hashable, Comparable {
        let jobID: String
        let attempt: UInt32

        static func < (lhs: Attempt, rhs: Attempt) -> Bool { (lhs.jobID, lhs.attempt) < (rhs.jobID, rhs.attempt) }
    }

    private struct Pending {
        let frames: [[UInt8]]
        let size: Int
        var sentAt: ContinuousClock.Instant?
    }

    private struct PendingResult {
        let frames: [[UInt8]]
        let producedAt: ContinuousClock.Instant
        var sentAt: ContinuousClock.Instant?
    }

    /// How long to wait for an acknowledgement before sending again.
    let resendAfter: Duration
    /// How long a result waits for its log chunks to be acknowledged.
    let logWait: Duration
    /// Unacknowledged log bytes kept per attempt.
    let logBudget: Int
    private var logs: [Attempt: [UInt64: Pending]] = [:]
    private var results: [Attempt: PendingResult] = [:]
    /// Log chunks not kept because their attempt was over budget (sent once only).
    private(set) var logChunksNotKept = 0

    init(resendAfter: Duration = .seconds(3), logWait: Duration = .seconds(10), logBudget: Int = 8 << 20) {
        self.resendAfter = resendAfter
        self.logWait = logWait
        self.logBudget = logBudget
    }

    /// Nothing is owed.
    var isEmpty: Bool { logs.isEmpty && results.isEmpty }

    /// Attempts whose result is not acknowledged yet: the worker still holds them.
    var unacknowledgedResults: Set<Attempt> { Set(results.keys) }

    /// A log chunk a build produced; ``due(now:)`` sends it.
    /// - Returns: false when the attempt is over its budget: the chunk is not
    ///   kept, and the caller sends it once itself.
    mutating func log(_ attempt: Attempt, sequence: UInt64, frames: [[UInt8]]) -> Bool {
        let size = frames.reduce(0) { $0 + $1.count }
        let kept = logs[attempt, default: [:]].values.reduce(0) { $0 + $1.size }
        guard kept + size <= logBudget else {
            logChunksNotKept += 1
            if logs[attempt]?.isEmpty == true { logs[attempt] = nil }
            return false
        }
        logs[attempt, default: [:]][sequence] = Pending(frames: frames, size: size, sentAt: nil)
        return true
    }

    /// An attempt's result, to send once its log is acknowledged.
    mutating func result(_ attempt: Attempt, frames: [[UInt8]], now: ContinuousClock.Instant) {
        results[attempt] = PendingResult(frames: frames, producedAt: now, sentAt: nil)
    }

    /// The coordinator stored these chunks.
    mutating func logAcknowledged(_ attempt: Attempt, sequences: [UInt64]) {
        for sequence in sequences { logs[attempt]?[sequence] = nil }
        if logs[attempt]?.isEmpty == true { logs[attempt] = nil }
    }

    /// The coordinator recorded the result (or found it stale). Its log chunks
    /// still unacknowledged stay owed: after a database outage the result can be
    /// recorded before them, and the coordinator still stores (and in any case
    /// acknowledges) each, so they end.
    mutating func resultAcknowledged(_ attempt: Attempt) {
        results[attempt] = nil
    }

    /// After a new connection: everything is sent again at once.
    mutating func resendAll() {
        for attempt in logs.keys {
            for sequence in logs[attempt]!.keys { logs[attempt]![sequence]!.sentAt = nil }
        }
        for attempt in results.keys { results[attempt]!.sentAt = nil }
    }

    /// The messages to send now: chunks never sent or unacknowledged for
    /// ``resendAfter``, in sequence order, then results that may go.
    mutating func due(now: ContinuousClock.Instant) -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        for attempt in logs.keys.sorted() {
            for sequence in logs[attempt]!.keys.sorted() where isDue(logs[attempt]![sequence]!.sentAt, now) {
                out.append(logs[attempt]![sequence]!.frames)
                logs[attempt]![sequence]!.sentAt = now
            }
        }
        for attempt in results.keys.sorted() {
            let pending = results[attempt]!
            let logDone = logs[attempt] == nil || now - pending.producedAt >= logWait
            guard logDone, isDue(pending.sentAt, now) else { continue }
            out.append(pending.frames)
            results[attempt]!.sentAt = now
        }
        return out
    }

    private func isDue(_ sentAt: ContinuousClock.Instant?, _ now: ContinuousClock.Instant) -> Bool {
        sentAt.map { now - $0 >= resendAfter } ?? true
    }
}
