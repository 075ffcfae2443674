import CSystemShims
public import SlipwayWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent keys the region's tracker vouched for, as an agent's piece server
/// admits them: a region of 10,000 machines cannot list every machine's key in
/// every machine's trust folder, but its tracker already admits them all (the
/// region's trust folder is the one list of its agents).
///
/// A client key the agent's own trust folder does not hold is looked up here;
/// an unknown key is queued for the agent loop to ask the tracker about
/// (``PeerKeyQuery``), and its handshake waits for the answer (``ZAPHandler``).
/// A verdict is kept ``freshFor``; a trusted key whose verdict went stale
/// stays admitted while it is asked about again, so a key removed from the
/// region's trust folder is refused within about that long, for new
/// handshakes and for what comes over connections already open.
public final class VouchedKeys: Sendable {
    /// What is known about a key.
    public enum Verdict: Sendable, Equatable {
        /// The tracker vouched for it as this agent.
        case trusted(Identity)
        /// The tracker does not admit it as an agent of this region.
        case refused
        /// Not answered yet: asked, or about to be.
        case asking
    }

    /// How long a verdict holds before the tracker is asked again.
    public static let freshFor: Duration = .seconds(60)
    /// How long an unanswered question waits before it is asked again (the tracker may have lost it).
    public static let askAgainAfter: Duration = .seconds(2)
    /// Keys asked about in one query, as the tracker accepts them.
    public static let perQuery = 64
    /// Verdicts kept at most (the oldest go first): past this, a flood of
    /// unknown keys costs the agent questions, not memory.
    public static let capacity = 65_536

    private struct Entry {
        var verdict: Verdict
        var answeredAt: ContinuousClock.Instant?
        var askedAt: ContinuousClock.Instant?
        var queued = false
    }

    private struct State {
        var entries: [CurveKey: Entry] = [:]
        /// Keys to ask about, oldest first, each once.
        var queue: [CurveKey] = []
        var lastSweep: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// Readable while questions wait: the agent loop polls it with its sockets, so a
    /// handshake waits for one round trip to the tracker, not for the loop's next turn.
    public let wakeDescriptor: Int32

    /// - Throws: if the wake descriptor cannot be made (the agent must not serve then).
    public init() throws(AuthError) {
        wakeDescriptor = slipway_wake_open()
        guard wakeDescriptor >= 0 else { throw AuthError("eventfd failed: \(String(cString: strerror(errno)))") }
    }

    deinit { _ = Glibc.close(wakeDescriptor) }

    /// What is known about `key`; queues a question when nothing is, or when a verdict went stale.
    public func verdict(_ key: CurveKey, now: ContinuousClock.Instant = .now) -> Verdict {
        state.withLock { state in
            guard var entry = state.entries[key] else {
                if state.entries.count >= Self.capacity { Self.sweep(&state, now: now) }
                guard state.entries.count < Self.capacity else { return .refused }
                state.entries[key] = Entry(verdict: .asking, queued: true)
                state.queue.append(key)
                slipway_wake_signal(wakeDescriptor)
                return .asking
            }
            let stale = entry.answeredAt.map { now - $0 >= Self.freshFor } ?? false
            let notAskedLately = entry.askedAt.map { now - $0 >= Self.askAgainAfter } ?? true
            if stale || entry.answeredAt == nil, notAskedLately, !entry.queued {
                entry.queued = true
                state.entries[key] = entry
                state.queue.append(key)
                slipway_wake_signal(wakeDescriptor)
            }
            // A stale refusal is asked again before anyone is admitted on it; a stale trust holds meanwhile.
            if stale, entry.verdict == .refused { return .asking }
            return entry.verdict
        }
    }

    /// The keys to ask the tracker about now, at most ``perQuery``, marked asked.
    public func questions(now: ContinuousClock.Instant = .now) -> [CurveKey] {
        state.withLock { state in
            if state.queue.count <= Self.perQuery { slipway_wake_clear(wakeDescriptor) }
            let asked = Array(state.queue.prefix(Self.perQuery))
            state.queue.removeFirst(asked.count)
            for key in asked {
                state.entries[key]?.askedAt = now
                state.entries[key]?.queued = false
            }
            return asked
        }
    }

    /// The tracker's verdict on `key`: `identity` when it vouched for it. A verdict on a key
    /// nobody asked about is ignored, and so is one that vouches for anything but an agent.
    public func answered(_ key: CurveKey, vouchedFor identity: Identity?, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            guard var entry = state.entries[key], entry.askedAt != nil else { return }
            entry.verdict = if let identity, identity.role == .agent { .trusted(identity) } else { .refused }
            entry.answeredAt = now
            entry.askedAt = nil
            state.entries[key] = entry
        }
    }

    /// Keys with a verdict or a question, for metrics and tests.
    public var count: Int { state.withLock { $0.entries.count } }

    /// At capacity, at most once per ``freshFor``: drops every stale verdict and every
    /// question unanswered that long (a tracker that never answers must not fill the table).
    private static func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        if let last = state.lastSweep, now - last < freshFor { return }
        state.lastSweep = now
        state.entries = state.entries.filter { _, entry in
            entry.queued || (entry.answeredAt ?? entry.askedAt).map { now - $0 < freshFor } ?? true
        }
    }
}
