import Foundation

/// Pieces a store owes its peers, in order per peer: a pure bookkeeping type.
///
/// A peer's share of the socket's send queue holds a few pieces (the socket's
/// ZMQ_SNDHWM); the rest wait here as (digest, index) only. A peer may have at
/// most ``perPeer`` pieces waiting (a request that would pass it is answered
/// `busy`), and a peer that has read nothing for ``staleAfter`` loses its
/// queue: a reader that never reads costs the store its share of the send queue
/// and one piece, not gigabytes.
struct PieceQueue {
    struct Entry: Equatable {
        let requestID: String
        let digest: String
        let index: Int
        /// Sent in runs of blocks (`PieceRequest.blocks`, and the manifest has roots).
        var inBlocks = false
    }

    let perPeer: Int
    let staleAfter: Duration
    private var queues: [[UInt8]: (entries: [Entry], progress: ContinuousClock.Instant)] = [:]

    init(perPeer: Int = 64, staleAfter: Duration = .seconds(30)) {
        self.perPeer = perPeer
        self.staleAfter = staleAfter
    }

    /// Pieces waiting, for all peers.
    var count: Int { queues.values.reduce(0) { $0 + $1.entries.count } }

    /// Pieces waiting for `peer`.
    func count(for peer: [UInt8]) -> Int { queues[peer]?.entries.count ?? 0 }

    /// Peers with pieces waiting.
    var peers: [[UInt8]] { Array(queues.keys) }

    /// Queues `entries` for `peer`. - Returns: false (nothing queued) past ``perPeer``.
    mutating func enqueue(_ entries: [Entry], for peer: [UInt8], now: ContinuousClock.Instant) -> Bool {
        let waiting = queues[peer]?.entries.count ?? 0
        guard waiting + entries.count <= perPeer else { return false }
        var queue = queues[peer] ?? ([], now)
        queue.entries += entries
        queues[peer] = queue
        return true
    }

    /// The next piece owed to `peer`.
    func next(for peer: [UInt8]) -> Entry? { queues[peer]?.entries.first }

    /// The head piece left for `peer`.
    mutating func sent(to peer: [UInt8], now: ContinuousClock.Instant) {
        guard var queue = queues[peer] else { return }
        queue.entries.removeFirst()
        queue.progress = now
        queues[peer] = queue.entries.isEmpty ? nil : queue
    }

    /// Part of the head piece (a run of its blocks) left for `peer`.
    mutating func progressed(_ peer: [UInt8], now: ContinuousClock.Instant) {
        queues[peer]?.progress = now
    }

    /// Forgets everything owed to `peer` (it went away).
    mutating func drop(_ peer: [UInt8]) { queues[peer] = nil }

    /// Peers that have taken nothing for ``staleAfter``, with what they were owed; their queues are dropped.
    mutating func stale(now: ContinuousClock.Instant) -> [(peer: [UInt8], entries: [Entry])] {
        let stale = queues.filter { now - $0.value.progress >= staleAfter }
        for peer in stale.keys { queues[peer] = nil }
        return stale.map { ($0.key, $0.value.entries) }
    }
}

/// The piece a store is sending a peer: read once, and for a piece sent in runs,
/// its block digests and the next block.
struct LoadedPiece {
    let entry: PieceQueue.Entry
    let bytes: [UInt8]
    var blockDigests: [Data] = []
    var nextBlock = 0
    /// The next message, encoded, while the peer's pipe is too full to take it,
    /// and the block after it: sent as it is once there is room, not built (and
    /// its payload copied) again every turn.
    var encoded: (frames: [[UInt8]], next: Int?)?
}
