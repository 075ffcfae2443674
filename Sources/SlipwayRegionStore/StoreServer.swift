public import SlipwayCore
import Foundation
public import Logging
import SlipwayArtifact
public import SlipwayAuth
import SlipwayProto
public import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// A region's blob store served on a ROUTER: uploads from the region's workers,
/// manifests and pieces for its agents and for other regions' replication. Its
/// thread is the store's one owner: the rest of the process reaches the store
/// through the ``BlobStoreMailbox`` it serves between requests.
///
/// What a peer can make it hold is bounded (``limits``): one upload piece in
/// progress and 8 complete messages waiting to be read, per peer; pieces it
/// asked for leave through a send queue of 4 messages per peer, the rest wait
/// in a ``PieceQueue`` (64 per peer, then `busy`) with one piece's bytes kept
/// for a peer whose queue is full.
public final class StoreServer: ServingLoop {
    /// A piece (16 MiB at most) and its envelope; 8 of them waiting; 4 on their way out.
    static let limits = ServerLimits(largestMessage: Int(Manifest.maxPieceSize) + (1 << 20), receiveQueue: 8, sendQueue: 4)
    /// What the server is: its region, its identity on the bus, where it listens, where its files are.
    public struct Settings: Sendable {
        /// The region whose store this is.
        public var region: String
        /// The process identity it sends as.
        public var id: String
        /// Where the ROUTER binds.
        public var endpoint: Endpoint
        /// The store's folder.
        public var path: String
        /// Its key and the keys it admits (workers upload, agents and regions read), or `.insecure`.
        public var security: DaemonSecurity
        /// Where refusals wait for the region's report to the coordinator's audit log.
        public var refusals: RefusalJournal
        /// Agents sent pieces at once, as agents' `--upload-slots` do: an agent that
        /// heeds `PieceChoke` waits for a slot and asks afresh when its turn comes
        /// (0: every agent is served as it asks).
        public var uploadSlots: Int

        /// Settings for the store of `region` in `path`, bound at `endpoint` with `security`.
        public init(region: String, id: String, endpoint: Endpoint, path: String, security: DaemonSecurity,
                    refusals: RefusalJournal = RefusalJournal(), uploadSlots: Int = 0) {
            self.region = region
            self.id = id
            self.endpoint = endpoint
            self.path = path
            self.security = security
            self.refusals = refusals
            self.uploadSlots = uploadSlots
        }
    }

    private let config: Settings
    private let mailbox: BlobStoreMailbox
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private let store: BlobStore
    private let socket: ZMQSocket
    private let connections: ConnectionGuard
    /// Answers the store socket's CURVE handshakes (nil when insecure).
    private let zap: ZAPHandler?
    private var rejections = RejectionLog(daemon: "region", socket: "store")
    private var owed = PieceQueue()
    private var sendCounts = PieceSendCounts()
    private var timeline: StoreTimeline
    /// Which agents that heed `PieceChoke` are sent pieces now (``Settings/uploadSlots``),
    /// and the artifact each asked for last, for its `PieceChoke`s.
    private var slots: UploadSlots<[UInt8]>
    /// Slot holders handed a piece that have not asked again: the piece may still be
    /// on its way (4 MiB at a slot's share of the link takes seconds), so the slot
    /// is not idle; their next request, or the end of their turn, ends it.
    private var awaitingNext: Set<[UInt8]> = []
    /// The bytes of a peer's next piece, kept while its send queue is full; for a piece
    /// sent in runs, its block digests and next block too, kept until its last run is sent.
    private var loaded: [[UInt8]: LoadedPiece] = [:]
    /// Answers waiting for a peer's full send queue: 16 per peer, 64 MiB for all (a
    /// manifest can be 1 MiB); a peer that reads none for as long as owed pieces are kept loses them.
    private lazy var unsent = ReplyBacklog(perPeer: 16, maxBytes: 64 << 20, staleAfter: owed.staleAfter)
    /// Manifests of artifacts being served (at most 64; committed artifacts never change).
    private var manifests: [String: Slipway_V1_ArtifactManifest] = [:]

    /// Opens the store (the only `BlobStore` on its folder in this process, so it
    /// also clears what a crash left half-written) and binds the ROUTER.
    public init(config: Settings, mailbox: BlobStoreMailbox, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.mailbox = mailbox
        self.logger = logger
        self.stop = stop
        self.slots = UploadSlots(slots: config.uploadSlots)
        self.timeline = StoreTimeline(logger: logger)
        self.context = try ZMQContext()
        do {
            self.store = try BlobStore(root: URL(fileURLWithPath: config.path))
        } catch {
            throw StartupError(setting: "--store-dir \(config.path)", reason: "cannot open the store: \(error)")
        }
        zap = try config.security.startZAP(context: context, daemon: "region", logger: logger)
        (socket, connections) = try ZMQSocket.boundedRouter(context: context, endpoint: config.endpoint, limits: Self.limits,
                                                            security: config.security.server, daemon: "region", name: "store", logger: logger)
    }

    public var opened: [String: String] {
        ["region": config.region, "store": "\(config.endpoint)", "store_dir": config.path,
         "artifacts": "\((try? store.committedDigests().count) ?? 0)"]
    }

    public func serve() throws {
        defer {
            mailbox.close()
            connections.stop()
            socket.close()
        }
        let poller = ZMQPoller()
        try poller.add(socket)
        try poller.add(connections.events)
        let wake = poller.add(fileDescriptor: mailbox.wakeDescriptor)
        while !stop.isStopped {
            mailbox.runWaiting(on: store)
            connections.poll()
            rejections.flush(logger: logger)
            sendOwedPieces()
            let ready = try poller.poll(wait: .timeout(owed.count > 0 || !unsent.isEmpty ? .milliseconds(5) : .milliseconds(100)))
            if ready[wake].contains(.readable) { mailbox.runWaiting(on: store) }
            guard ready[0].contains(.readable) else { continue }
            let received = try codec.receiveRouted(from: socket, wait: .never, maxFrames: 8) { error in
                rejections.record(error, logger: logger)
            }
            guard let (peer, message) = received else { continue }
            let sender = DaemonSecurity.sender(of: socket)
            if let refusal = config.security.refusal(message.type, from: sender, on: socket) {
                config.refusals.refused(message.type, from: sender, daemon: "region", at: RefusalPlace.store(region: config.region), reason: refusal,
                                        log: &rejections, logger: logger)
                reply(peer, to: message.envelope.messageID, error: refusal, code: .permissionDenied)
                continue
            }
            do {
                try handle(peer, message)
            } catch {
                logger.warning("request failed", metadata: ["type": "\(message.type)", "error": "\(error)"])
                reply(peer, to: message.envelope.messageID, error: "\(error)")
            }
        }
    }

    private func handle(_ peer: [UInt8], _ message: WireMessage) throws {
        switch message.type {
        case .uploadBegin:
            let begin = try message.body(as: Slipway_V1_UploadBegin.self)
            let next = try store.begin(begin.manifest)
            let taken = store.takeReused(begin.manifest.digest)
            if taken.pieces > 0 {
                SlipwayMetrics.piecesReused(by: "store", pieces: taken.pieces, bytes: taken.bytes)
                logger.info("upload shares pieces with earlier builds", metadata: [
                    "digest": "\(begin.manifest.digest)", "pieces": "\(taken.pieces)", "bytes": "\(taken.bytes)"])
            }
            ack(peer, digest: begin.manifest.digest, next: next,
                held: PieceBitmap(store.receivedPieces(begin.manifest.digest), count: begin.manifest.pieceSha256.count))
        case .pieceData:
            let header = try message.body(as: Slipway_V1_PieceData.self)
            do {
                let next = try store.put(header.digest, index: Int(header.index), bytes: message.payload ?? [])
                ack(peer, digest: header.digest, next: next)
            } catch let error as ArtifactError {
                ack(peer, digest: header.digest, next: Int(header.index), error: error.description)
            }
        case .uploadCommit:
            let commit = try message.body(as: Slipway_V1_UploadCommit.self)
            do {
                try store.commit(commit.digest)
                logger.info("artifact committed", metadata: ["digest": "\(commit.digest)", "region": "\(config.region)"])
                var ack = Slipway_V1_UploadAck()
                ack.digest = commit.digest
                ack.committed = true
                send(peer, ack)
            } catch let error as ArtifactError {
                var ack = Slipway_V1_UploadAck()
                ack.digest = commit.digest
                ack.error = error.description
                send(peer, ack)
            }
        case .manifestRequest:
            let request = try message.body(as: Slipway_V1_ManifestRequest.self)
            guard let manifest = try store.manifest(request.digest) else {
                return reply(peer, to: message.envelope.messageID, error: "artifact \(SafeText.printable(request.digest, limit: 80)) is not in region \(config.region)", code: .notFound)
            }
            send(peer, manifest)
        case .pieceRequest:
            let request = try message.body(as: Slipway_V1_PieceRequest.self)
            guard let manifest = try store.manifest(request.digest) else {
                return reply(peer, to: message.envelope.messageID, error: "artifact \(SafeText.printable(request.digest, limit: 80)) is not in region \(config.region)", code: .notFound)
            }
            let first = Int(request.firstPiece)
            let end = min(manifest.pieceSha256.count, first + Int(min(request.count, 64)))
            guard first < end else { return reply(peer, to: message.envelope.messageID, error: "no pieces in the requested range", code: .invalidArgument) }
            var pieces = first..<end
            timeline.heard(peer, as: message.envelope.sender)
            awaitingNext.remove(peer)
            let throughSlots = config.uploadSlots > 0 && request.heedsChoke && pieces.count == 1
            let standing: StoreTimeline.Slot = throughSlots ? .taken : .none
            if throughSlots {
                let (taken, notices) = slots.request(from: peer, digest: request.digest, now: .now)
                // The answer to this request: it was not taken; the agent waits for an unchoke and asks afresh.
                guard taken else {
                    timeline.requested(peer, piece: first, sent: nil, slot: .refused)
                    return choke(peer, digest: request.digest, choked: true, inReplyTo: message)
                }
                apply(notices)
            }
            let offered = pieces.count == 1 && !request.alternatives.isEmpty
            if offered {
                // An agent's piece: of those it offers, the one the store has sent least.
                let chosen = sendCounts.choose(request.digest, asked: first, alternatives: request.alternatives,
                                               pieceCount: manifest.pieceSha256.count)
                pieces = chosen..<(chosen + 1)
            }
            let inBlocks = request.blocks && manifest.blockSize > 0
            let entries = pieces.map { PieceQueue.Entry(requestID: message.envelope.messageID, digest: request.digest, index: $0, inBlocks: inBlocks) }
            guard owed.enqueue(entries, for: peer, now: .now) else {
                timeline.requested(peer, piece: first, sent: nil, slot: standing)
                SlipwayMetrics.busy(server: "store")
                return reply(peer, to: message.envelope.messageID, error: "\(owed.perPeer) pieces already wait for you; ask again when they have arrived", code: .busy)
            }
            // Only pieces agents let the store choose are counted: a replica's pieces leave the region.
            if offered { sendCounts.count(request.digest, piece: pieces.lowerBound) }
            timeline.requested(peer, piece: first, sent: pieces.lowerBound, slot: standing)
            sendOwedPieces()
        default:
            reply(peer, to: message.envelope.messageID, error: "the store does not handle \(message.type)", code: .unsupported)
        }
    }

    /// Sends waiting answers, then owed pieces, while each peer's send queue takes them.
    private func sendOwedPieces() {
        let now = ContinuousClock.now
        if config.uploadSlots > 0 {
            apply(slots.tick(now: now) { self.owed.count(for: $0) + (self.awaitingNext.contains($0) ? 1 : 0) })
            awaitingNext.formIntersection(slots.served)
        }
        unsent.flush(on: socket, now: now)
        for (peer, entries) in owed.stale(now: now) {
            loaded[peer] = nil
            logger.info("a peer read nothing for 30 s; its queued pieces were dropped", metadata: ["pieces": "\(entries.count)"])
        }
        for peer in owed.peers where !unsent.isWaiting(for: peer) {
            while let entry = owed.next(for: peer) {
                let frames: [[UInt8]], following: Int?
                if let encoded = loaded[peer]?.encoded, loaded[peer]?.entry == entry {
                    (frames, following) = encoded
                } else {
                    guard let (message, after) = pieceMessage(entry, for: peer) else {
                        owed.sent(to: peer, now: now)
                        loaded[peer] = nil
                        reply(peer, to: entry.requestID, error: "piece \(entry.index) of \(entry.digest) is not in region \(config.region)", code: .notFound)
                        continue
                    }
                    (frames, following) = (codec.encode(message, to: peer), after)
                }
                do {
                    // Its send queue is full: the message stays loaded, encoded, until it has room.
                    guard try socket.send(frames, wait: .never) else {
                        loaded[peer]?.encoded = (frames, following)
                        break
                    }
                } catch {
                    owed.drop(peer)  // gone
                    loaded[peer] = nil
                    awaitingNext.remove(peer)
                    apply(slots.gone(peer, now: now))
                    break
                }
                loaded[peer]?.encoded = nil
                if let following {
                    loaded[peer]!.nextBlock = following
                    owed.progressed(peer, now: now)
                    continue
                }
                owed.sent(to: peer, now: now)
                timeline.sent(peer, piece: entry.index)
                slots.answered(peer, now: now)
                if config.uploadSlots > 0, slots.heeding[peer] != nil { awaitingNext.insert(peer) }
                loaded[peer] = nil
                SlipwayMetrics.pieceServed(by: "store")
            }
        }
    }

    /// The next `PieceData` for `entry`, whole or the next run of its blocks, and the
    /// block after that run (nil: the piece is done once it is sent); its bytes are read
    /// once and kept while they wait.
    private func pieceMessage(_ entry: PieceQueue.Entry, for peer: [UInt8]) -> (WireMessage, next: Int?)? {
        guard let manifest = manifests[entry.digest] ?? (try? store.manifest(entry.digest)), entry.index < manifest.pieceSha256.count else {
            return nil
        }
        if manifests.count > 64 { manifests.removeAll() }
        manifests[entry.digest] = manifest
        if loaded[peer]?.entry != entry {
            guard let read = try? store.piece(entry.digest, index: entry.index) else { return nil }
            let digests = entry.inBlocks && !read.isEmpty ? Manifest.blockDigests(of: read, blockSize: Int(manifest.blockSize)) : []
            loaded[peer] = LoadedPiece(entry: entry, bytes: read, blockDigests: digests)
        }
        let kept = loaded[peer]!
        if !kept.blockDigests.isEmpty,
           let run = Manifest.blockRun(manifest, index: entry.index, length: kept.bytes.count, available: kept.bytes,
                                       firstBlock: kept.nextBlock, blockDigests: kept.blockDigests) {
            return (WireMessage(run.header, sender: config.id, inReplyTo: entry.requestID, payload: run.payload), run.next)
        }
        let header = Manifest.pieceHeader(manifest, index: entry.index, length: kept.bytes.count)
        return (WireMessage(header, sender: config.id, inReplyTo: entry.requestID, payload: kept.bytes), nil)
    }

    /// Sends the slots' decisions.
    private func apply(_ notices: [UploadSlots<[UInt8]>.Notice]) {
        for notice in notices {
            timeline.slot(notice.peer, choked: notice.choked)
            choke(notice.peer, digest: notice.digest, choked: notice.choked)
        }
    }

    private func choke(_ peer: [UInt8], digest: String, choked: Bool, inReplyTo request: WireMessage? = nil) {
        var message = Slipway_V1_PieceChoke()
        message.digest = digest
        message.choked = choked
        send(peer, message, inReplyTo: request?.envelope.messageID ?? "")
    }

    private func ack(_ peer: [UInt8], digest: String, next: Int, error: String = "", held: PieceBitmap? = nil) {
        var ack = Slipway_V1_UploadAck()
        ack.digest = digest
        ack.nextPiece = UInt32(next)
        ack.error = error
        if let held { ack.held = held.bytes }
        send(peer, ack)
    }

    /// Answers the request `requestID` with an error, so its asker knows which request failed.
    private func reply(_ peer: [UInt8], to requestID: String, error text: String, code: Slipway_V1_ErrorCode = .internal) {
        send(peer, Slipway_V1_ErrorReply(code, text), inReplyTo: requestID)
    }

    /// Answers at once, or as soon as the peer's send queue has room: an answer lost to a
    /// full queue (a `busy` to a peer still reading its pieces) left its asker waiting out
    /// its request timeout.
    private func send(_ peer: [UInt8], _ body: some WireBody, inReplyTo requestID: String = "") {
        let message = WireMessage(body, sender: config.id, inReplyTo: requestID)
        switch unsent.send(codec.encode(message, to: peer), to: peer, on: socket) {
        case .sent, .queued: break
        case .gone: logger.info("could not reply; peer gone")
        case .dropped: rejections.record(reason: "reply_dropped", detail: "a peer's send queue stayed full", logger: logger)
        }
    }
}
