public import SlipwayCore
public import Foundation
import SlipwayArtifact
public import SlipwayProto
public import SlipwayWire

/// Talks to a regional store's ROUTER: upload with a window of pieces in flight
/// (credit), resumable from the first piece the store still needs.
///
/// Blocking: use it on an `OwnedThread` (a build's thread, say). Each call
/// that times out closes its socket and retries on a fresh one (Lazy Pirate).
public final class StoreClient {
    /// Why a transfer failed.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// One line for logs and build results.
        public let description: String
    }

    /// A manifest its `UploadBegin` could not carry (``checkFits(_:)``): no retry can help.
    public struct ManifestTooLarge: Error, CustomStringConvertible, Sendable {
        /// One line for logs and build results.
        public let description: String
    }

    private let context: ZMQContext
    private let endpoint: Endpoint
    private let sender: String
    private let security: ClientSecurity
    private let codec = WireCodec()
    private var socket: ZMQSocket?
    /// Pieces sent before waiting for an acknowledgement.
    public var window = 8
    /// How long to wait for each reply.
    public var replyTimeout: Duration = .seconds(15)
    /// Attempts per request before giving up.
    public var retries = 3

    /// A client for the store at `endpoint`, connecting with `security` (the region's key pinned).
    public init(context: ZMQContext, endpoint: Endpoint, sender: String, security: ClientSecurity) {
        self.context = context
        self.endpoint = endpoint
        self.sender = sender
        self.security = security
    }

    /// Uploads `file`, described by `manifest`, and waits until the store has committed it.
    /// Pieces the store already holds (an interrupted upload, or pieces an earlier
    /// build shares) are not sent.
    public func upload(_ file: URL, manifest: Slipway_V1_ArtifactManifest, cancelled: () -> Bool = { false }) throws {
        try checkFits(manifest)
        guard let handle = FileHandle(forReadingAtPath: file.path) else { throw Failure(description: "cannot read \(file.lastPathComponent)") }
        defer { try? handle.close() }
        var begin = Slipway_V1_UploadBegin()
        begin.manifest = manifest
        let offsets = Manifest.pieceOffsets(manifest)
        var pending = try piecesToSend(begin)
        var attemptsLeft = retries
        while let first = pending.first {
            if cancelled() { throw Failure(description: "upload cancelled") }
            let batch = pending.prefix(window)
            let socket = try connected()
            for index in batch {
                try handle.seek(toOffset: offsets[index])
                let bytes = [UInt8](try handle.read(upToCount: Manifest.pieceLength(manifest, index: index)) ?? Data())
                var header = Slipway_V1_PieceData()
                header.digest = manifest.digest
                header.index = UInt32(index)
                header.offset = offsets[index]
                header.length = UInt32(bytes.count)
                _ = try socket.send(codec.encode(WireMessage(header, sender: sender, payload: bytes)), wait: .timeout(replyTimeout))
            }
            // The store acknowledges with the first piece it still needs: past the batch once all of it is in.
            var acknowledged = first
            while acknowledged <= batch.last! {
                guard let ack = try receive(Slipway_V1_UploadAck.self) else { break }
                guard ack.error.isEmpty else { throw Failure(description: "store refused upload: \(ack.error)") }
                acknowledged = max(acknowledged, Int(ack.nextPiece))
            }
            // Progress is the store needing a later piece: a store that keeps asking for
            // the same one (it claimed to hold pieces it does not) uses up the retries.
            if acknowledged > first {
                pending.removeFirst(pending.prefix { $0 < acknowledged }.count)
                attemptsLeft = retries
            } else {
                attemptsLeft -= 1
                reset()
                guard attemptsLeft > 0 else { throw Failure(description: "store at \(endpoint) stopped answering during upload") }
                pending = try piecesToSend(begin)
            }
        }
        var commit = Slipway_V1_UploadCommit()
        commit.digest = manifest.digest
        let done = try request(commit, expecting: Slipway_V1_UploadAck.self)
        guard done.committed else { throw Failure(description: "store did not commit \(manifest.digest): \(done.error)") }
    }

    /// Refuses, before anything is sent, a manifest that its `UploadBegin` could not
    /// carry: every message travels in one envelope of at most
    /// ``WireCodec/maxEnvelopeBytes`` (1 MiB), which at about 70 bytes per piece
    /// holds some 14,000 pieces, about 14 GB in the standard 1 MiB pieces. A store
    /// would drop the larger message unread, and the upload would time out saying nothing.
    public func checkFits(_ manifest: Slipway_V1_ArtifactManifest) throws {
        var begin = Slipway_V1_UploadBegin()
        begin.manifest = manifest
        let envelope = try WireMessage(begin, sender: sender).envelope.serializedBytes() as [UInt8]
        guard envelope.count <= codec.maxEnvelopeBytes else {
            throw ManifestTooLarge(description: "the manifest of \(manifest.digest) (\(manifest.size) bytes in \(manifest.pieceSha256.count) pieces) "
                + "takes \(envelope.count) bytes, over the \(codec.maxEnvelopeBytes) one message may carry: artifacts this large are not supported yet")
        }
    }

    /// Begins (or resumes) the upload: the pieces the store lacks, in order.
    private func piecesToSend(_ begin: Slipway_V1_UploadBegin) throws -> [Int] {
        let ack = try request(begin, expecting: Slipway_V1_UploadAck.self)
        guard ack.error.isEmpty else { throw Failure(description: "store refused upload: \(ack.error)") }
        let held = PieceBitmap(bytes: ack.held)
        return (Int(ack.nextPiece)..<max(Int(ack.nextPiece), begin.manifest.pieceSha256.count)).filter { !held.contains($0) }
    }

    /// The store's manifest for `digest`, or nil if it does not have the artifact.
    public func manifest(_ digest: String) throws -> Slipway_V1_ArtifactManifest? {
        var ask = Slipway_V1_ManifestRequest()
        ask.digest = digest
        let reply = try requestAny(ask)
        if reply.type == .errorReply { return nil }
        return try reply.body(as: Slipway_V1_ArtifactManifest.self)
    }

    /// Downloads and verifies a whole artifact into `destination`, `window` pieces per request.
    public func download(_ manifest: Slipway_V1_ArtifactManifest, to destination: URL) throws {
        _ = FileManager.default.createFile(atPath: destination.path, contents: nil)
        let out = try FileHandle(forWritingTo: destination)
        defer { try? out.close() }
        let count = manifest.pieceSha256.count
        var next = 0
        while next < count {
            var ask = Slipway_V1_PieceRequest()
            ask.digest = manifest.digest
            ask.firstPiece = UInt32(next)
            ask.count = UInt32(min(window, count - next))
            let socket = try connected()
            _ = try socket.send(codec.encode(WireMessage(ask, sender: sender)), wait: .timeout(replyTimeout))
            for _ in 0..<Int(ask.count) {
                guard let frames = try socket.receive(wait: .timeout(replyTimeout)) else {
                    reset()
                    throw Failure(description: "store at \(endpoint) stopped answering during download")
                }
                let message = try codec.decode(frames)
                if message.type == .errorReply {
                    throw Failure(description: "store: \((try? message.body(as: Slipway_V1_ErrorReply.self).message) ?? "error")")
                }
                let header = try message.body(as: Slipway_V1_PieceData.self)
                let index = Int(header.index)
                guard index == next, let bytes = message.payload, Manifest.verify(piece: bytes, index: index, of: manifest) else {
                    throw Failure(description: "piece \(index) of \(manifest.digest) failed verification")
                }
                try BlobStore.write(bytes[...], to: out.fileDescriptor)
                next += 1
            }
        }
        try out.synchronize()
    }

    /// Closes the socket.
    public func close() { reset() }

    private func connected() throws -> ZMQSocket {
        if let socket { return socket }
        let socket = try ZMQSocket.requestDealer(context: context, connectedTo: endpoint, options: security.options)
        self.socket = socket
        return socket
    }

    private func reset() {
        socket?.close()
        socket = nil
    }

    private func receive<Reply: WireBody>(_: Reply.Type) throws -> Reply? {
        guard let frames = try connected().receive(wait: .timeout(replyTimeout)) else { return nil }
        let message = try codec.decode(frames)
        if message.type == .errorReply {
            throw Failure(description: "store: \((try? message.body(as: Slipway_V1_ErrorReply.self).message) ?? "error")")
        }
        return try message.body(as: Reply.self)
    }

    private func request<Reply: WireBody>(_ body: some WireBody, expecting: Reply.Type) throws -> Reply {
        let reply = try requestAny(body)
        if reply.type == .errorReply {
            throw Failure(description: "store: \((try? reply.body(as: Slipway_V1_ErrorReply.self).message) ?? "error")")
        }
        return try reply.body(as: Reply.self)
    }

    private func requestAny(_ body: some WireBody) throws -> WireMessage {
        for _ in 0..<retries {
            let socket = try connected()
            _ = try socket.send(codec.encode(WireMessage(body, sender: sender)), wait: .timeout(replyTimeout))
            if let frames = try socket.receive(wait: .timeout(replyTimeout)) { return try codec.decode(frames) }
            reset()
        }
        throw Failure(description: "store at \(endpoint) did not answer after \(retries) tries")
    }
}
