import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayProto
import SlipwayWire
import SlipwayMetrics

/// Serves this machine's verified pieces to its peers, with backpressure.
///
/// Pieces are 4 MiB and uploads are the scarce resource of a swarm: a peer that
/// accepted every request would build a queue minutes long, holding pieces
/// other peers could send at once. So each peer's pipe holds at most one piece
/// beyond the one being sent (send high-water mark, small kernel buffer), the
/// rest wait here in order, and past ``maxQueued`` new requests are answered
/// `ErrorReply{busy}` at once: the asker turns to another holder.
final class PieceServer {
    /// Requests waiting for pipe space, in all.
    let maxQueued: Int
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
    private let codec = WireCodec()
    private var manifests: [String: Slipway_V1_ArtifactManifest] = [:]
    /// Per peer, in order; a head's bytes stay loaded while its pipe is full.
    private var queues: [[UInt8]: [(request: WireMessage, digest: String, index: Int, bytes: [UInt8]?, at: ContinuousClock.Instant)]] = [:]
    /// A request still queued after this long is answered `busy` and dropped: a
    /// peer that stopped reading must not hold the queue for everyone.
    private let queueTimeout: Duration = .seconds(10)

    /// Binds a ROUTER at `endpoint` serving from `store`.
    init(context: ZMQContext, endpoint: Endpoint, store: BlobStore, sender: String, logger: Logger, maxQueued: Int = 2) throws {
        self.store = store
        self.sender = sender
        self.maxQueued = maxQueued
        // One piece in each peer's pipe beyond the one being sent, and a small kernel buffer.
        (socket, connections) = try ZMQSocket.boundedRouter(context: context, endpoint: endpoint,
                                                            limits: ServerLimits(largestMessage: 64 << 10, receiveQueue: 16, sendQueue: 1),
                                                            security: .plain, daemon: "agent", name: "pieces", logger: logger) {
            try $0.set(.sendBuffer(256 << 10))
        }
    }

    /// Requests waiting, in all.
    var queued: Int { queues.values.reduce(0) { $0 + $1.count } }

    /// Forgets what it knew about `digest` (deleted from the store).
    func forget(_ digest: String) { manifests[digest] = nil }

    /// Reads waiting requests (queueing or refusing them), then sends what the pipes take.
    func serve() throws {
        for _ in 0..<256 {
            guard let (peer, message) = try codec.receiveRouted(from: socket, wait: .never, maxFrames: 4, dropped: { _ in rejected += 1 }) else {
                break
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
            guard queued < maxQueued else {
                reply(peer, to: message, error: .busy, "uploading to others; ask another peer")
                continue
            }
            for index in first..<min(first + min(Int(request.count), 4), manifest.pieceSha256.count) {
                queues[peer, default: []].append((message, request.digest, index, nil, .now))
            }
        }
        flush()
    }

    /// Sends queued pieces until each peer's pipe is full.
    func flush() {
        let now = ContinuousClock.now
        for peer in Array(queues.keys) {
            for stale in queues[peer]!.filter({ now - $0.at >= queueTimeout }) {
                reply(peer, to: stale.request, error: .busy, "queued too long; ask another peer")
            }
            queues[peer]!.removeAll { now - $0.at >= queueTimeout }
            while let next = queues[peer]?.first {
                guard let manifest = manifests[next.digest], let bytes = next.bytes ?? store.heldPiece(next.digest, index: next.index) else {
                    queues[peer]!.removeFirst()
                    reply(peer, to: next.request, error: .notFound, "piece \(next.index) is not here")
                    continue
                }
                let header = Manifest.pieceHeader(manifest, index: next.index, length: bytes.count)
                let message = WireMessage(header, sender: sender, inReplyTo: next.request.envelope.messageID, payload: bytes)
                do {
                    guard try socket.send(codec.encode(message, to: peer), wait: .never) else {
                        queues[peer]![0].bytes = bytes  // pipe full: try again next turn without rereading
                        break
                    }
                    queues[peer]!.removeFirst()
                    piecesServed += 1
                    SlipwayMetrics.pieceServed(by: "agent")
                } catch {
                    queues[peer] = nil  // the peer went away
                    break
                }
            }
            if queues[peer]?.isEmpty == true { queues[peer] = nil }
        }
    }

    private func reply(_ peer: [UInt8], to request: WireMessage, error code: Slipway_V1_ErrorCode, _ text: String) {
        let error = Slipway_V1_ErrorReply(code, text)
        _ = try? socket.send(codec.encode(WireMessage(error, sender: sender, inReplyTo: request.envelope.messageID), to: peer), wait: .never)
    }
}
