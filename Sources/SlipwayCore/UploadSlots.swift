/// An uploader's slots as its socket sees them: the ``UploadChoker`` and, for
/// each downloader that heeds `PieceChoke`, the artifact it asked for last,
/// which every `PieceChoke` to it names.
///
/// The agent's piece server, the region's store and the simulator all serve
/// through this one type, so the simulator runs the servers' slot handling,
/// not a copy of it. Pure, like the choker: the owner reports what peers do
/// and sends the ``Notice``s it gets back.
public struct UploadSlots<Peer: Hashable & Sendable>: Sendable {
    /// A `PieceChoke` to send.
    public struct Notice: Equatable, Sendable {
        public let peer: Peer
        /// The artifact it is about; empty if the peer never named one.
        public let digest: String
        public let choked: Bool

        public init(peer: Peer, digest: String, choked: Bool) {
            self.peer = peer
            self.digest = digest
            self.choked = choked
        }
    }

    /// Who holds a slot and who waits.
    public private(set) var choker: UploadChoker<Peer>
    /// Downloaders that heed chokes, and the artifact each asked for last.
    public private(set) var heeding: [Peer: String] = [:]

    /// Slots for `slots` downloaders at a time.
    public init(slots: Int) {
        choker = UploadChoker(slots: slots)
    }

    /// Peers with a slot.
    public var served: Set<Peer> { choker.served }
    /// Peers waiting for a slot, longest waiting first.
    public var waiting: [Peer] { choker.waiting }

    /// `peer` heeds chokes and is after `digest` now (its greeting, its interest, its request).
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func heed(_ peer: Peer, digest: String) {
        heeding[peer] = digest
    }

    /// `peer` asked for a piece of `digest`: taken if it holds a slot; if not,
    /// the caller answers the request itself with a choke (in reply to it).
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func request(from peer: Peer, digest: String, now: ContinuousClock.Instant) -> (taken: Bool, notices: [Notice]) {
        heed(peer, digest: digest)
        let (taken, actions) = choker.request(from: peer, now: now)
        return (taken, notices(actions))
    }

    /// `peer` says whether it wants something of `digest` held here.
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func interest(_ peer: Peer, digest: String, interested: Bool, now: ContinuousClock.Instant) -> [Notice] {
        heed(peer, digest: digest)
        return notices(interested ? choker.interested(peer, now: now) : choker.notInterested(peer, now: now))
    }

    /// A piece queued for `peer` was handed to its socket (or dropped).
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func answered(_ peer: Peer, now: ContinuousClock.Instant) {
        choker.answered(peer, now: now)
    }

    /// `peer` is gone: its slot goes to the longest waiting.
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func gone(_ peer: Peer, now: ContinuousClock.Instant) -> [Notice] {
        let handedOn = notices(choker.gone(peer, now: now))
        heeding[peer] = nil
        return handedOn
    }

    /// Hands slots on (``UploadChoker/tick(now:queued:)``), and forgets the
    /// artifacts of peers the choker no longer knows once they outnumber what it keeps.
    /// - Parameter queued: pieces waiting to be sent to a peer.
    @_specialize(exported: true, where Peer == [UInt8])
    public mutating func tick(now: ContinuousClock.Instant, queued: (Peer) -> Int) -> [Notice] {
        let handedOn = notices(choker.tick(now: now, queued: queued))
        if heeding.count > choker.maxWaiting + choker.slots {
            let known = choker.served.union(choker.waiting)
            heeding = heeding.filter { known.contains($0.key) }
        }
        return handedOn
    }

    private func notices(_ actions: [UploadChoker<Peer>.Action]) -> [Notice] {
        actions.map { action in
            switch action {
            case .unchoke(let peer): Notice(peer: peer, digest: heeding[peer] ?? "", choked: false)
            case .choke(let peer): Notice(peer: peer, digest: heeding[peer] ?? "", choked: true)
            }
        }
    }
}
