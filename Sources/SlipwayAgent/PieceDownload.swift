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
    var manifest: Slipway_V1_ArtifactManifest?
    /// Pieces taken from the seed and from peers by this run.
    var fromSeed = 0, fromPeers = 0
    /// Times the store told this download to wait for one of its upload slots.
    var storeChokes = 0
    /// Pieces held when this run started (resumed from disk).
    var resumedPieces = 0
    /// Pieces that failed verification.
    var rejected = 0 {
        didSet { SlipwayMetrics.rejected(daemon: "agent", socket: "downloads", reason: "bad_message") }
    }
    /// Set when the whole artifact is committed to the local store.
    var isComplete = false

    let store: BlobStore
    let context: ZMQContext
    let sender: String
    let seedEndpoint: Endpoint
    /// How the agent proves itself to the region's store (the region's key pinned).
    let seedSecurity: ClientSecurity
    /// The agent's own key, to reach peers whose piece servers run CURVE (the key the tracker gives pinned).
    let peerSecurity: DaemonSecurity
    /// Each peer's piece server key, from the tracker (absent: it serves without CURVE).
    var peerKeys: [String: CurveKey] = [:]
    let logger: Logger
    let maxBytesPerSecond: UInt64
    let seedOnly: Bool
    let machineID: String
    var swarm: Set<String> = []
    let codec = WireCodec()
    var picker: PiecePicker?
    /// The picker's tie-break. Seeded once from the system: each draw of
    /// `SystemRandomNumberGenerator` is a `getrandom` call, and a shuffle of the
    /// picker's order draws once per piece (with message ids, about 365 calls a
    /// second per downloading agent).
    var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
    var connections: [PieceSource: ZMQSocket] = [:]
    var endpoints: [String: Endpoint] = [:]
    /// The requests out and what their answers say of the peers asked (``PieceRequests``), in
    /// seconds since ``startedAt``; made again for the pieces' lengths when the manifest comes.
    var requests: PieceRequests
    /// Pieces arriving in runs of blocks, one per source at a time (a source sends its pieces in order).
    var assemblies: [PieceSource: BlockAssembly] = [:]
    /// The piece requests in flight, to match their answers.
    var outstanding = OutstandingRequests()
    var manifestAskedAt: ContinuousClock.Instant?
    let startedAt: ContinuousClock.Instant
    var requestedBytes: UInt64 = 0
    /// When the manifest arrived, and whether a peer list has since: the seed is
    /// not asked before the first list (or a short wait for it), or every agent
    /// would take its first pieces from the store.
    var manifestAt: ContinuousClock.Instant?
    var peersKnown = false
    /// Pieces verified since ``takeArrived()`` last ran, pieces whose first blocks came in
    /// since (served on as they arrive), and whether the whole artifact was announced.
    var arrived: [Int] = []
    var startedArriving: [Int] = []
    var completionAnnounced = false
    /// Connections this download keeps (the store's included), to hear peers' `PieceHave`s; more open only as requests need them.
    static let maxPeerConnections = 24
    /// Peers are greeted again this often: a peer's server may have let this subscription
    /// go (it keeps a bounded number), and the answer brings its holdings in full.
    static let greetingInterval: Duration = .seconds(5)
    var greetedAt: ContinuousClock.Instant?
    /// What each connected peer was last told of this download's interest in its pieces.
    var interest = PeerInterest()

    init(digest: String, machineID: String, store: BlobStore, context: ZMQContext, sender: String, seedEndpoint: Endpoint,
         seedSecurity: ClientSecurity, peerSecurity: DaemonSecurity = .insecure, logger: Logger, maxBytesPerSecond: UInt64 = 0,
         seedOnly: Bool = false, requestTimeout: Duration = .seconds(30), slowAfter: Duration = .seconds(10),
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
        self.requests = PieceRequests(lengths: [], slowAfter: slowAfter.inSeconds, timeout: requestTimeout.inSeconds)
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

    /// Pieces being received in blocks and not held yet (``arriving(_:)``).
    var arrivingSet: Set<Int> {
        Set(assemblies.values.lazy.map(\.index).filter { self.picker?.held.contains($0) == false })
    }

    /// What was verified since the last call, for the peers that asked; the whole
    /// artifact once, when committed; nil when nothing is new.
    func takeArrived() -> PieceHolding? {
        if isComplete {
            guard !completionAnnounced else { return nil }
            completionAnnounced = true
            return PieceHolding(complete: true)
        }
        guard !arrived.isEmpty || !startedArriving.isEmpty else { return nil }
        defer { (arrived, startedArriving) = ([], []) }
        return PieceHolding(pieces: Set(arrived), arriving: Set(startedArriving).intersection(arrivingSet))
    }

    /// What has arrived of piece `index` in blocks, checked, for peers that asked for it
    /// in blocks: its block digests and its first blocks (the most any source sent).
    func arriving(_ index: Int) -> (blockDigests: [Data], bytes: [UInt8])? {
        guard picker?.held.contains(index) == false,
              let assembly = assemblies.values.filter({ $0.index == index }).max(by: { $0.bytes.count < $1.bytes.count }) else { return nil }
        return (assembly.blockDigests, assembly.bytes)
    }

    /// Asks the tracker for this artifact's peers, telling it the pieces held.
    var peerListRequest: Slipway_V1_PeerListRequest {
        var request = Slipway_V1_PeerListRequest()
        request.digest = digest
        request.machineID = machineID
        request.have = heldPieces
        return request
    }

    /// `instant` as ``requests`` keeps time: seconds since the download started.
    func clock(_ instant: ContinuousClock.Instant) -> Double { (instant - startedAt).inSeconds }

    /// Nothing is in flight: every known source is drained, so a fresh peer list is worth asking for now.
    var isIdle: Bool { requests.isIdle }

    /// Peers banned for serving corrupt pieces.
    var banned: Set<String> { picker?.banned ?? [] }

    /// The open sockets, to poll.
    var sockets: [(source: PieceSource, socket: ZMQSocket)] { connections.map { ($0.key, $0.value) } }

    /// Asks for the manifest until it comes; then times out silent requests and
    /// sends whatever the picker (and the bandwidth cap) allows.
    func pump(now: ContinuousClock.Instant) throws {
        guard !isComplete else { return }
        if picker?.isComplete == true { return try commitIfComplete() }
        guard var picker else {
            if manifestAskedAt.map({ now - $0 >= .seconds(3) }) ?? true {
                // A fresh socket each time: a request lost to a restarting store is not waited on forever.
                closeConnection(.seed)
                var request = Slipway_V1_ManifestRequest()
                request.digest = digest
                _ = try connection(.seed).send(codec.encode(WireMessage(request, sender: sender)), wait: .never)
                manifestAskedAt = now
            }
            return
        }
        if !peersKnown, let manifestAt, now - manifestAt < .seconds(2) { return }
        // A dropped connection's half-sent pieces will not be finished.
        if !assemblies.isEmpty { assemblies = assemblies.filter { connections[$0.key] != nil } }
        for expiry in requests.expire(now: clock(now), picker: &picker) {
            switch expiry {
            case .slow(let piece, let machine, let after):
                logger.info("piece request slow; asking elsewhere", metadata: [
                    "digest": "\(digest)", "piece": "\(piece)", "source": "peer \(machine)", "after": "\(after)s"])
            case .timedOut(let piece, let source):
                outstanding.forget(piece: piece, askedOf: source)
                dropAssembly(of: piece, from: source)
                logger.info("piece request timed out", metadata: ["digest": "\(digest)", "piece": "\(piece)", "source": "\(source)"])
            case .peerTimedOut(let machine, let pieces):
                logger.info("piece request timed out", metadata: ["digest": "\(digest)", "pieces": "\(pieces)", "source": "peer \(machine)"])
            }
            if let machine = expiry.dropped { closeConnection(.peer(machine)) }
        }
        tellInterest(picker, now: now)
        if maxBytesPerSecond > 0 {
            let allowed = Double(maxBytesPerSecond) * (now - startedAt).inSeconds + Double(manifest!.pieceSize)
            guard Double(requestedBytes) < allowed else { return self.picker = picker }
        }
        for request in picker.next(using: &random) {
            var message = Slipway_V1_PieceRequest()
            message.digest = digest
            message.firstPiece = UInt32(request.piece)
            message.count = 1
            message.heedsChoke = true
            message.blocks = true
            message.alternatives = request.alternatives.map(UInt32.init)
            do {
                let wire = WireMessage(message, sender: sender)
                _ = try connection(request.source).send(codec.encode(wire), wait: .never)
                requests.asked(request.piece, of: request.source, now: clock(now))
                if request.source == .seed {
                    logger.debug("store asked", metadata: ["digest": "\(digest)", "piece": "\(request.piece)",
                                                           "choices": "\(request.alternatives.count)", "seconds": "\(clock(now))"])
                }
                outstanding.record(wire.envelope.messageID, piece: request.piece, source: request.source)
                requestedBytes += UInt64(Manifest.pieceLength(manifest!, index: request.piece))
            } catch {
                picker.failed(request.piece, from: request.source)
            }
        }
        self.picker = picker
    }

    /// Closes every socket.
    func close() {
        for socket in connections.values { socket.close() }
        connections = [:]
        assemblies = [:]
        outstanding = OutstandingRequests()
    }

    /// Closes the connection to `source`; what was asked over it will not be answered.
    func closeConnection(_ source: PieceSource) {
        connections.removeValue(forKey: source)?.close()
        outstanding.forget(source)
    }

    func connection(_ source: PieceSource) throws -> ZMQSocket {
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
        if let machine = source.machine { interest.connected(machine) }
        return socket
    }
}
