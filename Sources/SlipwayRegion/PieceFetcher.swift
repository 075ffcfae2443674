public import SlipwayCore
public import Logging
import SlipwayArtifact
public import SlipwayProto
public import SlipwayWire
public import SlipwayRegionStore
import SlipwayMetrics

/// Copies one artifact's pieces from other stores into a local store (a
/// ``PieceSink``: the region's store through its owner, or a `BlobStore`):
/// the I/O shell around ``ReplicationPlan``. One DEALER per source; pieces are
/// verified as they are stored (`BlobStore.store`), and a source that serves a
/// corrupt piece is not asked again.
///
/// Non-blocking and single-threaded: the owner polls ``sockets`` and calls
/// ``receive(from:)`` and ``pump(now:)``; ``run(timeout:)`` does that in a loop
/// for tools and benchmarks.
public final class PieceFetcher {
    /// Why a copy gave up.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// One line for logs and reports.
        public let description: String
    }

    /// The artifact being copied.
    public let manifest: Slipway_V1_ArtifactManifest
    /// Source names in order of preference.
    public let sourceNames: [String]
    /// When the copy started.
    public let startedAt: ContinuousClock.Instant
    /// Piece bytes received and stored by this copy (not counting pieces held before it started).
    public private(set) var bytesReceived: UInt64 = 0
    /// When the last new piece arrived (the start, until one does).
    public private(set) var lastProgress: ContinuousClock.Instant
    /// Messages dropped as malformed.
    public private(set) var rejected = 0 {
        didSet { SlipwayMetrics.rejected(daemon: "region", socket: "replication", reason: "bad_message") }
    }
    private var plan: ReplicationPlan
    private let endpoints: [Endpoint]
    private let securities: [ClientSecurity]
    private let store: any PieceSink
    private let context: ZMQContext
    private let sender: String
    private let logger: Logger
    private let maxBytesPerSecond: UInt64
    private let codec = WireCodec()
    private var connections: [ZMQSocket?]
    private var requested: UInt64 = 0

    /// Prepares a copy of `manifest` (already begun in `store`) from `sources`, tried in order.
    /// - Throws: when the store cannot say which pieces it already holds.
    public init(manifest: Slipway_V1_ArtifactManifest, sources: [(name: String, endpoint: Endpoint, security: ClientSecurity)], store: any PieceSink,
                context: ZMQContext, sender: String, logger: Logger, window: Int = 16, batch: Int = 8,
                maxBytesPerSecond: UInt64 = 0, now: ContinuousClock.Instant = .now) throws {
        self.manifest = manifest
        self.sourceNames = sources.map(\.name)
        self.endpoints = sources.map(\.endpoint)
        self.securities = sources.map(\.security)
        self.store = store
        self.context = context
        self.sender = sender
        self.logger = logger
        self.maxBytesPerSecond = maxBytesPerSecond
        self.startedAt = now
        self.lastProgress = now
        self.connections = Array(repeating: nil, count: sources.count)
        self.plan = ReplicationPlan(pieceCount: manifest.pieceSha256.count, sourceCount: sources.count,
                                    alreadyHeld: try store.receivedPieces(manifest.digest), window: window, batch: batch)
    }

    /// Pieces held, out of ``pieceCount``.
    public var piecesHeld: Int { plan.held.count }
    /// Pieces in the artifact.
    public var pieceCount: Int { plan.pieceCount }
    /// Every piece is stored; ``commit()`` next.
    public var isComplete: Bool { plan.isComplete }
    /// Every source served corrupt data: the copy cannot finish from them.
    public var isHopeless: Bool { plan.isHopeless }
    /// Why the sources were given up on.
    public var failureReason: String { plan.badReasons.joined(separator: "; ") }

    /// The open sockets with their source index, to poll.
    public var sockets: [(source: Int, socket: ZMQSocket)] {
        connections.enumerated().compactMap { index, socket in socket.map { (index, $0) } }
    }

    /// Rests sources that went silent (reconnecting them) and sends the requests the plan allows.
    public func pump(now: ContinuousClock.Instant) throws {
        for source in plan.expire(now: now) {
            logger.warning("source not answering; resting it", metadata: ["source": "\(sourceNames[source])", "digest": "\(manifest.digest)"])
            connections[source]?.close()
            connections[source] = nil
        }
        if maxBytesPerSecond > 0 {
            guard now >= startedAt + .milliseconds(Int64(requested * 1_000 / maxBytesPerSecond)) else { return }
        }
        for request in plan.nextRequests(now: now) {
            requested += (request.first..<request.first + request.count).reduce(0) { $0 + UInt64(Manifest.pieceLength(manifest, index: $1)) }
            var ask = Slipway_V1_PieceRequest()
            ask.digest = manifest.digest
            ask.firstPiece = UInt32(request.first)
            ask.count = UInt32(request.count)
            _ = try connection(request.source).send(codec.encode(WireMessage(ask, sender: sender)), wait: .never)
        }
    }

    /// Reads what source `source` has sent: pieces are verified and stored, a
    /// corrupt one bans the source, "not here" rests it.
    public func receive(from source: Int) throws {
        guard let socket = connections[source] else { return }
        for _ in 0..<64 {
            guard let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) else { return }
            guard let message = try? codec.decode(frames) else {
                rejected += 1
                continue
            }
            let now = ContinuousClock.now
            switch message.type {
            case .pieceData:
                guard let header = try? message.body(as: Slipway_V1_PieceData.self), header.digest == manifest.digest else {
                    rejected += 1
                    continue
                }
                try accept(Int(header.index), bytes: message.payload ?? [], from: source, now: now)
            case .errorReply:
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                logger.debug("source lacks the artifact", metadata: ["source": "\(sourceNames[source])", "error": "\(error?.message ?? "")"])
                plan.lacking(source, now: now)
            default:
                rejected += 1
            }
        }
    }

    /// Verifies the whole artifact and makes it visible in the store.
    /// - Returns: false if the store already had it committed (an upload of the same bytes).
    @discardableResult
    public func commit() throws -> Bool {
        try store.commitIfNeeded(manifest.digest)
    }

    /// Closes every socket.
    public func close() {
        for socket in connections { socket?.close() }
        connections = connections.map { _ in nil }
    }

    /// Copies and commits, blocking until done or `timeout` passes.
    public func run(timeout: Duration) throws {
        defer { close() }
        let deadline = ContinuousClock.now + timeout
        while !isComplete {
            guard !isHopeless else { throw Failure(description: failureReason) }
            guard ContinuousClock.now < deadline else { throw Failure(description: "copy of \(manifest.digest) timed out") }
            try pump(now: .now)
            let poller = ZMQPoller()
            let open = sockets
            for item in open { _ = try poller.add(item.socket) }
            let ready = try poller.poll(wait: .timeout(.milliseconds(50)))
            for (position, item) in open.enumerated() where ready[position].contains(.readable) { try receive(from: item.source) }
        }
        try commit()
    }

    private func accept(_ index: Int, bytes: [UInt8], from source: Int, now: ContinuousClock.Instant) throws {
        guard !plan.held.contains(index) else { return }
        do {
            try store.store(manifest.digest, index: index, bytes: bytes)
        } catch {
            if error is BlobStoreMailbox.Closed { throw error }
            guard let artifactError = error as? ArtifactError, artifactError.code == .pieceMismatch else {
                // The local disk failed, not the source: retry later rather than ban it.
                logger.error("cannot store a piece; pausing this source", metadata: [
                    "digest": "\(manifest.digest)", "piece": "\(index)", "error": "\(error)"])
                plan.lacking(source, now: now)
                return
            }
            logger.warning("peer served a corrupt piece; not asking it again for this artifact", metadata: [
                "peer": "\(sourceNames[source])", "digest": "\(manifest.digest)", "piece": "\(index)"])
            plan.corrupt(index, from: source, reason: "\(sourceNames[source]) served a corrupt piece \(index)")
            return
        }
        if plan.received(index, from: source, now: now) == .accepted {
            bytesReceived += UInt64(bytes.count)
            SlipwayMetrics.bytesReplicated.increment(by: Int64(bytes.count))
            lastProgress = now
        }
    }

    private func connection(_ source: Int) throws -> ZMQSocket {
        if let socket = connections[source] { return socket }
        // At most a window of pieces is ever outstanding: never drop any of it.
        let socket = try ZMQSocket.requestDealer(context: context, connectedTo: endpoints[source],
                                                options: [.receiveHighWaterMark(0)] + securities[source].options)
        connections[source] = socket
        return socket
    }
}
