/// Where a piece comes from: another agent in the region, or the regional store.
public enum PieceSource: Hashable, Sendable, CustomStringConvertible {
    /// An agent, by machine id.
    case peer(String)
    /// The regional store, which has every piece (the seed).
    case seed

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

        /// A request for `piece` from `source`.
        public init(piece: Int, source: PieceSource) {
            self.piece = piece
            self.source = source
        }
    }

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
    /// Requests in flight in all. Pieces are large (4 MiB): a deep queue at one
    /// busy peer would hold pieces that idle peers could send, so demand is kept
    /// shallow and spread.
    public let totalLimit: Int
    /// Verified pieces held.
    public private(set) var held: Set<Int>
    /// Peers that served a corrupt piece, never asked again.
    public private(set) var banned: Set<String> = []
    /// This agent's share of the seed: of the pieces no peer has, it takes from
    /// the store only those with `piece % count == index`, so agents downloading
    /// together pull disjoint pieces from the store and trade them, and the store
    /// sends each piece about once. Outside its stripe it uses the store only
    /// when no peer can give it anything. Nil: no stripe (any piece no peer has).
    public var seedStripe: (index: Int, count: Int)?
    private var available: [String: Set<Int>] = [:]
    private var inFlight: [Int: PieceSource] = [:]

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

    /// How many usable peers hold `piece`.
    public func availability(_ piece: Int) -> Int {
        available.reduce(0) { count, entry in count + (banned.contains(entry.key) || !entry.value.contains(piece) ? 0 : 1) }
    }

    /// Records which pieces `peer` has (from the tracker's peer list or the peer itself).
    public mutating func peer(_ peer: String, has pieces: Set<Int>) {
        guard !banned.contains(peer) else { return }
        available[peer] = pieces.filter { (0..<pieceCount).contains($0) }
    }

    /// Forgets a peer that went away; its requests go back to missing.
    public mutating func remove(_ peer: String) {
        available[peer] = nil
        returnRequests(of: .peer(peer))
    }

    /// The requests to send now.
    public mutating func next(using random: inout some RandomNumberGenerator) -> [Request] {
        var requests: [Request] = []
        var wanted = (0..<pieceCount).filter { !held.contains($0) && inFlight[$0] == nil }
        wanted.shuffle(using: &random)
        // Stable sort keeps the shuffle as the tie-break between equally rare pieces.
        let rarity = Dictionary(uniqueKeysWithValues: wanted.map { ($0, availability($0)) })
        wanted = wanted.enumerated().sorted { (rarity[$0.element]!, $0.offset) < (rarity[$1.element]!, $1.offset) }.map(\.element)
        var load = Dictionary(uniqueKeysWithValues: available.keys.map { ($0, outstanding(.peer($0))) })
        var seedCandidates: [Int] = []
        var total = inFlight.count
        for piece in wanted where total < totalLimit {
            let holders = available.filter { !banned.contains($0.key) && $0.value.contains(piece) && load[$0.key]! < perPeerLimit }
            if let peer = holders.keys.min(by: { (load[$0]!, $0) < (load[$1]!, $1) }) {
                load[peer]! += 1
                total += 1
                inFlight[piece] = .peer(peer)
                requests.append(Request(piece: piece, source: .peer(peer)))
            } else if rarity[piece] == 0 {
                seedCandidates.append(piece)
            }
        }
        var seedLoad = outstanding(.seed)
        let peersBusy = !requests.isEmpty || inFlight.values.contains { $0 != .seed }
        let stripe = seedStripe
        let own = seedCandidates.filter { piece in stripe.map { piece % max(1, $0.count) == $0.index } ?? true }
        for piece in own.isEmpty && !peersBusy ? seedCandidates : own where seedLoad < seedLimit && total < totalLimit {
            total += 1
            seedLoad += 1
            inFlight[piece] = .seed
            requests.append(Request(piece: piece, source: .seed))
        }
        return requests
    }

    /// A piece arrived from `source`; `valid` says whether it matched its SHA-256.
    public mutating func received(_ piece: Int, from source: PieceSource, valid: Bool) -> Receipt {
        guard (0..<pieceCount).contains(piece) else { return .ignored }
        guard valid else {
            if case .peer(let machine) = source {
                banned.insert(machine)
                available[machine] = nil
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
        return .accepted
    }

    /// A peer declined a request (busy uploading): the piece may be asked for
    /// again, elsewhere first; the peer still has it, but is left alone until its
    /// availability is next reported.
    public mutating func declined(_ piece: Int, from source: PieceSource) {
        if inFlight[piece] == source { inFlight[piece] = nil }
        if case .peer(let machine) = source { available[machine] = nil }
    }

    /// A request failed (timeout, "not here"): the piece may be asked for again.
    public mutating func failed(_ piece: Int, from source: PieceSource) {
        if inFlight[piece] == source { inFlight[piece] = nil }
        if case .peer(let machine) = source { available[machine]?.remove(piece) }
    }

    private mutating func returnRequests(of source: PieceSource) {
        for (piece, asked) in inFlight where asked == source { inFlight[piece] = nil }
    }
}
