/// Which piece of one artifact to ask which source region for, and what to do
/// when a source is slow, lacks the artifact, or serves a corrupt piece.
///
/// Pure: no sockets, no clock of its own. The replicator feeds it what happened
/// and sends the requests it returns.
///
/// - Sources are tried in the given order of preference (the origin first); each
///   usable one gets up to `window` pieces in flight, asked for in contiguous
///   runs of at most `batch`, so a fast source and a second one share the work.
/// - A source that answers "not here" rests for `restAfterMissing` and is asked
///   again (it may be replicating the artifact itself).
/// - A source whose request got no piece within `requestTimeout` rests likewise;
///   its outstanding pieces go back to the missing set.
/// - A source that serves a piece failing verification is never asked again
///   for this artifact; the piece is requested elsewhere.
package struct ReplicationPlan {
    /// One request to send: pieces `first ..< first + count` from source `source`.
    package struct Request: Equatable {
        package let source: Int
        package let first: Int
        package let count: Int
    }

    /// Where a source stands for this artifact.
    enum SourceState: Equatable {
        case usable
        case resting(until: ContinuousClock.Instant)
        case bad(reason: String)
    }

    /// What a received piece did.
    package enum Receipt: Equatable {
        /// New and verified: store it.
        case accepted
        /// Already had it, or nobody asked this source for it: ignore.
        case ignored
    }

    let pieceCount: Int
    let window: Int
    let batch: Int
    let requestTimeout: Duration
    let restAfterMissing: Duration
    private(set) var sources: [SourceState]
    /// Pieces neither held nor requested.
    private(set) var missing: Set<Int>
    private(set) var held: Set<Int>
    private var inFlight: [Int: (source: Int, sentAt: ContinuousClock.Instant)] = [:]
    /// When each source last delivered something, to tell slow from silent.
    private var lastProgress: [ContinuousClock.Instant?]

    /// A plan for `pieceCount` pieces, `alreadyHeld` of which survived an earlier attempt.
    package init(pieceCount: Int, sourceCount: Int, alreadyHeld: Set<Int> = [], window: Int = 16, batch: Int = 8,
         requestTimeout: Duration = .seconds(15), restAfterMissing: Duration = .seconds(2)) {
        self.pieceCount = pieceCount
        self.window = max(1, window)
        self.batch = max(1, min(batch, window))
        self.requestTimeout = requestTimeout
        self.restAfterMissing = restAfterMissing
        self.sources = Array(repeating: .usable, count: sourceCount)
        self.lastProgress = Array(repeating: nil, count: sourceCount)
        self.held = alreadyHeld.filter { (0..<pieceCount).contains($0) }
        self.missing = Set(0..<pieceCount).subtracting(held)
    }

    /// Every piece is held.
    package var isComplete: Bool { held.count == pieceCount }

    /// No source can be asked again: every one served corrupt data.
    var isHopeless: Bool { !isComplete && sources.allSatisfy { if case .bad = $0 { true } else { false } } }

    /// Why the sources are bad, for a failure report.
    var badReasons: [String] { sources.compactMap { if case .bad(let reason) = $0 { reason } else { nil } } }

    /// Pieces requested from `source` and not yet received.
    func outstanding(from source: Int) -> Int { inFlight.values.count { $0.source == source } }

    /// The requests to send now, lowest missing pieces first, to usable sources in preference order.
    package mutating func nextRequests(now: ContinuousClock.Instant) -> [Request] {
        var requests: [Request] = []
        for source in sources.indices {
            if case .resting(let until) = sources[source] {
                guard now >= until else { continue }
                sources[source] = .usable
            }
            guard case .usable = sources[source] else { continue }
            var room = window - outstanding(from: source)
            while room > 0, let first = missing.min() {
                var count = 1
                while count < min(batch, room), missing.contains(first + count) { count += 1 }
                for index in first..<(first + count) {
                    missing.remove(index)
                    inFlight[index] = (source, now)
                }
                requests.append(Request(source: source, first: first, count: count))
                room -= count
            }
        }
        return requests
    }

    /// A piece arrived from `source` and passed verification.
    package mutating func received(_ index: Int, from source: Int, now: ContinuousClock.Instant) -> Receipt {
        guard (0..<pieceCount).contains(index), !held.contains(index) else { return .ignored }
        // Every piece not held is missing or in flight. The bytes are verified, so a
        // late answer from a source we had given up on counts too.
        let asked = inFlight.removeValue(forKey: index)
        missing.remove(index)
        held.insert(index)
        if asked?.source == source { lastProgress[source] = now }
        return .accepted
    }

    /// A piece from `source` failed verification: never ask that source again for this artifact.
    mutating func corrupt(_ index: Int, from source: Int, reason: String) {
        sources[source] = .bad(reason: reason)
        returnPieces(of: source)
        if (0..<pieceCount).contains(index), !held.contains(index) {
            inFlight[index] = nil
            missing.insert(index)
        }
    }

    /// `source` does not have the artifact (yet): ask again after a rest.
    package mutating func lacking(_ source: Int, now: ContinuousClock.Instant) {
        if case .bad = sources[source] { return }
        sources[source] = .resting(until: now + restAfterMissing)
        returnPieces(of: source)
    }

    /// Sources whose oldest request has gone unanswered for `requestTimeout` and
    /// that delivered nothing since: they rest, their pieces go back to missing.
    /// - Returns: the sources that timed out (the caller reconnects them).
    package mutating func expire(now: ContinuousClock.Instant) -> [Int] {
        var expired: [Int] = []
        for source in sources.indices {
            let sent = inFlight.values.filter { $0.source == source }.map(\.sentAt)
            guard let oldest = sent.min(), now - oldest >= requestTimeout else { continue }
            if let progress = lastProgress[source], now - progress < requestTimeout { continue }
            expired.append(source)
            lacking(source, now: now)
        }
        return expired
    }

    /// Forgets every request to `source`; its pieces become missing again.
    private mutating func returnPieces(of source: Int) {
        for (index, asked) in inFlight where asked.source == source {
            inFlight[index] = nil
            missing.insert(index)
        }
    }
}
