/// Where a piece comes from: another agent in the region, or the regional store.
public enum PieceSource: Hashable, Sendable, CustomStringConvertible {
    /// An agent, by machine id.
    case peer(String)
    /// The regional store, which has every piece (the seed).
    case seed

    /// The peer's machine id; nil for the seed.
    public var machine: String? {
        if case .peer(let machine) = self { machine } else { nil }
    }

    /// `peer ID` or `seed`, for logs.
    public var description: String {
        switch self {
        case .peer(let machine): "peer \(machine)"
        case .seed: "seed"
        }
    }
}

/// Chooses which piece to ask which source for while an agent downloads an
/// artifact from its region: peers first, rarest piece first, a bound on
/// requests in flight per source, and a peer that served a bad piece is never
/// asked again.
///
/// The regional store is used only for pieces no usable peer has, with its own
/// small bound, and among equally rare pieces the choice is random: agents
/// that start together then take different pieces from the store and trade
/// them, instead of each pulling the whole artifact from it.
///
/// Pure: no sockets, no clock; the agent feeds it what peers have and what arrived.
public struct PiecePicker: Sendable {
    /// One request to send.
    public struct Request: Hashable, Sendable {
        /// The piece's index.
        public let piece: Int
        /// Who to ask.
        public let source: PieceSource
        /// To the store only: other pieces, none held by a known peer, that would
        /// serve as well. The store sends whichever of `piece` and these it has
        /// sent least, so agents that each know only part of the swarm do not all
        /// pull the same pieces from it (``storeChose(_:insteadOf:)``).
        public let alternatives: [Int]

        /// A request for `piece` from `source`; the store may send one of `alternatives` instead.
        public init(piece: Int, source: PieceSource, alternatives: [Int] = []) {
            self.piece = piece
            self.source = source
            self.alternatives = alternatives
        }
    }

    /// The most alternatives a store request offers.
    public static let storeChoices = 32

    /// What a received piece did.
    public enum Receipt: Equatable, Sendable {
        /// Verified and new: keep it, serve it to others.
        case accepted
        /// Already held, or not asked for: drop it.
        case ignored
        /// Failed verification: the peer is banned, the piece will be asked elsewhere.
        case rejected
    }

    /// Pieces in the artifact.
    public let pieceCount: Int
    /// Requests in flight per peer.
    public let perPeerLimit: Int
    /// Requests in flight to the regional store.
    public let seedLimit: Int
    /// Requests in flight in all. Pieces are large (up to 4 MiB): a deep queue at
    /// one busy peer would hold pieces that idle peers could send, so demand is
    /// kept shallow and spread.
    public let totalLimit: Int
    /// Verified pieces held.
    public private(set) var held: Set<Int> {
        didSet { quiet = false }
    }
    /// Peers that told this downloader to wait (`PieceChoke`): not asked until they
    /// unchoke it; what they hold is still known and counted.
    public private(set) var chokedBy: Set<String> = [] {
        didSet { quiet = false }
    }
    /// Peers that served a corrupt piece, never asked again.
    public private(set) var banned: Set<String> = [] {
        didSet { orderIsStale = true; quiet = false }
    }
    /// This agent's share of the seed: of the pieces no peer has, it takes from
    /// the store only those with `piece % count == index`, so agents downloading
    /// together pull disjoint pieces from the store and trade them, and the store
    /// sends each piece about once. Outside its stripe it uses the store only
    /// when no peer can give it anything. Nil: no stripe (any piece no peer has).
    public var seedStripe: (index: Int, count: Int)? {
        didSet { quiet = false }
    }
    /// The store told this downloader to wait for one of its upload slots, as a
    /// peer's `PieceChoke` does: nothing is asked of it until this is cleared
    /// (its unchoke, or the choke lapsing). Pieces no peer holds wait meanwhile.
    public var seedChoked = false {
        didSet { quiet = false }
    }
    /// The store said this downloader holds one of its upload slots (its
    /// unchoke). A store with slots sends to a few agents at a time, and the
    /// region gains new pieces only as fast as its slot holders keep it
    /// sending, so while this is set the store is asked whenever it has room
    /// for any piece no peer is known to hold: outside the stripe, and while
    /// peers are busy too. Pieces that only busy peers hold are not asked of it:
    /// measured in the simulator, that kept the store sending repeats (1.75 F at
    /// 16 agents) for no gain in time.
    public var seedSlotHeld = false {
        didSet { quiet = false }
    }
    /// What each peer holds. A change that can lower a piece's rarity marks the
    /// order stale; pieces a peer adds (its haves, the common case: one per piece
    /// per connected peer) only raise rarities, counted in place.
    private var available: [String: Set<Int>] = [:] {
        didSet { quiet = false }
    }
    /// Per peer, how many pieces it holds that are not held here; kept as pieces
    /// arrive, so ``wants(from:)`` costs nothing however many pieces there are.
    private var wanted: [String: Int] = [:]
    private var inFlight: [Int: PieceSource] = [:] {
        didSet { quiet = false }
    }
    /// Pieces by how many usable peers hold them, rarest first, random among
    /// equals; rebuilt only when who holds what changes (held and requested
    /// pieces are skipped when it is read), so a turn costs little even with
    /// tens of thousands of pieces.
    private var order: [Int] = []
    /// Every piece of `order` before this one is held.
    private var orderStart = 0
    /// Where the pieces no peer held when `order` was built end: rarities only
    /// grow until it is rebuilt, so no piece past this one can be rarity 0.
    private var zeroEnd = 0
    private var rarity: [Int] = []
    private var orderIsStale = true
    /// Nothing changed since a call that found nothing to ask for: the next call
    /// returns at once (the agent asks every turn of its loop).
    private var quiet = false

    /// A picker for `pieceCount` pieces, `held` of which are already verified on disk (a resumed download).
    public init(pieceCount: Int, held: Set<Int> = [], perPeerLimit: Int = 4, seedLimit: Int = 1, totalLimit: Int = .max) {
        self.pieceCount = pieceCount
        self.held = held.filter { (0..<pieceCount).contains($0) }
        self.perPeerLimit = max(1, perPeerLimit)
        self.seedLimit = max(1, seedLimit)
        self.totalLimit = max(1, totalLimit)
    }

    /// Every piece is held.
    public var isComplete: Bool { held.count == pieceCount }

    /// Requests in flight to `source`.
    public func outstanding(_ source: PieceSource) -> Int { inFlight.values.count { $0 == source } }

    /// Whether `peer` holds pieces not held here (this downloader is interested in it).
    public func wants(from peer: String) -> Bool { wanted[peer, default: 0] > 0 }

    /// How many usable peers hold `piece`.
    public func availability(_ piece: Int) -> Int {
        available.reduce(0) { count, entry in count + (banned.contains(entry.key) || !entry.value.contains(piece) ? 0 : 1) }
    }

    /// Records which pieces `peer` has (from the tracker's peer list or the peer itself).
    public mutating func peer(_ peer: String, has pieces: Set<Int>) {
        guard !banned.contains(peer) else { return }
        let usable = pieces.filter { (0..<pieceCount).contains($0) }
        // Refreshed lists often say nothing new, or only that the peer holds more: the order stands.
        guard let known = available[peer] else {
            available[peer] = usable
            orderIsStale = true
            wanted[peer] = usable.count { !held.contains($0) }
            return
        }
        guard known != usable else { return }
        if usable.count > known.count, usable.isSuperset(of: known) {
            return self.peer(peer, adds: usable.subtracting(known))
        }
        available[peer] = usable
        orderIsStale = true
        wanted[peer] = usable.count { !held.contains($0) }
    }

    /// Adds pieces `peer` says it has just verified (its `have` messages) to what it
    /// was known to hold. Only for a peer the tracker listed and that has not since
    /// declined or gone: those wait for the next list.
    public mutating func peer(_ peer: String, adds pieces: some Sequence<Int>) {
        guard !banned.contains(peer), let known = available[peer] else { return }
        let new = Set(pieces.filter { (0..<pieceCount).contains($0) && !known.contains($0) })
        if !new.isEmpty {
            available[peer] = known.union(new)
            if !orderIsStale { for piece in new { rarity[piece] += 1 } }
            wanted[peer, default: 0] += new.count { !held.contains($0) }
        }
    }

    /// Forgets a peer that went away; its requests go back to missing.
    public mutating func remove(_ peer: String) {
        if available.removeValue(forKey: peer) != nil { orderIsStale = true }
        wanted[peer] = nil
        chokedBy.remove(peer)
        returnRequests(of: .peer(peer))
    }

    /// The requests to send now.
    public mutating func next(using random: inout some RandomNumberGenerator) -> [Request] {
        guard !quiet, inFlight.count < totalLimit else { return [] }
        if orderIsStale { rebuildOrder(using: &random) }
        var load: [String: Int] = [:]
        var seedLoad = 0
        for source in inFlight.values {
            switch source {
            case .peer(let machine): load[machine, default: 0] += 1
            case .seed: seedLoad += 1
            }
        }
        // The peers that may be asked now, each with what it holds and its load, looked up once
        // per call rather than once per piece and peer: hashing their names was most of a call.
        // Peers holding nothing missing here are left out: in a large swarm most are, and each
        // would be looked at for every piece still missing, on every call.
        var open: [(peer: String, pieces: Set<Int>, load: Int)] = available.compactMap { peer, pieces in
            let peerLoad = load[peer, default: 0]
            guard peerLoad < perPeerLimit, wanted[peer, default: 0] > 0, !banned.contains(peer), !chokedBy.contains(peer) else { return nil }
            return (peer, pieces, peerLoad)
        }
        var requests: [Request] = []
        var seedCandidates: [Int] = []
        var ownCandidates = 0
        let stripe = seedStripe
        let seedRoom = seedChoked ? 0 : seedLimit - seedLoad
        let choiceRoom = seedRoom * (Self.storeChoices + 1)
        var total = inFlight.count
        while orderStart < order.count, held.contains(order[orderStart]) { orderStart += 1 }
        for position in orderStart..<order.count where total < totalLimit {
            let piece = order[position]
            guard !held.contains(piece), inFlight[piece] == nil else { continue }
            // Pieces no peer has come first in the order: past them, with every peer
            // busy, nothing is left to find.
            if open.isEmpty {
                if position >= zeroEnd || seedRoom <= 0 || (ownCandidates >= seedRoom && seedCandidates.count >= choiceRoom) { break }
                if rarity[piece] > 0 { continue }
            }
            if rarity[piece] > 0 {
                // The least loaded holder, by name among equals.
                var chosen: Int?
                for index in open.indices where open[index].pieces.contains(piece) {
                    if let best = chosen, (open[best].load, open[best].peer) < (open[index].load, open[index].peer) { continue }
                    chosen = index
                }
                guard let chosen else { continue }
                let peer = open[chosen].peer
                open[chosen].load += 1
                if open[chosen].load >= perPeerLimit { open.remove(at: chosen) }
                total += 1
                inFlight[piece] = .peer(peer)
                requests.append(Request(piece: piece, source: .peer(peer)))
            } else if seedRoom > 0, ownCandidates < seedRoom || seedCandidates.count < choiceRoom {
                seedCandidates.append(piece)
                if stripe.map({ piece % max(1, $0.count) == $0.index }) ?? true { ownCandidates += 1 }
            }
        }
        let peersBusy = !requests.isEmpty || inFlight.values.contains { $0 != .seed }
        let own = seedCandidates.filter { piece in stripe.map { piece % max(1, $0.count) == $0.index } ?? true }
        let asked = own.isEmpty && (!peersBusy || seedSlotHeld) ? seedCandidates : own
        let room = min(seedRoom, totalLimit - total)
        if room > 0, !asked.isEmpty {
            // Each request gets its own share of the choices, the rest of its stripe first.
            let others = seedCandidates.filter { !asked.contains($0) }
            let choices = asked + others
            for slot in 0..<min(room, asked.count) {
                let mine = stride(from: slot, to: choices.count, by: min(room, asked.count)).map { choices[$0] }
                inFlight[mine[0]] = .seed
                requests.append(Request(piece: mine[0], source: .seed, alternatives: Array(mine.dropFirst().prefix(Self.storeChoices))))
            }
        }
        if requests.isEmpty { quiet = true }
        return requests
    }

    private mutating func rebuildOrder(using random: inout some RandomNumberGenerator) {
        rarity = Array(repeating: 0, count: pieceCount)
        for (peer, pieces) in available where !banned.contains(peer) {
            for piece in pieces { rarity[piece] += 1 }
        }
        var wanted = (0..<pieceCount).filter { !held.contains($0) }
        wanted.shuffle(using: &random)
        // Stable sort keeps the shuffle as the tie-break between equally rare pieces.
        order = wanted.enumerated().sorted { (rarity[$0.element], $0.offset) < (rarity[$1.element], $1.offset) }.map(\.element)
        orderStart = 0
        zeroEnd = order.firstIndex { rarity[$0] > 0 } ?? order.count
        orderIsStale = false
    }

    /// A piece arrived from `source`; `valid` says whether it matched its SHA-256.
    public mutating func received(_ piece: Int, from source: PieceSource, valid: Bool) -> Receipt {
        guard (0..<pieceCount).contains(piece) else { return .ignored }
        guard valid else {
            if case .peer(let machine) = source {
                banned.insert(machine)
                available[machine] = nil
                orderIsStale = true
                wanted[machine] = nil
                returnRequests(of: source)
            }
            if inFlight[piece] == source { inFlight[piece] = nil }
            return .rejected
        }
        // Held now, whoever was asked: a request to another source for it is moot,
        // and its slot must not stay taken until an answer that may never come.
        inFlight[piece] = nil
        guard !held.contains(piece) else { return .ignored }
        held.insert(piece)
        for (peer, pieces) in available where pieces.contains(piece) { wanted[peer, default: 1] -= 1 }
        return .accepted
    }

    /// A peer declined a request (busy uploading): the piece may be asked for
    /// again, elsewhere first; the peer still has it, but is left alone until its
    /// availability is next reported.
    public mutating func declined(_ piece: Int, from source: PieceSource) {
        if inFlight[piece] == source { inFlight[piece] = nil }
        if case .peer(let machine) = source, available.removeValue(forKey: machine) != nil {
            wanted[machine] = nil
            orderIsStale = true
        }
    }

    /// `peer` told this downloader to wait. Requests it already took are still
    /// served; `refused`, the request it answered with the choke, goes back to missing.
    public mutating func choked(by peer: String, refused: Int? = nil) {
        chokedBy.insert(peer)
        if let refused, inFlight[refused] == .peer(peer) { inFlight[refused] = nil }
    }

    /// `peer` takes this downloader's requests again (it said so, or its choke lapsed).
    public mutating func unchoked(by peer: String) {
        chokedBy.remove(peer)
    }

    /// The store answered a request for `asked` with `piece`, one of the
    /// request's alternatives: `asked` may be asked for again. Call it before
    /// ``received(_:from:valid:)`` for `piece`.
    public mutating func storeChose(_ piece: Int, insteadOf asked: Int) {
        guard piece != asked, inFlight[asked] == .seed else { return }
        inFlight[asked] = nil
    }

    /// A request failed (timeout, "not here"): the piece may be asked for again.
    public mutating func failed(_ piece: Int, from source: PieceSource) {
        if inFlight[piece] == source { inFlight[piece] = nil }
        if case .peer(let machine) = source, available[machine]?.remove(piece) != nil {
            orderIsStale = true
            if !held.contains(piece) { wanted[machine, default: 1] -= 1 }
        }
    }

    private mutating func returnRequests(of source: PieceSource) {
        for (piece, asked) in inFlight where asked == source { inFlight[piece] = nil }
    }
}
