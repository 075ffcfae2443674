import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayWire
import SlipwayMetrics

/// Fetches one artifact into the agent's local store: the I/O shell around
/// ``PiecePicker``. The manifest comes from the regional store; pieces come
/// from peers the tracker names and from the store as seed. Every piece is
/// verified (`BlobStore.store`) before it is kept or served; a peer that serves
/// a bad one is banned and its socket closed. Pieces already on disk from an
/// interrupted run are never fetched again.
///
/// Non-blocking and single-threaded: the agent loop polls ``sockets`` and calls
/// ``receive(from:now:)``, ``update(peers:)`` and ``pump(now:)``.
final class PieceDownload {
    /// Why a download cannot go on.
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The artifact being fetched.
    let digest: String
    /// Its manifest, once the store sent it.
    private(set) var manifest: Slipway_V1_ArtifactManifest?
    /// Pieces taken from the seed and from peers by this run.
    private(set) var fromSeed = 0, fromPeers = 0
    /// Times the store told this download to wait for one of its upload slots.
    private(set) var storeChokes = 0
    /// Pieces held when this run started (resumed from disk).
    private(set) var resumedPieces = 0
    /// Pieces that failed verification.
    private(set) var rejected = 0 {
        didSet { SlipwayMetrics.rejected(daemon: "agent", socket: "downloads", reason: "bad_message") }
    }
    /// Set when the whole artifact is committed to the local store.
    private(set) var isComplete = false

    private let store: BlobStore
    private let context: ZMQContext
    private let sender: String
    private let seedEndpoint: Endpoint
    /// How the agent proves itself to the region's store (the region's key pinned).
    private let seedSecurity: ClientSecurity
    /// The agent's own key, to reach peers whose piece servers run CURVE (the key the tracker gives pinned).
    private let peerSecurity: DaemonSecurity
    /// Each peer's piece server key, from the tracker (absent: it serves without CURVE).
    private var peerKeys: [String: CurveKey] = [:]
    private let logger: Logger
    private let maxBytesPerSecond: UInt64
    private let requestTimeout: Duration
    private let seedOnly: Bool
    private let machineID: String
    private var swarm: Set<String> = []
    /// Peers that let a request time out: left alone until then, whatever the tracker says.
    private var coolingDown: [String: ContinuousClock.Instant] = [:]
    private let codec = WireCodec()
    private var picker: PiecePicker?
    private var random = SystemRandomNumberGenerator()
    private var connections: [PieceSource: ZMQSocket] = [:]
    private var endpoints: [String: Endpoint] = [:]
    private var sent: [Int: (source: PieceSource, at: ContinuousClock.Instant)] = [:]
    /// Request message id → piece, to match "busy" answers.
    private var requestIDs: [String: Int] = [:]
    private var manifestAskedAt: ContinuousClock.Instant?
    private let startedAt: ContinuousClock.Instant
    private var requestedBytes: UInt64 = 0
    /// When the manifest arrived, and whether a peer list has since: the seed is
    /// not asked before the first list (or a short wait for it), or every agent
    /// would take its first pieces from the store.
    private var manifestAt: ContinuousClock.Instant?
    private var peersKnown = false
    /// Pieces verified since ``takeArrived()`` last ran, and whether the whole artifact was announced.
    private var arrived: [Int] = []
    private var completionAnnounced = false
    /// Connections this download keeps (the store's included), to hear peers' `PieceHave`s; more open only as requests need them.
    static let maxPeerConnections = 24
    /// Peers are greeted again this often: a peer's server may have let this subscription
    /// go (it keeps a bounded number), and the answer brings its holdings in full.
    static let greetingInterval: Duration = .seconds(5)
    private var greetedAt: ContinuousClock.Instant?
    /// What each connected peer was last told of this download's interest in its pieces.
    private var interestTold: [String: Bool] = [:]
    private var interestToldAt: ContinuousClock.Instant?
    /// When each peer that chokes this download said so. After ``chokeLapse`` it is
    /// asked again as if it had never choked: one that still has no slot for this
    /// download answers with a choke, one that does (its unchoke was lost) or an
    /// older agent in its place serves, and a dead one lets the request time out
    /// and is dropped.
    private var chokedAt: [String: ContinuousClock.Instant] = [:]
    static let chokeLapse: Duration = .seconds(12)
    /// When the store (with `--store-upload-slots`) said to wait; it lapses as a peer's choke does.
    private var storeChokedAt: ContinuousClock.Instant?
    /// How long the last pieces from peers took, request to arrival (at most 16).
    private var pieceTimes: [Duration] = []
    /// Until pieces have been timed: how long a request to a peer may take before it is slow.
    private let slowAfterDefault: Duration
    /// Requests to peers given up as slow: the piece is asked elsewhere and the peer
    /// left out (its pieces not counted, peer lists not heeded for it) until it
    /// answers anything (it is alive: the next list brings it back) or its oldest
    /// such request reaches ``requestTimeout`` (then it is dropped, as a peer whose
    /// request timed out). Measured in the simulator: a dead peer held each of its pieces for the
    /// whole 30 s timeout, and the last pieces of every download waited for it.
    /// Per peer, the pieces so given up and when each was asked.
    private var slow: [String: [Int: ContinuousClock.Instant]] = [:]

    init(digest: String, machineID: String, store: BlobStore, context: ZMQContext, sender: String, seedEndpoint: Endpoint,
         seedSecurity: ClientSecurity, peerSecurity: DaemonSecurity = .insecure, logger: Logger, maxBytesPerSecond: UInt64 = 0, seedOnly: Bool = false, requestTimeout: Duration = .seconds(30),
         slowAfter: Duration = .seconds(10),
         now: ContinuousClock.Instant = .now) {
        self.digest = digest
        self.store = store
        self.context = context
        self.sender = sender
        self.seedEndpoint = seedEndpoint
        self.seedSecurity = seedSecurity
        self.peerSecurity = peerSecurity
        self.logger = logger
        self.maxBytesPerSecond = maxBytesPerSecond
        self.requestTimeout = requestTimeout
        self.slowAfterDefault = slowAfter
        self.seedOnly = seedOnly
        self.machineID = machineID
        self.swarm = [machineID]
        self.peersKnown = seedOnly
        self.startedAt = now
        if store.has(digest) { isComplete = true }
    }

    /// Pieces held and in the artifact (0 of 0 until the manifest arrived).
    var progress: (held: Int, total: Int) { (picker?.held.count ?? 0, picker?.pieceCount ?? 0) }

    /// Pieces held, for peer-list requests (the tracker hands them to other agents).
    var heldPieces: [UInt32] { heldSet.sorted().map(UInt32.init) }

    /// Pieces held.
    var heldSet: Set<Int> { picker?.held ?? [] }

    /// What was verified since the last call, for the peers that asked; the whole
    /// artifact once, when committed; nil when nothing is new.
    func takeArrived() -> PieceHolding? {
        if isComplete {
            guard !completionAnnounced else { return nil }
            completionAnnounced = true
            return PieceHolding(complete: true)
        }
        guard !arrived.isEmpty else { return nil }
        defer { arrived = [] }
        return PieceHolding(pieces: Set(arrived))
    }

    /// A peer's `PieceHave`, on this download's own connection to it (so the sender is
    /// the machine at the address the tracker gave, whatever the message says).
    private func learned(_ have: Slipway_V1_PieceHave, from machine: String) {
        guard have.digest == digest, var picker, endpoints[machine] != nil, coolingDown[machine] == nil,
              !picker.banned.contains(machine) else { return }
        picker.peer(machine, adds: have.complete ? Array(0..<picker.pieceCount) : have.pieces.map(Int.init))
        self.picker = picker
    }

    /// Asks the tracker for this artifact's peers, telling it the pieces held.
    var peerListRequest: Slipway_V1_PeerListRequest {
        var request = Slipway_V1_PeerListRequest()
        request.digest = digest
        request.machineID = machineID
        request.have = heldPieces
        return request
    }

    /// How long a request to a peer may take before the piece is asked elsewhere: four
    /// times the median of the last pieces' times (at least 2 s, at most the request
    /// timeout), or the default until three have been timed.
    private var slowAfter: Duration {
        guard pieceTimes.count >= 3 else { return slowAfterDefault }
        return min(max(pieceTimes.sorted()[pieceTimes.count / 2] * 4, .seconds(2)), requestTimeout)
    }

    /// Nothing is in flight: every known source is drained, so a fresh peer list is worth asking for now.
    var isIdle: Bool { sent.isEmpty }

    /// Peers banned for serving corrupt pieces.
    var banned: Set<String> { picker?.banned ?? [] }

    /// The open sockets, to poll.
    var sockets: [(source: PieceSource, socket: ZMQSocket)] { connections.map { ($0.key, $0.value) } }

    /// Takes in the tracker's peer list.
    func update(peers list: Slipway_V1_PeerList) {
        guard list.digest == digest, var picker else { return }
        peersKnown = true
        let now = ContinuousClock.now
        coolingDown = coolingDown.filter { $0.value > now }
        for peer in list.peers where SafeText.isName(peer.machineID, max: 128) && !picker.banned.contains(peer.machineID)
            && coolingDown[peer.machineID] == nil {
            guard let endpoint = try? Endpoint(parsing: peer.endpoint, origin: "peer \(SafeText.printable(peer.machineID))") else { continue }
            let key = CurveKey(bytes: [UInt8](peer.curveKey))
            if let known = endpoints[peer.machineID], known != endpoint || peerKeys[peer.machineID] != key {
                connections.removeValue(forKey: .peer(peer.machineID))?.close()
            }
            endpoints[peer.machineID] = endpoint
            peerKeys[peer.machineID] = key
            let pieces = peer.complete ? Set(0..<picker.pieceCount) : Set(peer.have.map(Int.init))
            picker.peer(peer.machineID, has: pieces)
            if !peer.complete { swarm.insert(peer.machineID) }
        }
        let members = swarm.sorted()
        picker.seedStripe = (members.firstIndex(of: machineID)!, members.count)
        self.picker = picker
        let listed = list.peers.map(\.machineID).filter { endpoints[$0] != nil && coolingDown[$0] == nil && !picker.banned.contains($0) }
        let again = greetedAt.map { now - $0 >= Self.greetingInterval } ?? true
        if again { greetedAt = now }
        greet(listed.filter { connections[.peer($0)] == nil } + (again ? connections.keys.compactMap(\.machine) : []))
    }

    /// Tells each of `machines` what is held here (connecting first, within
    /// ``maxPeerConnections``), which also asks it for its pieces as it verifies them.
    private func greet(_ machines: [String]) {
        guard !machines.isEmpty else { return }
        var hello = Slipway_V1_PieceHave()
        hello.digest = digest
        hello.machineID = machineID
        hello.pieces = Array(heldPieces.prefix(PieceServer.indicesPerHave))
        hello.heedsChoke = true
        let message = codec.encode(WireMessage(hello, sender: sender))
        for machine in Set(machines) where connections[.peer(machine)] != nil || connections.count < Self.maxPeerConnections {
            _ = try? connection(.peer(machine)).send(message, wait: .never)
        }
    }

    /// Asks for the manifest until it comes; then times out silent requests and
    /// sends whatever the picker (and the bandwidth cap) allows.
    func pump(now: ContinuousClock.Instant) throws {
        guard !isComplete else { return }
        if picker?.isComplete == true { return try commitIfComplete() }
        guard var picker else {
            if manifestAskedAt.map({ now - $0 >= .seconds(3) }) ?? true {
                // A fresh socket each time: a request lost to a restarting store is not waited on forever.
                connections.removeValue(forKey: .seed)?.close()
                var request = Slipway_V1_ManifestRequest()
                request.digest = digest
                _ = try connection(.seed).send(codec.encode(WireMessage(request, sender: sender)), wait: .never)
                manifestAskedAt = now
            }
            return
        }
        if !peersKnown, let manifestAt, now - manifestAt < .seconds(2) { return }
        let slowAfter = self.slowAfter
        for (piece, request) in sent where now - request.at >= slowAfter {
            guard case .peer(let machine) = request.source else { continue }
            sent[piece] = nil
            slow[machine, default: [:]][piece] = request.at
            // Its pieces stop counting (they may come from others or the store) and peer
            // lists do not bring it back while it is waited for.
            picker.remove(machine)
            coolingDown[machine] = slow[machine]!.values.min()! + requestTimeout
            logger.info("piece request slow; asking elsewhere", metadata: [
                "digest": "\(digest)", "piece": "\(piece)", "source": "\(request.source)", "after": "\(slowAfter)"])
        }
        for (piece, request) in sent where now - request.at >= requestTimeout {
            sent[piece] = nil
            requestIDs = requestIDs.filter { $0.value != piece }
            picker.failed(piece, from: request.source)
            logger.info("piece request timed out", metadata: ["digest": "\(digest)", "piece": "\(piece)", "source": "\(request.source)"])
            if case .peer(let machine) = request.source { drop(machine, picker: &picker, now: now) }
        }
        for (machine, requests) in slow where requests.values.contains(where: { now - $0 >= requestTimeout }) {
            logger.info("piece request timed out", metadata: ["digest": "\(digest)", "pieces": "\(requests.keys.sorted())", "source": "peer \(machine)"])
            drop(machine, picker: &picker, now: now)
        }
        if let at = storeChokedAt, now - at >= Self.chokeLapse {
            storeChokedAt = nil
            picker.seedChoked = false
        }
        for (machine, at) in chokedAt where now - at >= Self.chokeLapse {
            chokedAt[machine] = nil
            picker.unchoked(by: machine)
        }
        tellInterest(picker, now: now)
        if maxBytesPerSecond > 0 {
            let allowed = Double(maxBytesPerSecond) * Self.seconds(now - startedAt) + Double(manifest!.pieceSize)
            guard Double(requestedBytes) < allowed else { return self.picker = picker }
        }
        for request in picker.next(using: &random) {
            var message = Slipway_V1_PieceRequest()
            message.digest = digest
            message.firstPiece = UInt32(request.piece)
            message.count = 1
            message.heedsChoke = true
            message.alternatives = request.alternatives.map(UInt32.init)
            do {
                let wire = WireMessage(message, sender: sender)
                _ = try connection(request.source).send(codec.encode(wire), wait: .never)
                sent[request.piece] = (request.source, now)
                requestIDs[wire.envelope.messageID] = request.piece
                requestedBytes += UInt64(Manifest.pieceLength(manifest!, index: request.piece))
            } catch {
                picker.failed(request.piece, from: request.source)
            }
        }
        self.picker = picker
    }

    /// Gone, or unreachable at the address it advertises: its pieces are not really
    /// available, so they stop counting (they may come from the seed), and it is left
    /// out for a minute.
    private func drop(_ machine: String, picker: inout PiecePicker, now: ContinuousClock.Instant) {
        picker.remove(machine)
        connections.removeValue(forKey: .peer(machine))?.close()
        coolingDown[machine] = now + .seconds(60)
        for (piece, pending) in sent where pending.source == .peer(machine) { sent[piece] = nil }
        slow[machine] = nil
    }

    /// Any answer from `machine` shows it alive: if it was given up as slow, the next peer
    /// list brings it back (a late piece is timed with the others).
    private func heard(from machine: String, _ message: WireMessage) {
        guard let requests = slow.removeValue(forKey: machine) else { return }
        coolingDown[machine] = nil
        if message.type == .pieceData, let header = try? message.body(as: Slipway_V1_PieceData.self),
           let at = requests[Int(header.index)] {
            pieceTimes = (pieceTimes + [.now - at]).suffix(16)
        }
    }

    /// Tells each connected peer whether it holds pieces this download lacks, when
    /// that changed and every ``greetingInterval``: only interested downloaders are
    /// given its upload slots, and a peer forgets one it has not heard from.
    private func tellInterest(_ picker: PiecePicker, now: ContinuousClock.Instant) {
        if interestToldAt.map({ now - $0 >= Self.greetingInterval }) ?? true {
            interestToldAt = now
            interestTold = [:]
        }
        for case .peer(let machine) in connections.keys {
            let wants = picker.wants(from: machine)
            guard interestTold[machine] != wants else { continue }
            var interest = Slipway_V1_PieceInterest()
            interest.digest = digest
            interest.interested = wants
            if (try? connections[.peer(machine)]?.send(codec.encode(WireMessage(interest, sender: sender)), wait: .never)) == true {
                interestTold[machine] = wants
            }
        }
    }

    /// Reads every message waiting from `source`.
    func receive(from source: PieceSource, now: ContinuousClock.Instant) throws {
        guard let socket = connections[source] else { return }
        while let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) {
            guard let message = try? codec.decode(frames) else {
                rejected += 1
                continue
            }
            if case .peer(let machine) = source { heard(from: machine, message) }
            switch message.type {
            case .artifactManifest where source == .seed && picker == nil:
                try accept(manifest: message)
            case .pieceData:
                try accept(piece: message, from: source)
                // A banned source's socket is closed by now.
                if connections[source] == nil { return }
            case .pieceHave:
                guard case .peer(let machine) = source, let have = try? message.body(as: Slipway_V1_PieceHave.self) else {
                    rejected += 1
                    continue
                }
                learned(have, from: machine)
            case .pieceChoke where source == .seed:
                guard var picker, let choke = try? message.body(as: Slipway_V1_PieceChoke.self), choke.digest == digest else {
                    rejected += 1
                    continue
                }
                // The store's upload slots: wait for its unchoke, then ask afresh; peers meanwhile.
                storeChokedAt = choke.choked ? now : nil
                if choke.choked {
                    storeChokes += 1
                    SlipwayMetrics.choke("received")
                }
                if choke.choked, let refused = requestIDs.removeValue(forKey: message.envelope.inReplyTo), sent[refused]?.source == .seed {
                    sent[refused] = nil
                    picker.failed(refused, from: .seed)
                }
                picker.seedChoked = choke.choked
                self.picker = picker
            case .pieceChoke:
                guard case .peer(let machine) = source, var picker, let choke = try? message.body(as: Slipway_V1_PieceChoke.self),
                      choke.digest == digest else {
                    rejected += 1
                    continue
                }
                if choke.choked {
                    chokedAt[machine] = now
                    SlipwayMetrics.choke("received")
                    // In reply to a request: that one was not taken. Others it took are still coming.
                    let refused = requestIDs.removeValue(forKey: message.envelope.inReplyTo)
                    if let refused, sent[refused]?.source == source { sent[refused] = nil }
                    picker.choked(by: machine, refused: refused)
                } else {
                    chokedAt[machine] = nil
                    picker.unchoked(by: machine)
                }
                self.picker = picker
            case .errorReply:
                guard case .peer(let machine) = source, var picker else { continue }
                let code = (try? message.body(as: Slipway_V1_ErrorReply.self))?.code
                if code == .busy, let piece = requestIDs.removeValue(forKey: message.envelope.inReplyTo) {
                    // Its upload is taken: ask another holder; it is back with the next peer list.
                    if sent[piece]?.source == source { sent[piece] = nil }
                    picker.declined(piece, from: source)
                    self.picker = picker
                    continue
                }
                // "Not here": its piece set changed (it restarted, or collected the artifact).
                for (piece, request) in sent where request.source == source {
                    sent[piece] = nil
                    picker.failed(piece, from: source)
                }
                picker.remove(machine)
                self.picker = picker
                connections.removeValue(forKey: source)?.close()
                return
            default:
                rejected += 1
            }
            if isComplete { return }
        }
    }

    /// Closes every socket.
    func close() {
        for socket in connections.values { socket.close() }
        connections = [:]
    }

    private func accept(manifest message: WireMessage) throws {
        let manifest = try message.body(as: Slipway_V1_ArtifactManifest.self)
        guard manifest.digest == digest, (try? Manifest.validate(manifest)) != nil else {
            logger.warning("the store sent a manifest for another artifact or a malformed one", metadata: ["digest": "\(digest)"])
            return
        }
        _ = try store.begin(manifest)
        let held = store.receivedPieces(digest)
        self.manifest = manifest
        self.manifestAt = .now
        self.resumedPieces = held.count
        // One request per peer (measured: two, even only to peers that gave this
        // downloader a slot, were no faster). Alone with the store, two requests in
        // flight keep its link busy between pieces.
        picker = PiecePicker(pieceCount: manifest.pieceSha256.count, held: held, perPeerLimit: 1, seedLimit: seedOnly ? 2 : 1)
        let taken = store.takeReused(digest)
        if taken.pieces > 0 {
            SlipwayMetrics.piecesReused(by: "agent", pieces: taken.pieces, bytes: taken.bytes)
            logger.info("download shares pieces with earlier builds", metadata: [
                "digest": "\(digest)", "reused": "\(taken.pieces)", "bytes": "\(taken.bytes)", "pieces": "\(manifest.pieceSha256.count)"])
        }
        if held.count > taken.pieces {
            logger.info("download resumed", metadata: ["digest": "\(digest)", "held": "\(held.count)", "pieces": "\(manifest.pieceSha256.count)"])
        }
        try commitIfComplete()
    }

    private func accept(piece message: WireMessage, from source: PieceSource) throws {
        guard var picker, let header = try? message.body(as: Slipway_V1_PieceData.self), header.digest == digest else {
            rejected += 1
            return
        }
        let index = Int(header.index)
        let asked = requestIDs.removeValue(forKey: message.envelope.inReplyTo)
        // A piece the store chose answers the request for `asked`; another store request asking for `index` is still to be answered.
        if let request = sent[index], request.source == source, source != .seed || asked == nil || asked == index {
            sent[index] = nil
            if source != .seed { pieceTimes = (pieceTimes + [.now - request.at]).suffix(16) }
        }
        if source == .seed, let asked, asked != index, sent[asked]?.source == .seed {
            // The store sent one of the request's alternatives.
            sent[asked] = nil
            picker.storeChose(index, insteadOf: asked)
        }
        var valid = true
        if !picker.held.contains(index), (0..<picker.pieceCount).contains(index) {
            do {
                try store.store(digest, index: index, bytes: message.payload ?? [])
            } catch let error as ArtifactError where error.code == .pieceMismatch {
                valid = false
            }
        }
        switch picker.received(index, from: source, valid: valid) {
        case .accepted:
            arrived.append(index)
            if source == .seed { fromSeed += 1 } else { fromPeers += 1 }
            SlipwayMetrics.pieceDownloaded(from: source == .seed ? "seed" : "peer")
            logger.debug("piece", metadata: ["digest": "\(digest)", "piece": "\(index)", "source": "\(source)",
                                             "held": "\(picker.held.count)", "seconds": "\(Self.seconds(.now - startedAt))"])
        case .rejected:
            rejected += 1
            if case .peer(let machine) = source {
                logger.warning("peer served a corrupt piece; banned for this artifact", metadata: [
                    "digest": "\(digest)", "peer": "\(machine)", "piece": "\(index)"])
                for (piece, request) in sent where request.source == source { sent[piece] = nil }
                connections.removeValue(forKey: source)?.close()
            } else {
                logger.error("the regional store served a corrupt piece", metadata: ["digest": "\(digest)", "piece": "\(index)"])
            }
        case .ignored:
            break
        }
        self.picker = picker
        try commitIfComplete()
    }

    /// Commits once every piece is here and the store's digest queue has checked
    /// the whole artifact; until then the loop goes on serving peers.
    private func commitIfComplete() throws {
        guard picker?.isComplete == true, !isComplete, try store.commitIfVerified(digest) else { return }
        isComplete = true
        close()
    }

    private func connection(_ source: PieceSource) throws -> ZMQSocket {
        if let socket = connections[source] { return socket }
        let endpoint: Endpoint
        var security = ClientSecurity.plain
        switch source {
        case .seed:
            endpoint = seedEndpoint
            security = seedSecurity
        case .peer(let machine):
            guard let known = endpoints[machine] else { throw Failure("no endpoint known for peer \(machine)") }
            endpoint = known
            // A peer without a key (older, or an --insecure region) is asked in the clear: its pieces are checked all the same.
            if let key = peerKeys[machine] { security = peerSecurity.client(server: key) }
        }
        // Pieces are 4 MiB; a few in flight per source, so the default queue bounds are ample.
        let socket = try ZMQSocket.requestDealer(context: context, connectedTo: endpoint, options: security.options)
        connections[source] = socket
        if let machine = source.machine { interestTold[machine] = nil }
        return socket
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
