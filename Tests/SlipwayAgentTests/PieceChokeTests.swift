import Foundation
import Logging
@testable import SlipwayAgent
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An agent's piece server uploads to a few downloaders at a time and tells the
/// others to wait: real sockets on 127.0.0.1, in this process.
@Suite("Upload slots on the wire")
struct PieceChokeTests {
    /// A committed artifact of four 4 KiB pieces in a fresh store, and its digest.
    static func artifact(in folder: URL) throws -> (BlobStore, String) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("artifact.bin")
        let bytes = (0..<(4 * 4_096)).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: file)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in 0..<4 { try store.store(manifest.digest, index: index, bytes: Array(bytes[(index * 4_096)..<((index + 1) * 4_096)])) }
        let deadline = ContinuousClock.now + .seconds(5)
        while try !store.commitIfVerified(manifest.digest) {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            usleep(5_000)
        }
        return (store, manifest.digest)
    }

    static func greeting(_ digest: String, machine: String) -> [[UInt8]] {
        var have = Slipway_V1_PieceHave()
        have.digest = digest
        have.machineID = machine
        have.heedsChoke = true
        return WireCodec().encode(WireMessage(have, sender: "agent-\(machine)"))
    }

    static func interest(_ digest: String, _ interested: Bool = true) -> [[UInt8]] {
        var interest = Slipway_V1_PieceInterest()
        interest.digest = digest
        interest.interested = interested
        return WireCodec().encode(WireMessage(interest, sender: "agent-test"))
    }

    static func request(_ digest: String, piece: UInt32, heeds: Bool = true) -> WireMessage {
        var request = Slipway_V1_PieceRequest()
        request.digest = digest
        request.firstPiece = piece
        request.count = 1
        request.heedsChoke = heeds
        return WireMessage(request, sender: "agent-test")
    }

    /// Serves and flushes, as the agent loop does, until `client` gets a message
    /// that is not a `PieceHave` (those come too), or `wait` passed.
    static func next(_ client: ZMQSocket, from server: PieceServer, _ digest: String, wait: Duration = .seconds(10)) throws -> WireMessage? {
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            try server.serve { $0 == digest ? PieceHolding(complete: true) : nil }
            while let frames = try client.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
                let message = try WireCodec().decode(frames)
                if message.type != .pieceHave { return message }
            }
            usleep(5_000)
        }
        return nil
    }

    static func choked(_ message: WireMessage?) throws -> Bool? {
        guard let message, message.type == .pieceChoke else { return nil }
        return try message.body(as: Slipway_V1_PieceChoke.self).choked
    }

    @Test("without upload slots (--upload-slots 0) a downloader that heeds chokes is served as it asks")
    func noSlots() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("piece-choke-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (store, digest) = try Self.artifact(in: folder)
        let context = try ZMQContext()
        let (server, address) = try PieceHaveTests.server(in: folder, context: context, store: store, uploadSlots: 0)
        let client = try ZMQSocket.requestDealer(context: context, connectedTo: address)
        defer { client.close() }
        _ = try client.send(Self.interest(digest), wait: .never)
        for piece in [UInt32(0), 1] {
            _ = try client.send(WireCodec().encode(Self.request(digest, piece: piece)), wait: .never)
            #expect(try Self.next(client, from: server, digest)?.type == .pieceData)
        }
        #expect(server.uploadingTo == 0)
    }

    @Test("one slot: the first downloader is served, the second told to wait, then they trade places when the first asks for nothing")
    func oneSlotGoesRound() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("piece-choke-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (store, digest) = try Self.artifact(in: folder)
        let context = try ZMQContext()
        let (server, address) = try PieceHaveTests.server(in: folder, context: context, store: store, uploadSlots: 1)
        let first = try ZMQSocket.requestDealer(context: context, connectedTo: address)
        let second = try ZMQSocket.requestDealer(context: context, connectedTo: address)
        let older = try ZMQSocket.requestDealer(context: context, connectedTo: address)
        defer { for socket in [first, second, older] { socket.close() } }
        let codec = WireCodec()

        _ = try first.send(Self.greeting(digest, machine: "m2"), wait: .never)
        #expect(try Self.next(first, from: server, digest, wait: .seconds(2)) == nil, "a greeting alone asks for no slot")
        _ = try first.send(Self.interest(digest), wait: .never)
        #expect(try Self.choked(Self.next(first, from: server, digest)) == false, "interested, and a free slot: unchoked")
        _ = try second.send(Self.greeting(digest, machine: "m3"), wait: .never)
        _ = try second.send(Self.interest(digest), wait: .never)
        #expect(try Self.choked(Self.next(second, from: server, digest)) == true, "no slot left: told to wait")

        let refused = Self.request(digest, piece: 0)
        _ = try second.send(codec.encode(refused), wait: .never)
        let answer = try #require(try Self.next(second, from: server, digest))
        #expect(try Self.choked(answer) == true && answer.envelope.inReplyTo == refused.envelope.messageID,
                "a waiting downloader's request is answered with a choke, not taken")
        _ = try first.send(codec.encode(Self.request(digest, piece: 1)), wait: .never)
        let piece = try #require(try Self.next(first, from: server, digest))
        #expect(piece.type == .pieceData)
        #expect(try piece.body(as: Slipway_V1_PieceData.self).index == 1)
        #expect(server.uploadingTo == 1)

        // A downloader that does not heed chokes is served as before, outside the slots.
        _ = try older.send(codec.encode(Self.request(digest, piece: 2, heeds: false)), wait: .never)
        #expect(try Self.next(older, from: server, digest)?.type == .pieceData)

        // The first asks for nothing more: after its grace it makes way, and the second is served.
        #expect(try Self.choked(Self.next(second, from: server, digest)) == false)
        #expect(try Self.choked(Self.next(first, from: server, digest)) == true)
        _ = try second.send(codec.encode(Self.request(digest, piece: 3)), wait: .never)
        #expect(try Self.next(second, from: server, digest)?.type == .pieceData)

        // The first says again that it wants pieces (it waits); the second wants nothing more:
        // the slot goes back at once.
        _ = try first.send(Self.interest(digest), wait: .never)
        _ = try second.send(Self.interest(digest, false), wait: .never)
        #expect(try Self.choked(Self.next(second, from: server, digest)) == true)
        #expect(try Self.choked(Self.next(first, from: server, digest)) == false)
    }
}
