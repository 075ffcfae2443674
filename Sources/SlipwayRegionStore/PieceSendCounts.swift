/// How often the store has sent each piece of the artifacts agents fetch, to
/// choose among the pieces a request offers (`PieceRequest.alternatives`): the
/// one sent least, the asker's own order breaking ties. An agent knows only part
/// of its swarm, so pieces it sees no peer holding may already be in the region;
/// the store, which sees every request, sends the pieces the region lacks
/// first, each about once. A pure bookkeeping type, bounded: counts for at most
/// ``maxArtifacts`` artifacts (the least recently first counted forgotten),
/// alternatives beyond ``maxAlternatives`` ignored.
package struct PieceSendCounts {
    /// No artifact counted yet.
    package init() {}

    /// Artifacts counted at once.
    package static let maxArtifacts = 16
    /// Alternatives heeded per request.
    package static let maxAlternatives = 64

    private var counts: [String: [UInt32]] = [:]
    /// Digests by when they were first counted, oldest first.
    private var order: [String] = []

    /// Which of `asked` and `alternatives` to send for a request on `digest`, an
    /// artifact of `pieceCount` pieces: the one sent least, the first of equals.
    /// Alternatives out of range are ignored; `asked` must be in range.
    package mutating func choose(_ digest: String, asked: Int, alternatives: some Sequence<UInt32>, pieceCount: Int) -> Int {
        if counts[digest]?.count != pieceCount {
            if counts[digest] == nil {
                if order.count >= Self.maxArtifacts { counts[order.removeFirst()] = nil }
                order.append(digest)
            }
            counts[digest] = Array(repeating: 0, count: pieceCount)
        }
        let sent = counts[digest]!
        var chosen = asked
        for alternative in alternatives.prefix(Self.maxAlternatives) {
            let piece = Int(alternative)
            if piece < pieceCount, sent[piece] < sent[chosen] { chosen = piece }
        }
        return chosen
    }

    /// `piece` of `digest` is on its way to an agent.
    package mutating func count(_ digest: String, piece: Int) {
        guard let sent = counts[digest], piece < sent.count else { return }
        counts[digest]![piece] &+= 1
    }

    /// How often `piece` of `digest` was sent; 0 for an artifact not counted.
    package func timesSent(_ digest: String, piece: Int) -> Int {
        counts[digest].map { piece < $0.count ? Int($0[piece]) : 0 } ?? 0
    }
}
