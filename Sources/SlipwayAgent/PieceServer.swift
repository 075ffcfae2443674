import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayWire
import SlipwayMetrics

/// Serves this machine's verified pieces to its peers, with backpressure, and
/// tells the peers that asked (`PieceHave`) each piece it verifies as it verifies it.
///
/// Pieces are up to 4 MiB and uploads are the scarce resource of a swarm: a
/// peer that accepted every request would build a queue minutes long, holding
/// pieces other peers could send at once. So each peer's pipe holds at most one
/// message beyond the one being sent (send high-water mark, small kernel buffer),
/// and the rest wait here in order. A downloader that asks for blocks gets each
/// piece as runs of them (``QueuedPiece``), so the message is a quarter of a
/// typical piece and each block is checked as it lands. Downloaders that heed `PieceChoke` are
/// served a few at a time (``UploadChoker``), each with at most
/// ``maxQueuedPerPeer`` pieces waiting; an older downloader's requests past
/// ``maxQueued`` are answered `ErrorReply{busy}` at once (ask another holder).
final class PieceServer {
    /// Requests of downloaders that do not heed `PieceChoke` waiting for pipe space, in all.
    let maxQueued: Int
    /// Pieces waiting per downloader with an upload slot.
    static let maxQueuedPerPeer = 4
    /// Pieces sent since start.
    private(set) var piecesServed = 0
    /// Malformed messages dropped.
    private(set) var rejected = 0 {
        didSet { SlipwayMetrics.rejected(daemon: "agent", socket: "pieces", reason: "bad_message") }
    }
    let socket: ZMQSocket
    /// Watches the peers' connections.
    let connections: ConnectionGuard
    private let store: BlobStore
    private let sender: String
    /// This machine, as `PieceHave`s name it.
    private let machineID: String
    private let codec = WireCodec()
    private var manifests: [String: Slipway_V1_ArtifactManifest] = [:]
    /// Per peer, in order; a head's bytes stay loaded while its pipe is full.
    private var queues: [[UInt8]: [QueuedPiece]] = [:]
    /// A request still queued after this long, or a piece sent in runs whose peer took
    /// none for this long, is answered `busy` and dropped: a peer that stopped reading
    /// must not hold the queue for everyone.
    static let queueTimeout: Duration = .seconds(10)
    /// Per artifact, the peers that asked for this machine's pieces as they arrive
    /// (routing id → when they asked), at most ``maxSubscribers`` each.
    private var subscribers: [String: [[UInt8]: ContinuousClock.Instant]] = [:]
    /// Pieces verified here that a subscriber has not been told of yet (its pipe was full).
    private var untold: [[UInt8]: [String: PieceHolding]] = [:]
    /// The origin of ``lastAsked(_:)``'s durations.
    private let subscribedSince = ContinuousClock.now
    /// Peers told of this machine's pieces, per artifact; the oldest make way.
    static let maxSubscribers = 64
    /// Artifacts with subscribers; the one asked about longest ago makes way.
    static let maxSubscribedArtifacts = 4
    /// Answers waiting for a peer's pipe (it holds one message), in order; a peer that
    /// asks and never reads is answered at most 16 behind.
    private var unsent = ReplyBacklog(perPeer: 16)
    /// Indices per `PieceHave`, so one stays well inside a peer's 64 KiB frame limit.
    static let indicesPerHave = 8_192
    /// Which downloaders that heed `PieceChoke` are served now, and the artifact each downloads.
    private var slots: UploadSlots<[UInt8]>
    /// When the slots were last handed on. Their times are seconds (a turn, an idle grace), and
    /// the loop turns once per message: handing them on every turn took 8 % of a downloading
    /// agent's loop thread (measured at 256 KiB pieces), so it is done every ``slotTickInterval``,
    /// as the simulator's agents do.
    private var lastSlotTick: ContinuousClock.Instant?
    static let slotTickInterval: Duration = .milliseconds(50)
    /// Upload slots are used (`--upload-slots` above 0); else every downloader is served as it asks.
    let choking: Bool
    /// What this machine's downloads have received of a piece it does not hold yet
    /// (``PieceDownload/arriving(_:)``), to send on to peers that asked for it in blocks.
    var arriving: (_ digest: String, _ index: Int) -> (blockDigests: [Data], bytes: [UInt8])? = { _, _ in nil }
    /// Who may ask (``DaemonSecurity/refusal(_:from:on:)``: `agent` keys in the trust folder).
    private let security: DaemonSecurity
    /// Messages refused by role or revoked key, summarised in the log at most once a minute.
    private var refusals = RejectionLog(daemon: "agent", socket: "pieces")
    /// The same refusals, until the region has passed them on to the audit log.
    let refusalJournal = RefusalJournal()
    private let logger: Logger

    /// Binds a ROUTER at `endpoint` serving from `store`.
    /// With `security` authenticated, peers connect over CURVE and only the keys of its trust folder are admitted.
    init(context: ZMQContext, endpoint: Endpoint, store: BlobStore, machineID: String, sender: String, logger: Logger,
         security: DaemonSecurity = .insecure, maxQueued: Int = 2, uploadSlots: Int = 0) throws {
        self.store = store
        self.security = security
        self.logger = logger
        self.machineID = machineID
        self.sender = sender
        self.maxQueued = maxQueued
        self.slots = UploadSlots(slots: uploadSlots)
        self.choking = uploadSlots > 0
        // One piece in each peer's pipe beyond the one being sent, and a small kernel buffer.
        (socket, connections) = try ZMQSocket.boundedRouter(context: context, endpoint: endpoint,
                                                            limits: ServerLimits(largestMessage: 64 << 10, receiveQueue: 16, sendQueue: 1),
                                                            security: security.server, daemon: "agent", name: "pieces", logger: logger) {
            try $0.set(.sendBuffer(256 << 10))
        }
    }

    /// Requests waiting, in all.
    var queued: Int { queues.values.reduce(0) { $0 + $1.count } }

    /// Requests of downloaders that do not heed `PieceChoke` waiting.
    private var queuedForOlderPeers: Int { queues.reduce(0) { $0 + (slots.heeding[$1.key] == nil ? $1.value.count : 0) } }

    /// Downloaders being uploaded to now, of those that heed `PieceChoke`.
    var uploadingTo: Int { slots.served.count }

    /// Forgets what it knew about `digest` (deleted from the store).
    func forget(_ digest: String) {
        manifests[digest] = nil
        unsubscribe(from: digest)
        // A message kept for a full pipe is looked at again like any other: not here now.
        for peer in Array(queues.keys) {
            for index in queues[peer]!.indices where queues[peer]![index].digest == digest { queues[peer]![index].encoded = nil }
        }
    }

    /// Reads waiting requests (queueing or refusing them), then sends what the pipes take.
    /// A `PieceInterest` puts its sender in line for an upload slot, or out of it.
    /// A `PieceHave` subscribes its sender to this machine's pieces of that artifact; what
    /// it says the sender holds is not used: this socket cannot tell who sent it, and a
    /// downloader learns a peer's pieces from the peer's answers on its own connection,
    /// to the address the tracker gave.
    /// - Parameter holdings: what this machine holds of an artifact (nil: nothing, and not downloading it).
    func serve(holdings: (String) -> PieceHolding? = { _ in nil }) throws {
        refusals.flush(logger: logger)
        for _ in 0..<256 {
            guard let (peer, message) = try codec.receiveRouted(from: socket, wait: .never, maxFrames: 4, dropped: { _ in rejected += 1 }) else {
                break
            }
            let asker = DaemonSecurity.sender(of: socket)
            if let refusal = security.refusal(message.type, from: asker, on: socket) ?? regionRefusal(asker) {
                refusalJournal.refused(message.type, from: asker, daemon: "agent", at: "piece server of machine \(machineID)", reason: refusal,
                                       log: &refusals, logger: logger)
                reply(peer, to: message, error: .permissionDenied, refusal)
                continue
            }
            if message.type == .pieceHave {
                guard let have = try? message.body(as: Slipway_V1_PieceHave.self), Manifest.isDigest(have.digest),
                      SafeText.isName(have.machineID, max: 128) else {
                    rejected += 1
                    continue
                }
                if let held = holdings(have.digest) {
                    subscribe(peer, to: have.digest, telling: held)
                    if choking, have.heedsChoke { slots.heed(peer, digest: have.digest) }
                }
                continue
            }
            if message.type == .pieceInterest {
                guard let interest = try? message.body(as: Slipway_V1_PieceInterest.self), Manifest.isDigest(interest.digest) else {
                    rejected += 1
                    continue
                }
                guard choking else { continue }
                // Wherever its requests would be served: held, being fetched, or asked of before.
                guard holdings(interest.digest) != nil || manifests[interest.digest] != nil else { continue }
                apply(slots.interest(peer, digest: interest.digest, interested: interest.interested, now: .now))
                continue
            }
            guard message.type == .pieceRequest, let request = try? message.body(as: Slipway_V1_PieceRequest.self) else {
                reply(peer, to: message, error: .unsupported, "an agent serves only pieces")
                continue
            }
            let manifest = manifests[request.digest] ?? (try? store.manifest(request.digest)) ?? store.incomingManifestIfAny(request.digest)
            manifests[request.digest] = manifest
            let first = Int(request.firstPiece)
            guard let manifest, request.count > 0, first < manifest.pieceSha256.count else {
                reply(peer, to: message, error: .notFound, "no such artifact or piece here")
                continue
            }
            if choking, request.heedsChoke {
                guard queues[peer, default: []].count < Self.maxQueuedPerPeer else {
                    reply(peer, to: message, error: .busy, "too many requests waiting; ask another peer")
                    continue
                }
                let (taken, notices) = slots.request(from: peer, digest: request.digest, now: .now)
                guard taken else {
                    // The answer to this request: it was not taken; wait for an unchoke.
                    choke(peer, digest: request.digest, choked: true, inReplyTo: message)
                    continue
                }
                apply(notices)
            } else if queuedForOlderPeers >= maxQueued {
                reply(peer, to: message, error: .busy, "uploading to others; ask another peer")
                continue
            }
            let inBlocks = request.blocks && manifest.blockSize > 0
            for index in first..<min(first + min(Int(request.count), 4), manifest.pieceSha256.count) {
                queues[peer, default: []].append(QueuedPiece(request: message, digest: request.digest, index: index, inBlocks: inBlocks,
                                                             waitingSince: .now))
            }
        }
        flush()
    }

    /// Peers told of `digest`'s pieces as they arrive.
    func subscriberCount(_ digest: String) -> Int { subscribers[digest]?.count ?? 0 }

    /// Pieces of `digest` verified here since the last call (or all of it): every subscriber is told.
    func announce(_ digest: String, _ held: PieceHolding) {
        guard let peers = subscribers[digest] else { return }
        for peer in peers.keys { untold[peer, default: [:]][digest, default: PieceHolding()].merge(held) }
    }

    private func subscribe(_ peer: [UInt8], to digest: String, telling held: PieceHolding) {
        if subscribers[digest] == nil, subscribers.count >= Self.maxSubscribedArtifacts,
           let stalest = subscribers.min(by: { lastAsked($0.value) < lastAsked($1.value) })?.key {
            unsubscribe(from: stalest)
        }
        var peers = subscribers[digest] ?? [:]
        if peers[peer] == nil, peers.count >= Self.maxSubscribers, let oldest = peers.min(by: { $0.value < $1.value })?.key {
            peers[oldest] = nil
            untold[oldest]?[digest] = nil
        }
        peers[peer] = .now
        subscribers[digest] = peers
        untold[peer, default: [:]][digest, default: PieceHolding()].merge(held)
    }

    /// When a subscriber of an artifact last asked; an artifact nobody listens to any more counts as asked first.
    private func lastAsked(_ peers: [[UInt8]: ContinuousClock.Instant]) -> Duration {
        peers.values.max().map { $0 - subscribedSince } ?? .zero
    }

    private func unsubscribe(from digest: String) {
        guard let peers = subscribers.removeValue(forKey: digest) else { return }
        for peer in peers.keys { untold[peer]?[digest] = nil }
    }

    /// Sends a subscriber what it has not been told, while its pipe takes it.
    private func tell(_ peer: [UInt8]) {
        while let (digest, held) = untold[peer]?.first.map({ ($0.key, $0.value) }) {
            var have = Slipway_V1_PieceHave()
            have.digest = digest
            have.machineID = machineID
            have.complete = held.complete
            let pieces = held.complete ? [] : held.pieces.sorted()
            have.pieces = pieces.prefix(Self.indicesPerHave).map(UInt32.init)
            // As many as its downloads have sources: a few dozen at most.
            have.arriving = held.arriving.sorted().map(UInt32.init)
            do {
                guard try socket.send(codec.encode(WireMessage(have, sender: sender), to: peer), wait: .never) else { return }
            } catch {
                // Gone: it is told nothing more.
                untold[peer] = nil
                apply(slots.gone(peer, now: .now))
                for digest in subscribers.keys {
                    subscribers[digest]?[peer] = nil
                    if subscribers[digest]?.isEmpty == true { subscribers[digest] = nil }
                }
                return
            }
            if pieces.count > Self.indicesPerHave {
                untold[peer]![digest]!.pieces.subtract(pieces.prefix(Self.indicesPerHave))
                untold[peer]![digest]!.arriving = []
            } else {
                untold[peer]![digest] = nil
            }
        }
        untold[peer] = nil
    }

    /// Sends queued pieces until each peer's pipe is full, then tells the subscribers
    /// with no piece waiting what arrived. A peer being sent pieces hears of new ones
    /// only after them: each pipe holds one message, and a have in it would hold back
    /// the piece the peer asked for (measured: requests then waited until they timed out).
    func flush() {
        defer { for peer in Array(untold.keys) where queues[peer] == nil && !unsent.isWaiting(for: peer) { tell(peer) } }
        let now = ContinuousClock.now
        if lastSlotTick.map({ now - $0 >= Self.slotTickInterval }) ?? true {
            lastSlotTick = now
            apply(slots.tick(now: now) { self.queues[$0]?.count ?? 0 })
        }
        unsent.flush(on: socket, now: now)
        for peer in Array(queues.keys) {
            guard !unsent.isWaiting(for: peer) else { continue }
            let isStale = { (queued: QueuedPiece) in now - queued.waitingSince >= Self.queueTimeout }
            for stale in queues[peer]!.filter(isStale) {
                reply(peer, to: stale.request, error: .busy, stale.isStarted ? "stopped reading; ask another peer" : "queued too long; ask another peer")
                slots.answered(peer, now: now)
            }
            queues[peer]!.removeAll(where: isStale)
            pieces: while var next = queues[peer]?.first {
                let frames: [[UInt8]], following: Int?
                if let encoded = next.encoded {
                    (frames, following) = encoded
                } else {
                    switch headMessage(&next, to: peer, now: now) {
                    case .dropped: continue pieces
                    case .waiting: break pieces
                    case .ready(let message, let after): (frames, following) = (codec.encode(message, to: peer), after)
                    }
                }
                do {
                    guard try socket.send(frames, wait: .never) else {
                        // Pipe full: the same frames go next turn, without rereading, rehashing or copying.
                        next.encoded = (frames, following)
                        queues[peer]![0] = next
                        break
                    }
                    next.encoded = nil
                    if let following {
                        next.nextBlock = following
                        next.waitingSince = now
                        queues[peer]![0] = next
                        continue
                    }
                    queues[peer]!.removeFirst()
                    slots.answered(peer, now: now)
                    piecesServed += 1
                    SlipwayMetrics.pieceServed(by: "agent")
                } catch {
                    queues[peer] = nil  // the peer went away
                    apply(slots.gone(peer, now: now))
                    break
                }
            }
            if queues[peer]?.isEmpty == true { queues[peer] = nil }
        }
    }

    /// What the piece at the head of a peer's queue has to send.
    private enum HeadMessage {
        /// It was answered (`busy` or `notFound`) and dropped: look at the next one.
        case dropped
        /// Its next blocks have not arrived here yet.
        case waiting
        /// Its next message, and the block after it (nil: the piece is done once it is sent).
        case ready(WireMessage, next: Int?)
    }

    private func headMessage(_ next: inout QueuedPiece, to peer: [UInt8], now: ContinuousClock.Instant) -> HeadMessage {
        // Memory first: a piece waiting for its next blocks is looked for every turn. One
        // still arriving is only for a peer that asked in blocks; others are told busy.
        let source = next.bytes.map { PieceBytes.held($0) }
            ?? (next.inBlocks ? arriving(next.digest, next.index).map { .arriving(blockDigests: $0.blockDigests, bytes: $0.bytes) } : nil)
            ?? store.heldPiece(next.digest, index: next.index).map { .held($0) }
        guard let manifest = manifests[next.digest], let source else {
            // Started: its download here lost its source, and its blocks may come again from another (or it goes stale).
            if next.isStarted { return .waiting }
            queues[peer]!.removeFirst()
            slots.answered(peer, now: now)
            if store.incomingManifestIfAny(next.digest) != nil {
                reply(peer, to: next.request, error: .busy, "piece \(next.index) is not here yet; ask another peer")
            } else {
                reply(peer, to: next.request, error: .notFound, "piece \(next.index) is not here")
            }
            return .dropped
        }
        guard let (message, following) = next.nextMessage(manifest, from: source, sender: sender) else { return .waiting }
        return .ready(message, next: following)
    }

    /// Sends the choker's decisions, each as soon as its peer's pipe has room.
    private func apply(_ notices: [UploadSlots<[UInt8]>.Notice]) {
        guard !notices.isEmpty else { return }
        for notice in notices { choke(notice.peer, digest: notice.digest, choked: notice.choked) }
        SlipwayMetrics.uploadSlots(inUse: slots.served.count, waiting: slots.waiting.count)
    }

    private func choke(_ peer: [UInt8], digest: String, choked: Bool, inReplyTo request: WireMessage? = nil) {
        var message = Slipway_V1_PieceChoke()
        message.digest = digest
        message.choked = choked
        if choked { SlipwayMetrics.choke("sent") }
        let wire = WireMessage(message, sender: sender, inReplyTo: request?.envelope.messageID ?? "")
        if unsent.send(codec.encode(wire, to: peer), to: peer, on: socket) == .gone {
            apply(slots.gone(peer, now: .now))
        }
    }

    /// The permission table lets regions read pieces (from stores); an agent's are for
    /// other agents only, though its trust folder (its region's) also holds region keys.
    private func regionRefusal(_ asker: Identity?) -> String? {
        guard security.isAuthenticated, let asker, asker.role != .agent else { return nil }
        return "\(asker): an agent serves its pieces to other agents only"
    }

    /// Answers at once, or as soon as the peer's pipe has room: an answer lost to a
    /// full pipe left its asker waiting out its 30 s request timeout (measured: several
    /// per agent per download once peers heard of pieces as they arrived).
    private func reply(_ peer: [UInt8], to request: WireMessage, error code: Slipway_V1_ErrorCode, _ text: String) {
        if code == .busy { SlipwayMetrics.busy(server: "agent") }
        let error = Slipway_V1_ErrorReply(code, text)
        _ = unsent.send(codec.encode(WireMessage(error, sender: sender, inReplyTo: request.envelope.messageID), to: peer), to: peer, on: socket)
    }
}
