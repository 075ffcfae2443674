import Foundation
import Logging
@testable import SlipwayAgent
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayRegionStore
import SlipwayThreads
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The regional store with upload slots (`--store-upload-slots`): a real
/// `StoreServer` on 127.0.0.1 in this process, raw clients and real downloads.
@Suite("The store's upload slots")
struct StoreUploadSlotsTests {
    /// A store folder holding one committed artifact of `pieces` pieces of 64 KiB.
    static func seededStore(pieces: Int) throws -> (folder: URL, manifest: Slipway_V1_ArtifactManifest) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-slots-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bytes = (0..<(pieces << 16)).map { _ in UInt8.random(in: 0...255) }
        let file = folder.appendingPathComponent("app")
        try Data(bytes).write(to: file)
        let manifest = try Manifest.build(fileAt: file.path, name: "app", pieceSize: 1 << 16)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in 0..<pieces { _ = try store.put(manifest.digest, index: index, bytes: Array(bytes[(index << 16)..<((index + 1) << 16)])) }
        try store.commit(manifest.digest)
        return (folder, manifest)
    }

    /// Serves the store at `folder` with `slots` upload slots on `thread` until `stop`;
    /// returns its address and a signal raised when it has stopped. The tests block
    /// their own threads while they wait, so the server must not need Swift's pool.
    static func serve(_ folder: URL, slots: Int, stop: StopSignal, on thread: OwnedThread) throws -> (String, DispatchSemaphore) {
        let address = "tcp://127.0.0.1:\(scratchPort())"
        let settings = StoreServer.Settings(region: "eu", id: "store-eu", endpoint: try Endpoint(parsing: address),
                                            path: folder.appendingPathComponent("store").path, security: .insecure, uploadSlots: slots)
        let mailbox = try BlobStoreMailbox()
        let stopped = DispatchSemaphore(value: 0)
        _ = thread.execute {
            do {
                try StoreServer(config: settings, mailbox: mailbox, logger: Logger(label: "test"), stop: stop).serve()
            } catch {
                Issue.record("the store stopped: \(error)")
            }
            stopped.signal()
        }
        return (address, stopped)
    }

    static func ask(_ socket: ZMQSocket, _ digest: String, piece: Int, heedsChoke: Bool) throws -> String {
        var request = Slipway_V1_PieceRequest()
        request.digest = digest
        request.firstPiece = UInt32(piece)
        request.count = 1
        request.heedsChoke = heedsChoke
        request.alternatives = [1, 2, 3]
        let message = WireMessage(request, sender: "agent")
        // Until the store is up, the socket has no pipe to queue on.
        let start = ContinuousClock.now
        while try !socket.send(WireCodec().encode(message), wait: .never) {
            guard ContinuousClock.now - start < .seconds(5) else { throw CancellationError() }
            usleep(5_000)
        }
        return message.envelope.messageID
    }

    /// The next message on `socket` within `limit`.
    static func next(_ socket: ZMQSocket, within limit: Duration = .seconds(5)) throws -> WireMessage? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            if let frames = try socket.receive(wait: .never, maxFrames: 4) { return try WireCodec().decode(frames) }
            usleep(2_000)
        }
        return nil
    }

    @Test("one slot: the second agent is told to wait in reply to its request, and unchoked when the first's turn ends; older agents are served as they ask")
    func oneSlot() async throws {
        // The test blocks while it waits for sockets: on a thread of its own, not Swift's shared pool,
        // which other suites' tasks need (two blocked pool threads starve them on a 2-core machine).
        let runner = OwnedThread(name: "one-slot")
        defer { runner.shutdown() }
        try await runner.run { try Self.oneSlotBody() }
    }

    static func oneSlotBody() throws {
        let (folder, manifest) = try Self.seededStore(pieces: 4)
        defer { try? FileManager.default.removeItem(at: folder) }
        let stop = StopSignal(), thread = OwnedThread(name: "store")
        defer { thread.shutdown() }
        let (address, serving) = try Self.serve(folder, slots: 1, stop: stop, on: thread)
        let context = try ZMQContext()
        let (first, second, older) = (try ZMQSocket(context: context, type: .dealer), try ZMQSocket(context: context, type: .dealer),
                                      try ZMQSocket(context: context, type: .dealer))
        defer { first.close(); second.close(); older.close() }
        for socket in [first, second, older] { try socket.connect(address) }

        _ = try Self.ask(first, manifest.digest, piece: 0, heedsChoke: true)
        let unchoked = try #require(try Self.next(first))
        #expect(unchoked.type == .pieceChoke, "a free slot: the first is told it has one")
        #expect(try !unchoked.body(as: Slipway_V1_PieceChoke.self).choked)
        #expect(try Self.next(first)?.type == .pieceData, "and served")
        let refused = try Self.ask(second, manifest.digest, piece: 0, heedsChoke: true)
        let wait = try #require(try Self.next(second))
        #expect(wait.type == .pieceChoke && wait.envelope.inReplyTo == refused)
        let waitBody = try wait.body(as: Slipway_V1_PieceChoke.self)
        #expect(waitBody.choked && waitBody.digest == manifest.digest)
        _ = try Self.ask(older, manifest.digest, piece: 0, heedsChoke: false)
        #expect(try Self.next(older)?.type == .pieceData, "a request without heeds_choke is served outside the slots")

        // The first asks nothing more: its piece may still be on its way, so its slot goes to the second when its 4 s turn ends.
        let unchoke = try #require(try Self.next(second, within: .seconds(10)))
        #expect(unchoke.type == .pieceChoke)
        #expect(try !unchoke.body(as: Slipway_V1_PieceChoke.self).choked)
        let choke = try #require(try Self.next(first, within: .seconds(2)))
        #expect(choke.type == .pieceChoke)
        #expect(try choke.body(as: Slipway_V1_PieceChoke.self).choked)
        _ = try Self.ask(second, manifest.digest, piece: 0, heedsChoke: true)
        let piece = try #require(try Self.next(second))
        #expect(piece.type == .pieceData)
        #expect(try piece.body(as: Slipway_V1_PieceData.self).index == 2, "asked afresh, and the store chose a piece it had not sent")
        stop.stop()
        serving.wait()
    }

    @Test("downloads that heed the store's chokes all complete through one slot")
    func downloadsComplete() async throws {
        let runner = OwnedThread(name: "downloads")
        defer { runner.shutdown() }
        try await runner.run { try Self.downloadsCompleteBody() }
    }

    static func downloadsCompleteBody() throws {
        let (folder, manifest) = try Self.seededStore(pieces: 8)
        defer { try? FileManager.default.removeItem(at: folder) }
        let stop = StopSignal(), thread = OwnedThread(name: "store")
        defer { thread.shutdown() }
        let (address, serving) = try Self.serve(folder, slots: 1, stop: stop, on: thread)
        let context = try ZMQContext()
        let downloads = try (1...3).map { machine in
            PieceDownload(digest: manifest.digest, machineID: "m\(machine)", store: try BlobStore(root: folder.appendingPathComponent("agent-\(machine)")),
                          context: context, sender: "agent-m\(machine)", seedEndpoint: try Endpoint(parsing: address),
                          seedSecurity: .plain, logger: Logger(label: "test"), seedOnly: true)
        }
        defer { for download in downloads { download.close() } }
        let start = ContinuousClock.now
        while !downloads.allSatisfy({ $0.isComplete }), ContinuousClock.now - start < .seconds(20) {
            for download in downloads where !download.isComplete {
                try download.pump(now: .now)
                for (source, _) in download.sockets { try download.receive(from: source, now: .now) }
            }
            usleep(2_000)
        }
        #expect(downloads.allSatisfy { $0.isComplete }, "every download completed within 20 s")
        #expect(downloads.map { $0.fromSeed }.reduce(0, +) == 3 * 8)
        #expect(downloads.map { $0.storeChokes }.reduce(0, +) > 0, "one slot for three: some waited their turn")
        stop.stop()
        serving.wait()
    }
}
