import SlipwayCore

/// One event as a webhook receives it: its outbox number (the delivery id) and the body.
public struct WebhookEvent: Sendable, Hashable {
    public let sequence: Int64
    public let type: String
    public let body: [UInt8]

    public init(sequence: Int64, type: String, body: [UInt8]) {
        self.sequence = sequence
        self.type = type
        self.body = body
    }

    /// What the receiver deduplicates by: the same for every attempt of this event.
    public var deliveryID: String { "slipway-event-\(sequence)" }
}

/// The delivery of one webhook's events, as a pure state machine: in outbox
/// order, each until the receiver answers 2xx (at least once: a receiver may
/// see an event again after a crash, never an event skipped), with back-off
/// while it fails. The I/O shell (``WebhookLoop``) feeds it what it fetched and
/// how each POST went, and does what ``next(now:)`` says.
public struct WebhookDelivery: Sendable {
    /// What to do next.
    public enum Action: Sendable, Equatable {
        /// Read the notable events after this number (at most a page).
        case fetch(after: Int64)
        /// POST this event; `attempt` counts from 1.
        case send(WebhookEvent, attempt: Int)
        /// Nothing to do for this long (a new event or a stop may end the wait sooner).
        case wait(Duration)
    }

    /// The last event the receiver acknowledged (what the cursor row holds).
    public private(set) var cursor: Int64
    /// The outbox is read up to here: events the webhook does not want are not read twice.
    public private(set) var scanned: Int64
    private var queue: [WebhookEvent] = []
    private var backoff: Backoff
    private var retryAt: ContinuousClock.Instant?
    private var idleSince: ContinuousClock.Instant?
    private let idlePoll: Duration

    /// Starts after `cursor`; retries wait `firstRetry`, doubling up to `maxRetry`; with nothing
    /// new, the outbox is read again after `idlePoll` (or when woken).
    public init(cursor: Int64, firstRetry: Duration = .seconds(1), maxRetry: Duration = .seconds(300), idlePoll: Duration = .seconds(2)) {
        self.cursor = cursor
        self.scanned = cursor
        self.backoff = Backoff(initial: firstRetry, cap: maxRetry)
        self.idlePoll = idlePoll
    }

    /// Events fetched and not yet acknowledged.
    public var backlog: Int { queue.count }
    /// Failed attempts of the event at the head of the queue.
    public var failures: Int { backoff.failures }

    public func next(now: ContinuousClock.Instant) -> Action {
        if let retryAt, now < retryAt { return .wait(retryAt - now) }
        if let head = queue.first { return .send(head, attempt: backoff.failures + 1) }
        if let idleSince, now - idleSince < idlePoll { return .wait(idlePoll - (now - idleSince)) }
        return .fetch(after: scanned)
    }

    /// The events the webhook wants among those after ``scanned`` up to `through` (all of the
    /// outbox read, wanted or not), oldest first.
    public mutating func fetched(_ events: [WebhookEvent], through: Int64, now: ContinuousClock.Instant) {
        queue = events.filter { $0.sequence > scanned && $0.sequence <= max(through, scanned) }.sorted { $0.sequence < $1.sequence }
        scanned = max(scanned, through)
        idleSince = queue.isEmpty ? now : nil
    }

    /// The outbox has something new: read it without waiting out the idle poll.
    public mutating func woken() { idleSince = nil }

    /// The receiver acknowledged the head event. - Returns: the new cursor, to persist.
    @discardableResult
    public mutating func delivered(_ sequence: Int64) -> Int64 {
        guard let head = queue.first, head.sequence == sequence else { return cursor }
        queue.removeFirst()
        cursor = sequence
        backoff.succeeded()
        retryAt = nil
        return cursor
    }

    /// The head event's POST failed (an error or a status other than 2xx). - Returns: the wait before the next try.
    @discardableResult
    public mutating func failed(now: ContinuousClock.Instant) -> Duration {
        let delay = backoff.failed()
        retryAt = now + delay
        return delay
    }
}
