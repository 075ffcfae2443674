import SlipwayCore

/// The piece requests one download has out, and what their answers (or their
/// silence) say of the peers asked: a slow request is asked elsewhere, a request
/// left unanswered drops its peer for a minute, a choke rests a peer (or the
/// store) until it unchokes or ``chokeLapse`` passes.
///
/// Pure, in seconds, and decided together with the download's ``PiecePicker``:
/// ``PieceDownload`` runs it on wall-clock time and sockets, the distribution
/// simulator on virtual time, so the simulator runs this code rather than a copy.
/// Peers are visited in name order and pieces in index order, so a seeded
/// simulation is decided by its seed alone.
public struct PieceRequests: Sendable {
    /// A request in flight: who was asked, and when.
    public struct Pending: Equatable, Sendable {
        public let source: PieceSource
        public let at: Double
    }

    /// What ``expire(now:picker:)`` concluded, for the shell to log, count and act on.
    public enum Expiry: Equatable, Sendable {
        /// `piece` took longer than `after` seconds from `machine`: asked elsewhere, the peer left out until it answers.
        case slow(piece: Int, machine: String, after: Double)
        /// `piece` went unanswered past its timeout. In practice the store's: a request to
        /// a peer is given up as slow first (the slow limit never passes the timeout) and
        /// times out as ``peerTimedOut(machine:pieces:)``; were one to time out here, its peer is dropped.
        case timedOut(piece: Int, source: PieceSource)
        /// Requests given up as slow reached their timeout: `machine` is dropped.
        case peerTimedOut(machine: String, pieces: [Int])

        /// The peer this drops, whose connection the shell closes.
        public var dropped: String? {
            switch self {
            case .slow: nil
            case .timedOut(_, let source): source.machine
            case .peerTimedOut(let machine, _): machine
            }
        }
    }

    /// A choked downloader asks again after this long, as if it had never been choked:
    /// a peer that still has no slot for it answers with a choke, one whose unchoke was
    /// lost (or an older agent in its place) serves, and a dead one lets the request
    /// time out and is dropped.
    public static let chokeLapse = 12.0
    /// How long a peer that let a request time out is left alone, whatever the tracker says.
    public static let coolDown = 60.0

    /// Requests in flight, by piece.
    public private(set) var sent: [Int: Pending] = [:]
    /// Requests to peers given up as slow: the piece is asked elsewhere and the peer
    /// left out (its pieces not counted, peer lists not heeded for it) until it
    /// answers anything (it is alive: the next list brings it back) or one of those
    /// requests reaches its timeout (then it is dropped, as a peer whose request
    /// timed out). Measured in the simulator: a dead peer held each of its pieces for
    /// the whole 30 s timeout, and the last pieces of every download waited for it.
    /// Per peer, the pieces so given up and when each was asked.
    public private(set) var slow: [String: [Int: Double]] = [:]
    /// Peers left alone until the time given.
    public private(set) var coolingDown: [String: Double] = [:]
    /// When each peer that chokes this download said so.
    public private(set) var chokedAt: [String: Double] = [:]
    /// When the store said to wait for one of its upload slots.
    public private(set) var storeChokedAt: Double?
    /// How long the last pieces from peers took, and what that makes slow or timed out.
    public private(set) var pieceTimes: SlowRequestRule
    /// Each piece's length in bytes.
    private let lengths: [Int]

    /// Requests for pieces of `lengths` bytes; `slowAfter` and `timeout` (seconds) are for a piece of the average length.
    public init(lengths: [Int], slowAfter: Double, timeout: Double) {
        self.lengths = lengths
        pieceTimes = SlowRequestRule(fallback: slowAfter, timeout: timeout)
        pieceTimes.typicalBytes = Double(lengths.reduce(0, +)) / Double(max(1, lengths.count))
    }

    /// The same slow limit and timeout for an artifact of pieces of `lengths` bytes,
    /// with nothing asked yet: made when the manifest comes.
    public func forPieces(_ lengths: [Int]) -> PieceRequests {
        PieceRequests(lengths: lengths, slowAfter: pieceTimes.fallback, timeout: pieceTimes.timeout)
    }

    /// Nothing is in flight.
    public var isIdle: Bool { sent.isEmpty }

    /// Whether `machine` is being left alone.
    public func isCoolingDown(_ machine: String) -> Bool { coolingDown[machine] != nil }

    /// How long a request for `piece` may take before it is asked elsewhere.
    public func slowAfter(_ piece: Int) -> Double { pieceTimes.slowAfter(bytes: lengths[piece]) }

    /// How long a request for `piece` may go unanswered before its peer is dropped.
    public func timeout(_ piece: Int) -> Double { pieceTimes.timeout(bytes: lengths[piece]) }

    /// `piece` was asked of `source`.
    public mutating func asked(_ piece: Int, of source: PieceSource, now: Double) {
        sent[piece] = Pending(source: source, at: now)
    }

    /// Gives up slow and silent requests and lets chokes lapse.
    public mutating func expire(now: Double, picker: inout PiecePicker) -> [Expiry] {
        // Called on every turn of an agent's loop, and nearly always with nothing due: the
        // requests are put in order only when something is (measured: sorting them each
        // turn took 7 % of a downloading agent's loop thread at 256 KiB pieces).
        guard isAnythingDue(now: now) else { return [] }
        var concluded: [Expiry] = []
        for (piece, request) in sent.inKeyOrder {
            guard case .peer(let machine) = request.source else { continue }
            let after = slowAfter(piece)
            guard now - request.at >= after else { continue }
            sent[piece] = nil
            slow[machine, default: [:]][piece] = request.at
            // Its pieces stop counting (they may come from others or the store) and peer
            // lists do not bring it back while it is waited for.
            picker.remove(machine)
            coolingDown[machine] = slow[machine]!.map { $0.value + timeout($0.key) }.min()!
            concluded.append(.slow(piece: piece, machine: machine, after: after))
        }
        for (piece, request) in sent.inKeyOrder where now - request.at >= timeout(piece) {
            sent[piece] = nil
            picker.failed(piece, from: request.source)
            concluded.append(.timedOut(piece: piece, source: request.source))
            if let machine = request.source.machine { drop(machine, picker: &picker, now: now) }
        }
        for (machine, requests) in slow.inKeyOrder
        where requests.contains(where: { now - $0.value >= timeout($0.key) }) {
            concluded.append(.peerTimedOut(machine: machine, pieces: requests.keys.sorted()))
            drop(machine, picker: &picker, now: now)
        }
        if let at = storeChokedAt, now - at >= Self.chokeLapse {
            storeChokedAt = nil
            picker.seedChoked = false
        }
        for (machine, at) in chokedAt.inKeyOrder where now - at >= Self.chokeLapse {
            chokedAt[machine] = nil
            picker.unchoked(by: machine)
        }
        return concluded
    }

    /// Whether ``expire(now:picker:)`` has anything to give up or let lapse.
    private func isAnythingDue(now: Double) -> Bool {
        sent.contains { piece, request in now - request.at >= (request.source == .seed ? timeout(piece) : min(slowAfter(piece), timeout(piece))) }
            || slow.values.contains { requests in requests.contains { now - $0.value >= timeout($0.key) } }
            || storeChokedAt.map { now - $0 >= Self.chokeLapse } == true
            || chokedAt.values.contains { now - $0 >= Self.chokeLapse }
    }

    /// Gone, or unreachable at the address it advertises: its pieces are not really
    /// available, so they stop counting (they may come from the seed), and it is left
    /// out for ``coolDown``.
    public mutating func drop(_ machine: String, picker: inout PiecePicker, now: Double) {
        disconnect(machine, picker: &picker)
        coolingDown[machine] = now + Self.coolDown
    }

    /// The connection to `machine` is closed: what was asked over it goes back to
    /// missing, and its pieces stop counting until it is listed again.
    public mutating func disconnect(_ machine: String, picker: inout PiecePicker) {
        picker.remove(machine)
        for (piece, pending) in sent where pending.source == .peer(machine) { sent[piece] = nil }
        slow[machine] = nil
    }

    /// Every connection was closed (the download is complete): nothing is awaited any more.
    public mutating func closedAll() {
        sent = [:]
        slow = [:]
    }

    /// Forgets peers whose cool-down is over, before a peer list is taken in.
    public mutating func endCoolDowns(now: Double) {
        coolingDown = coolingDown.filter { $0.value > now }
    }

    /// Any answer from `machine` shows it alive: if it was given up as slow, the next
    /// peer list brings it back, and `piece`, if it was one of those, is timed with the others.
    public mutating func heard(from machine: String, piece: Int?, now: Double) {
        guard let requests = slow.removeValue(forKey: machine) else { return }
        coolingDown[machine] = nil
        if let piece, let at = requests[piece] { pieceTimes.timed(now - at, bytes: lengths[piece]) }
    }

    /// `piece` came from `source`, in answer to a request for `asked` (the store may send
    /// one of a request's alternatives instead); it is yet to be verified.
    public mutating func arrived(_ piece: Int, from source: PieceSource, asked: Int?, now: Double, picker: inout PiecePicker) {
        if let machine = source.machine { heard(from: machine, piece: piece, now: now) }
        // A piece the store chose answers the request for `asked`; another store request asking for `piece` is still to be answered.
        if let request = sent[piece], request.source == source, source != .seed || asked == nil || asked == piece {
            sent[piece] = nil
            if source != .seed { pieceTimes.timed(now - request.at, bytes: lengths[piece]) }
        }
        if source == .seed, let asked, asked != piece, sent[asked]?.source == .seed {
            // The store sent one of the request's alternatives.
            sent[asked] = nil
            picker.storeChose(piece, insteadOf: asked)
        }
    }

    /// `machine` served a corrupt piece (the picker bans it): nothing more is awaited from it.
    public mutating func banned(_ machine: String) {
        for (piece, pending) in sent where pending.source == .peer(machine) { sent[piece] = nil }
    }

    /// `machine` no longer holds the artifact ("not here"): what was asked of it goes back to missing.
    public mutating func notHeld(by machine: String, picker: inout PiecePicker) {
        for (piece, request) in sent.inKeyOrder where request.source == .peer(machine) {
            sent[piece] = nil
            picker.failed(piece, from: request.source)
        }
        picker.remove(machine)
    }

    /// `machine`'s upload is taken ("busy"): `piece` is asked of another holder.
    public mutating func declined(_ piece: Int, by machine: String, picker: inout PiecePicker) {
        if sent[piece]?.source == .peer(machine) { sent[piece] = nil }
        picker.declined(piece, from: .peer(machine))
    }

    /// `machine` choked this download, `refused` the request it answered, if any (others it took are still coming).
    public mutating func choked(by machine: String, refused: Int?, now: Double, picker: inout PiecePicker) {
        chokedAt[machine] = now
        if let refused, sent[refused]?.source == .peer(machine) { sent[refused] = nil }
        picker.choked(by: machine, refused: refused)
    }

    /// `machine` gave this download one of its upload slots.
    public mutating func unchoked(by machine: String, picker: inout PiecePicker) {
        chokedAt[machine] = nil
        picker.unchoked(by: machine)
    }

    /// The store turned this download away (a choke, or an error answering the request
    /// for `refused`): that piece goes back to missing, and the store is not asked
    /// again until it unchokes or ``chokeLapse`` passes.
    public mutating func storeRested(refused: Int?, now: Double, picker: inout PiecePicker) {
        storeChokedAt = now
        picker.seedChoked = true
        picker.seedSlotHeld = false
        if let refused, sent[refused]?.source == .seed {
            sent[refused] = nil
            picker.failed(refused, from: .seed)
        }
    }

    /// The store gave this download one of its upload slots.
    public mutating func storeUnchoked(picker: inout PiecePicker) {
        storeChokedAt = nil
        picker.seedChoked = false
        picker.seedSlotHeld = true
    }
}
