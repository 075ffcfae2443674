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
/// A client key the agent's own trust folder does not hold is looked up here
/// (keys the tracker named in peer lists are already known, see ``listed(_:as:now:)``);
/// an unknown key is queued for the agent loop to ask the tracker about
/// (`PeerKeyQuery`), and its handshake waits for the answer (``ZAPHandler``).
/// A trust is fresh for ``trustedFor``; then it is asked again and holds
/// meanwhile, up to ``trustHoldsFor``, after which nothing is admitted on it
/// (handshakes wait, messages over open connections are refused) until the
/// tracker vouches again. A refusal holds ``refusedFor``, so a machine that
/// connected before its certificate reached the region is soon served.
///
/// Bounded against a peer that shows a new random key in every handshake: at
/// most ``maxQuestions`` keys wait for an answer and ``capacity`` verdicts are
/// kept (4,096 and 65,536 by default); past either, a new key is refused at once as ``Verdict/busy``
/// (verdicts in use are never dropped for it), and the tracker is asked at most
/// ``perQuery`` keys per ``queryInterval``.
public final class VouchedKeys: Sendable {
    /// What is known about a key.
    public enum Verdict: Sendable, Equatable {
        /// The tracker vouched for it as this agent.
        case trusted(Identity)
        /// The tracker does not admit it as an agent of this region.
        case refused
        /// Not answered yet: asked, or about to be.
        case asking
        /// Too many keys wait for an answer, or too many verdicts are kept: refuse it now.
        case busy
    }

    /// How long a trust is fresh.
    public static let trustedFor: Duration = .seconds(60)
    /// How long a trust holds while it is asked again, when the tracker does not answer.
    public static let trustHoldsFor: Duration = .seconds(90)
    /// How long a refusal holds.
    public static let refusedFor: Duration = .seconds(10)
    /// How long an unanswered question waits before it is asked again (the tracker may have lost it).
    public static let askAgainAfter: Duration = .seconds(2)
    /// Keys asked about in one query, as the tracker accepts them.
    public static let perQuery = 64
    /// Queries at most this often: 640 keys a second at most per agent to its tracker.
    public static let queryInterval: Duration = .milliseconds(100)

    /// What is kept about a key: ``Verdict/busy`` is an answer to a handshake, never kept.
    private enum Standing {
        case trusted(Identity)
        case refused
        case unanswered
    }

    private struct Entry {
        var standing: Standing = .unanswered
        var answeredAt: ContinuousClock.Instant?
        var askedAt: ContinuousClock.Instant?
        var queued = false
    }

    private struct State {
        var entries: [CurveKey: Entry] = [:]
        /// Keys to ask about, oldest first (an entry answered meanwhile is skipped).
        var queue: [CurveKey] = []
        /// Keys queued or asked, and not answered yet.
        var outstanding: Set<CurveKey> = []
        var lastQuery: ContinuousClock.Instant?
        var lastSweep: ContinuousClock.Instant?
        var generation = 0
    }

    private let state = Mutex(State())
    /// Verdicts kept at most.
    public let capacity: Int
    /// Keys waiting for an answer at most.
    public let maxQuestions: Int
    /// Readable while questions wait: the agent loop polls it with its sockets, so a
    /// handshake waits for one round trip to the tracker, not for the loop's next turn.
    public let wakeDescriptor: Int32

    /// - Throws: if the wake descriptor cannot be made (the agent must not serve then).
    public init(capacity: Int = 65_536, maxQuestions: Int = 4_096) throws(AuthError) {
        self.capacity = capacity
        self.maxQuestions = maxQuestions
        wakeDescriptor = slipway_wake_open()
        guard wakeDescriptor >= 0 else { throw AuthError("eventfd failed: \(String(cString: strerror(errno)))") }
    }

    deinit { _ = Glibc.close(wakeDescriptor) }

    /// What a handshake with `key` gets; queues a question when nothing is known,
    /// or when what is known is going stale.
    public func verdict(_ key: CurveKey, now: ContinuousClock.Instant = .now) -> Verdict {
        state.withLock { state in
            guard let entry = state.entries[key] else {
                if state.entries.count >= capacity { sweep(&state, now: now) }
                guard state.entries.count < capacity, state.outstanding.count < maxQuestions else { return .busy }
                state.entries[key] = Entry()
                ask(key, &state, now: now)
                return .asking
            }
            switch (entry.standing, entry.answeredAt.map { now - $0 }) {
            case (.trusted(let identity), let age?) where age < Self.trustedFor:
                return .trusted(identity)
            case (.trusted(let identity), let age?) where age < Self.trustHoldsFor:
                ask(key, &state, now: now)
                return .trusted(identity)
            case (.refused, let age?) where age < Self.refusedFor:
                return .refused
            default:
                ask(key, &state, now: now)
                return .asking
            }
        }
    }

    /// Whether a message from `identity`, over a connection its handshake opened with
    /// `key` on the tracker's word, is still admitted: only while that trust holds.
    public func admits(_ key: CurveKey, as identity: Identity, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            guard let entry = state.entries[key], case .trusted(identity) = entry.standing, let answeredAt = entry.answeredAt,
                  now - answeredAt < Self.trustHoldsFor else {
                // Revoked, expired or dropped: asked again, so a trust that comes back admits again.
                if state.entries[key] == nil, state.entries.count < capacity, state.outstanding.count < maxQuestions {
                    state.entries[key] = Entry()
                }
                if state.entries[key] != nil { ask(key, &state, now: now) }
                return false
            }
            if now - answeredAt >= Self.trustedFor { ask(key, &state, now: now) }
            return true
        }
    }

    /// The keys to ask the tracker about now: at most ``perQuery``, none within
    /// ``queryInterval`` of the last query.
    public func questions(now: ContinuousClock.Instant = .now) -> [CurveKey] {
        state.withLock { state in
            // Cleared first: what stays queued is asked at the loop's next turn, which comes within half a second.
            slipway_wake_clear(wakeDescriptor)
            if let last = state.lastQuery, now - last < Self.queryInterval { return [] }
            var asked: [CurveKey] = []
            var taken = 0
            for key in state.queue {
                guard asked.count < Self.perQuery else { break }
                taken += 1
                guard state.entries[key]?.queued == true else { continue }
                state.entries[key]!.queued = false
                state.entries[key]!.askedAt = now
                asked.append(key)
            }
            state.queue.removeFirst(taken)
            if !asked.isEmpty { state.lastQuery = now }
            if !state.queue.isEmpty { slipway_wake_signal(wakeDescriptor) }
            return asked
        }
    }

    /// The tracker's verdict on `key`: `identity` when it vouched for it, nil when it
    /// did not (or refused the question). The latest answer wins; an answer about a
    /// key nobody asked about is ignored, and so is a vouch for anything but an agent.
    public func answered(_ key: CurveKey, vouchedFor identity: Identity?, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            guard state.entries[key] != nil else { return }
            record(key, identity, &state, now: now)
        }
    }

    /// The tracker named `key` as agent `identity`'s in a peer list: it lists only
    /// agents whose registration proved their key, so this is its word as much as
    /// an answer is. The peers a downloader is given are mostly the ones that
    /// download from it, so their first handshakes need no question.
    public func listed(_ key: CurveKey, as identity: Identity, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            guard identity.role == .agent, state.entries[key] != nil || state.entries.count < capacity else { return }
            record(key, identity, &state, now: now)
        }
    }

    private func record(_ key: CurveKey, _ identity: Identity?, _ state: inout State, now: ContinuousClock.Instant) {
        var entry = state.entries[key] ?? Entry()
        entry.standing = if let identity, identity.role == .agent { .trusted(identity) } else { .refused }
        entry.answeredAt = now
        entry.askedAt = nil
        entry.queued = false
        state.entries[key] = entry
        state.outstanding.remove(key)
        state.generation += 1
    }

    /// Counts the answers taken: a waiting handshake needs a fresh look only when it moved.
    public var generation: Int { state.withLock { $0.generation } }

    /// Keys with a verdict or a question, for metrics and tests.
    public var count: Int { state.withLock { $0.entries.count } }

    /// How many keys stand trusted, refused, or asked about, however old their verdict: for metrics.
    public var tally: (trusted: Int, refused: Int, asking: Int) {
        state.withLock { state in
            state.entries.values.reduce(into: (trusted: 0, refused: 0, asking: 0)) { tally, entry in
                switch entry.standing {
                case .trusted: tally.trusted += 1
                case .refused: tally.refused += 1
                case .unanswered: tally.asking += 1
                }
            }
        }
    }

    /// Queues `key` for the tracker unless it is queued already or was asked lately.
    private func ask(_ key: CurveKey, _ state: inout State, now: ContinuousClock.Instant) {
        guard var entry = state.entries[key], !entry.queued else { return }
        if let askedAt = entry.askedAt, now - askedAt < Self.askAgainAfter { return }
        guard state.outstanding.contains(key) || state.outstanding.count < maxQuestions else { return }
        entry.queued = true
        state.entries[key] = entry
        state.outstanding.insert(key)
        state.queue.append(key)
        slipway_wake_signal(wakeDescriptor)
    }

    /// At capacity, at most once a second: drops the verdicts that no longer hold
    /// and the questions unanswered for as long as a trust holds.
    private func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        if let last = state.lastSweep, now - last < .seconds(1) { return }
        state.lastSweep = now
        var dropped: [CurveKey] = []
        for (key, entry) in state.entries {
            let expired = switch entry.standing {
            case .trusted: entry.answeredAt.map { now - $0 >= Self.trustHoldsFor } ?? true
            case .refused: entry.answeredAt.map { now - $0 >= Self.refusedFor } ?? true
            case .unanswered: entry.askedAt.map { now - $0 >= Self.trustHoldsFor } ?? false
            }
            if expired, !entry.queued { dropped.append(key) }
        }
        for key in dropped {
            state.entries[key] = nil
            state.outstanding.remove(key)
        }
    }
}
