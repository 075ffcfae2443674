import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// The regional store's I/O loop: one ROUTER, one `BlobStore`, one thread.
final class RegionStoreLoop: ServingLoop {
    private let config: RegionConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private let store: BlobStore
    private var socket: ZMQSocket!
    private var rejections = RejectionLog(daemon: "region", socket: "store")

    init(config: RegionConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        self.store = try BlobStore(root: URL(fileURLWithPath: config.storePath), cleanTemporary: false)
        socket = try ZMQSocket(context: context, type: .router)
        try socket.set(.routerMandatory(true))
        try socket.bind(config.storeEndpoint)
    }

    var opened: [String: String] {
        ["region": config.region, "store": "\(config.storeEndpoint)", "store_dir": config.storePath,
         "artifacts": "\((try? store.committedDigests().count) ?? 0)"]
    }

    func serve() throws {
        defer { socket.close() }
        while !stop.isStopped {
            let received = try codec.receiveRouted(from: socket, wait: .timeout(.milliseconds(200)), maxFrames: 8) { error in
                rejections.record(error, logger: logger)
            }
            guard let (peer, message) = received else { continue }
            do {
                try handle(peer, message)
            } catch {
                logger.warning("request failed", metadata: ["type": "\(message.type)", "error": "\(error)"])
                reply(peer, error: "\(error)")
            }
        }
    }

    private func handle(_ peer: [UInt8], _ message: WireMessage) throws {
        switch message.type {
        case .uploadBegin:
            let begin = try message.body(as: Slipway_V1_UploadBegin.self)
            let next = try store.begin(begin.manifest)
            ack(peer, digest: begin.manifest.digest, next: next)
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
                return reply(peer, error: "artifact \(SafeText.printable(request.digest, limit: 80)) is not in region \(config.region)", code: .notFound)
            }
            send(peer, manifest)
        case .pieceRequest:
            let request = try message.body(as: Slipway_V1_PieceRequest.self)
            guard let manifest = try store.manifest(request.digest) else {
                return reply(peer, error: "artifact \(SafeText.printable(request.digest, limit: 80)) is not in region \(config.region)", code: .notFound)
            }
            let first = Int(request.firstPiece)
            let end = min(manifest.pieceSha256.count, first + Int(min(request.count, 64)))
            guard first < end else { return reply(peer, error: "no pieces in the requested range", code: .invalidArgument) }
            for index in first..<end {
                let bytes = try store.piece(request.digest, index: index)
                var header = Slipway_V1_PieceData()
                header.digest = request.digest
                header.index = UInt32(index)
                header.offset = UInt64(index) * UInt64(manifest.pieceSize)
                header.length = UInt32(bytes.count)
                header.sha256 = manifest.pieceSha256[index]
                send(peer, header, payload: bytes)
                SlipwayMetrics.pieceServed(by: "store")
            }
        default:
            reply(peer, error: "the store does not handle \(message.type)", code: .unsupported)
        }
    }

    private func ack(_ peer: [UInt8], digest: String, next: Int, error: String = "") {
        var ack = Slipway_V1_UploadAck()
        ack.digest = digest
        ack.nextPiece = UInt32(next)
        ack.error = error
        send(peer, ack)
    }

    private func reply(_ peer: [UInt8], error text: String, code: Slipway_V1_ErrorCode = .internal) {
        send(peer, Slipway_V1_ErrorReply(code, text))
    }

    private func send(_ peer: [UInt8], _ body: some WireBody, payload: [UInt8]? = nil) {
        do {
            _ = try socket.send(codec.encode(WireMessage(body, sender: config.id, payload: payload), to: peer), wait: .never)
        } catch {
            logger.info("could not reply; peer gone", metadata: ["error": "\(error)"])
        }
    }
}
