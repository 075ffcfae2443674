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

/// Pieces between agents in runs of blocks: real sockets on 127.0.0.1, a real
/// piece server or a hand-driven peer, in this process.
@Suite("Pieces in runs of blocks")
struct BlockTransferTests {
    /// `size` random bytes in `folder`, cut into pieces of `pieceSize` with 64 KiB blocks.
    static func artifact(in folder: URL, size: Int, pieceSize: UInt32) throws -> ([UInt8], Slipway_V1_ArtifactManifest) {
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255) }
        let file = folder.appendingPathComponent("app")
        try Data(bytes).write(to: file)
        return (bytes, try Manifest.build(fileAt: file.path, name: "app", pieceSize: pieceSize))
    }

    static func request(_ manifest: Slipway_V1_ArtifactManifest, piece: Int, blocks: Bool) -> [[UInt8]] {
        var request = Slipway_V1_PieceRequest()
        request.digest = manifest.digest
        request.firstPiece = UInt32(piece)
        request.count = 1
        request.blocks = blocks
        return WireCodec().encode(WireMessage(request, sender: "agent-m2"))
    }

    @Test("a piece asked for in blocks comes as runs of four whole blocks, the first with digests that make its root; asked plainly, whole")
    func serverSendsRuns() async throws {
        let runner = OwnedThread(name: "block-runs")
        defer { runner.shutdown() }
        try await runner.run { try Self.serverSendsRunsBody() }
    }

    static func serverSendsRunsBody() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("block-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Piece 0 is 1 MiB (sixteen blocks), piece 1 is 320 KiB (five).
        let (bytes, manifest) = try artifact(in: folder, size: (1 << 20) + (320 << 10), pieceSize: 1 << 20)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in 0..<2 { try store.store(manifest.digest, index: index, bytes: Array(bytes[(index << 20)..<min(bytes.count, (index + 1) << 20)])) }
        try store.commit(manifest.digest)
        let context = try ZMQContext()
        let (server, address) = try PieceHaveTests.server(in: folder, context: context, store: store, uploadSlots: 0)
        let client = try ZMQSocket.requestDealer(context: context, connectedTo: Endpoint(parsing: address))
        defer { client.close() }
        let codec = WireCodec()

        /// Serves until the client has `count` piece messages.
        func collect(_ count: Int) throws -> [(Slipway_V1_PieceData, [UInt8])] {
            var got: [(Slipway_V1_PieceData, [UInt8])] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while got.count < count, ContinuousClock.now < deadline {
                try server.serve()
                while let frames = try client.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
                    let message = try codec.decode(frames)
                    got.append((try message.body(as: Slipway_V1_PieceData.self), message.payload ?? []))
                }
                usleep(1_000)
            }
            return got
        }

        _ = try client.send(request(manifest, piece: 0, blocks: true), wait: .never)
        let runs = try collect(4)
        #expect(runs.map { $0.0.blocks } == [true, true, true, true])
        #expect(runs.map { $0.0.firstBlock } == [0, 4, 8, 12])
        #expect(runs.map { $0.1.count } == [256 << 10, 256 << 10, 256 << 10, 256 << 10])
        #expect(runs.map { $0.0.blockSha256.count } == [16, 0, 0, 0], "only the first run carries the digests")
        var assembly = try BlockAssembly(header: runs[0].0, of: manifest)
        let outcomes = runs.map { assembly.take(firstBlock: Int($0.0.firstBlock), payload: $0.1) }
        #expect(outcomes.last == .complete(index: 0))
        #expect(assembly.piece()?.bytes == Array(bytes[0..<(1 << 20)]))

        // The short piece ends with a run of one block; asked plainly, it comes whole.
        _ = try client.send(request(manifest, piece: 1, blocks: true), wait: .never)
        #expect(try collect(2).map { $0.1.count } == [256 << 10, 64 << 10])
        _ = try client.send(request(manifest, piece: 1, blocks: false), wait: .never)
        let whole = try collect(1)
        #expect(whole.map { $0.0.blocks } == [false])
        #expect(whole.first?.1 == Array(bytes[(1 << 20)...]))
        #expect(server.piecesServed == 3)
    }

    @Test("a peer whose block is corrupt is banned at that run, before the rest of its piece, and the piece comes from the store")
    func corruptBlockBansItsSender() async throws {
        let runner = OwnedThread(name: "corrupt-block")
        defer { runner.shutdown() }
        try await runner.run { try Self.corruptBlockBody() }
    }

    static func corruptBlockBody() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-block-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Two pieces of 768 KiB: three runs of four blocks each.
        let (bytes, manifest) = try artifact(in: folder, size: 1536 << 10, pieceSize: 768 << 10)
        let piece = { (index: Int) in Array(bytes[(index * (768 << 10))..<((index + 1) * (768 << 10))]) }
        let context = try ZMQContext()
        let (seed, seedAddress) = try SlowPeerTests.router(context)
        let (peer, peerAddress) = try SlowPeerTests.router(context)
        defer { seed.close(); peer.close() }
        let download = PieceDownload(digest: manifest.digest, machineID: "m1", store: try BlobStore(root: folder.appendingPathComponent("store")),
                                     context: context, sender: "agent-m1", seedEndpoint: try Endpoint(parsing: seedAddress),
                                     seedSecurity: .plain, logger: Logger(label: "test"))
        defer { download.close() }
        let codec = WireCodec()
        var peerRequests: [Slipway_V1_PieceRequest] = [], seedAskedInBlocks = false, runsSent = 0, listed = false
        let start = ContinuousClock.now
        while !download.isComplete, ContinuousClock.now - start < .seconds(10) {
            try download.pump(now: ContinuousClock.now)
            for (source, _) in download.sockets { try download.receive(from: source, now: ContinuousClock.now) }
            while let (asker, message) = try codec.receiveRouted(from: seed, wait: .never, maxFrames: 4, dropped: { _ in }) {
                switch message.type {
                case .manifestRequest:
                    _ = try seed.send(codec.encode(WireMessage(manifest, sender: "region-eu", inReplyTo: message.envelope.messageID), to: asker), wait: .never)
                case .pieceRequest:
                    let request = try message.body(as: Slipway_V1_PieceRequest.self)
                    seedAskedInBlocks = seedAskedInBlocks || request.blocks
                    let bytes = piece(Int(request.firstPiece))
                    let header = Manifest.pieceHeader(manifest, index: Int(request.firstPiece), length: bytes.count)
                    _ = try seed.send(codec.encode(WireMessage(header, sender: "region-eu", inReplyTo: message.envelope.messageID, payload: bytes), to: asker), wait: .never)
                default:
                    break
                }
            }
            // The peer sends true digests and a first run that matches them, then a run whose block 5 is rotten, and
            // never the last: only a check of each block as it lands can catch it.
            while let (asker, message) = try codec.receiveRouted(from: peer, wait: .never, maxFrames: 4, dropped: { _ in }) {
                guard message.type == .pieceRequest else { continue }
                let request = try message.body(as: Slipway_V1_PieceRequest.self)
                peerRequests.append(request)
                let index = Int(request.firstPiece)
                var bytes = piece(index)
                let digests = Manifest.blockDigests(of: bytes, blockSize: 64 << 10)
                bytes[5 * (64 << 10) + 100] ^= 0xFF
                for first in [0, 4] {
                    let header = Manifest.blockRunHeader(manifest, index: index, length: bytes.count, firstBlock: first, blockDigests: digests)
                    let run = Array(bytes[(first << 16)..<((first + 4) << 16)])
                    if try peer.send(codec.encode(WireMessage(header, sender: "agent-m2", inReplyTo: message.envelope.messageID, payload: run), to: asker),
                                     wait: .never) {
                        runsSent += 1
                    }
                }
            }
            if download.manifest != nil, !listed {
                download.update(peers: SlowPeerTests.completeHolder(manifest.digest, at: peerAddress))
                listed = true
            }
            usleep(2_000)
        }
        #expect(download.isComplete, "the store served what the banned peer could not")
        #expect(download.banned == ["m2"])
        #expect(download.rejected == 1, "one rejection: the run with the rotten block")
        #expect(peerRequests.count == 1 && peerRequests.allSatisfy(\.blocks), "the peer was asked once, in blocks: \(peerRequests)")
        #expect(runsSent == 2)
        #expect(seedAskedInBlocks, "the store is asked for blocks too (this one, like an older store, sends pieces whole)")
        #expect(download.fromPeers == 0 && download.fromSeed == 2)
        #expect(download.assemblies.isEmpty)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        #expect(try store.piece(manifest.digest, index: 0) + store.piece(manifest.digest, index: 1) == bytes)
    }

    @Test("cut-through: a piece arriving in blocks is announced and its checked blocks are sent on before the rest has come; asked too soon, busy")
    func cutThrough() async throws {
        let runner = OwnedThread(name: "cut-through")
        defer { runner.shutdown() }
        try await runner.run { try Self.cutThroughBody() }
    }

    static func cutThroughBody() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cut-through-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // One piece of 1 MiB: four runs of four blocks.
        let (bytes, manifest) = try artifact(in: folder, size: 1 << 20, pieceSize: 1 << 20)
        let context = try ZMQContext()
        // Machine A downloads from an upstream peer and serves machine B, a raw client here.
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        let (server, serverAddress) = try PieceHaveTests.server(in: folder, context: context, store: store, uploadSlots: 0)
        let (seed, seedAddress) = try SlowPeerTests.router(context)
        let (upstream, upstreamAddress) = try SlowPeerTests.router(context)
        defer { seed.close(); upstream.close() }
        let download = PieceDownload(digest: manifest.digest, machineID: "m1", store: store, context: context, sender: "agent-m1",
                                     seedEndpoint: try Endpoint(parsing: seedAddress), seedSecurity: .plain, logger: Logger(label: "test"))
        defer { download.close() }
        server.arriving = { digest, index in digest == manifest.digest ? download.arriving(index) : nil }
        let b = try ZMQSocket.requestDealer(context: context, connectedTo: Endpoint(parsing: serverAddress))
        defer { b.close() }
        let codec = WireCodec()
        var upstreamAsk: (peer: [UInt8], id: String)?, runsReleased = 0, runsSent = 0, listed = false
        var heardArriving: [UInt32] = [], runs: [(Slipway_V1_PieceData, [UInt8])] = [], busy = 0

        /// One turn of machine A, its upstream (which sends `runsReleased` runs) and B's reading.
        func turn() throws {
            try download.pump(now: .now)
            for (source, _) in download.sockets { try download.receive(from: source, now: .now) }
            if let arrived = download.takeArrived() { server.announce(manifest.digest, arrived) }
            try server.serve { $0 == manifest.digest ? PieceHolding(pieces: download.heldSet) : nil }
            while let (asker, message) = try codec.receiveRouted(from: seed, wait: .never, maxFrames: 4, dropped: { _ in }) {
                if message.type == .manifestRequest {
                    _ = try seed.send(codec.encode(WireMessage(manifest, sender: "region-eu", inReplyTo: message.envelope.messageID), to: asker), wait: .never)
                }
            }
            while let (asker, message) = try codec.receiveRouted(from: upstream, wait: .never, maxFrames: 4, dropped: { _ in }) {
                if message.type == .pieceRequest { upstreamAsk = (asker, message.envelope.messageID) }
            }
            if let ask = upstreamAsk {
                let digests = Manifest.blockDigests(of: bytes, blockSize: 64 << 10)
                while runsSent < runsReleased {
                    let first = runsSent * 4
                    let header = Manifest.blockRunHeader(manifest, index: 0, length: bytes.count, firstBlock: first, blockDigests: digests)
                    let run = Array(bytes[(first << 16)..<((first + 4) << 16)])
                    guard try upstream.send(codec.encode(WireMessage(header, sender: "agent-m2", inReplyTo: ask.id, payload: run), to: ask.peer),
                                            wait: .never) else { break }
                    runsSent += 1
                }
            }
            if download.manifest != nil, !listed {
                download.update(peers: SlowPeerTests.completeHolder(manifest.digest, at: upstreamAddress))
                listed = true
            }
            while let frames = try b.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
                let message = try codec.decode(frames)
                switch message.type {
                case .pieceHave: heardArriving += try message.body(as: Slipway_V1_PieceHave.self).arriving
                case .pieceData: runs.append((try message.body(as: Slipway_V1_PieceData.self), message.payload ?? []))
                case .errorReply where try message.body(as: Slipway_V1_ErrorReply.self).code == .busy: busy += 1
                default: break
                }
            }
            usleep(2_000)
        }
        func turn(until done: () -> Bool) throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while !done(), ContinuousClock.now < deadline { try turn() }
        }

        // B subscribes to A's pieces, and asks for the piece before any of it is here: busy.
        _ = try b.send(PieceHaveTests.have(manifest.digest), wait: .never)
        try turn { upstreamAsk != nil }
        #expect(upstreamAsk != nil, "A asked its upstream for the piece")
        _ = try b.send(request(manifest, piece: 0, blocks: true), wait: .never)
        try turn { busy > 0 }
        #expect(busy == 1, "a piece not here yet is answered busy, so the asker tries elsewhere")

        // Two runs come: A tells B the piece is arriving, and B, asking, gets both at once.
        runsReleased = 2
        try turn { !heardArriving.isEmpty }
        #expect(heardArriving == [0])
        _ = try b.send(request(manifest, piece: 0, blocks: true), wait: .never)
        try turn { runs.count >= 2 }
        for _ in 0..<20 { try turn() }
        #expect(runs.map(\.0.firstBlock) == [0, 4], "only the blocks A has checked go on")
        #expect(!download.isComplete)

        // The rest comes; B gets it, and the runs make the piece.
        runsReleased = 4
        try turn { runs.count >= 4 && download.isComplete }
        #expect(runs.map(\.0.firstBlock) == [0, 4, 8, 12])
        #expect(download.isComplete)
        var assembly = try BlockAssembly(header: try #require(runs.first).0, of: manifest)
        let outcomes = runs.map { assembly.take(firstBlock: Int($0.0.firstBlock), payload: $0.1) }
        #expect(outcomes == [.more, .more, .more, .complete(index: 0)])
        #expect(assembly.piece()?.bytes == bytes)
        #expect(server.piecesServed == 1)
    }

    @Test("the regional store sends a piece asked for in blocks as runs whose blocks check out; asked plainly, whole")
    func storeSendsRuns() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Piece 0 is 768 KiB: three runs.
        let (bytes, manifest) = try Self.artifact(in: folder, size: 1 << 20, pieceSize: 768 << 10)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in 0..<2 { try store.store(manifest.digest, index: index, bytes: Array(bytes[(index * (768 << 10))..<min(bytes.count, (index + 1) * (768 << 10))])) }
        try store.commit(manifest.digest)
        let thread = OwnedThread(name: "store-runs")
        defer { thread.shutdown() }
        let stop = StopSignal()
        let (address, stopped) = try StoreUploadSlotsTests.serve(folder, slots: 0, stop: stop, on: thread)
        defer { stop.stop(); stopped.wait() }
        let context = try ZMQContext()
        let client = try ZMQSocket.requestDealer(context: context, connectedTo: Endpoint(parsing: address))
        defer { client.close() }
        while try !client.send(Self.request(manifest, piece: 0, blocks: true), wait: .never) { usleep(5_000) }
        var assembly: BlockAssembly?
        var firstBlocks: [UInt32] = [], outcome = BlockAssembly.Outcome.more
        while outcome == .more, let message = try StoreUploadSlotsTests.next(client) {
            let header = try message.body(as: Slipway_V1_PieceData.self)
            firstBlocks.append(header.firstBlock)
            if assembly == nil { assembly = try BlockAssembly(header: header, of: manifest) }
            outcome = assembly!.take(firstBlock: Int(header.firstBlock), payload: message.payload ?? [])
        }
        #expect(firstBlocks == [0, 4, 8])
        #expect(outcome == .complete(index: 0))
        #expect(assembly?.piece()?.bytes == Array(bytes[0..<(768 << 10)]))
        _ = try client.send(Self.request(manifest, piece: 1, blocks: false), wait: .never)
        let whole = try #require(try StoreUploadSlotsTests.next(client))
        #expect(try whole.body(as: Slipway_V1_PieceData.self).blocks == false)
        #expect(whole.payload == Array(bytes[(768 << 10)...]))
    }

    @Test("runs nobody asked for, and the rest of a corrupt piece, are dropped quietly; a piece held meanwhile is counted down, not assembled")
    func runBookkeeping() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("run-bookkeeping-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // One piece of 768 KiB: three runs.
        let (bytes, manifest) = try Self.artifact(in: folder, size: 768 << 10, pieceSize: 768 << 10)
        let download = PieceDownload(digest: manifest.digest, machineID: "m1", store: try BlobStore(root: folder.appendingPathComponent("store")),
                                     context: try ZMQContext(), sender: "agent-m1", seedEndpoint: try Endpoint(parsing: "tcp://127.0.0.1:9"),
                                     seedSecurity: .plain, logger: Logger(label: "test"))
        defer { download.close() }
        try download.accept(manifest: WireMessage(manifest, sender: "region-eu"))
        let digests = Manifest.blockDigests(of: bytes, blockSize: 64 << 10)
        let peer = PieceSource.peer("m2")
        func run(_ first: Int, rotten: Bool = false, asked: Int?, held: Bool = false, from source: PieceSource = peer) throws -> BlockAssembly.Outcome {
            var payload = Array(bytes[(first << 16)..<((first + 4) << 16)])
            if rotten { payload[7] ^= 1 }
            let header = Manifest.blockRunHeader(manifest, index: 0, length: bytes.count, firstBlock: first, blockDigests: digests)
            return try download.take(run: header, payload: payload, from: source, asked: asked, held: held)
        }

        // Pushed without a request: nothing kept, nothing announced, its rest dropped too.
        #expect(try run(0, asked: nil) == .more)
        #expect(try run(4, asked: nil) == .more)
        #expect(download.assemblies.isEmpty && download.arrivingSet.isEmpty && download.arriving(0) == nil)

        // Asked for: assembled and offered to peers as it arrives; a rotten run ends it, and its rest is dropped.
        #expect(try run(0, asked: 0) == .more)
        #expect(download.arrivingSet == [0])
        #expect(download.arriving(0)?.bytes == Array(bytes[0..<(256 << 10)]))
        #expect(download.arriving(0)?.blockDigests == digests)
        guard case .corrupt = try run(4, rotten: true, asked: 0) else {
            Issue.record("a rotten run was taken")
            return
        }
        #expect(try run(8, asked: 0) == .more, "the rest of a corrupt piece is not a second corrupt piece")
        #expect(download.assemblies.isEmpty && download.arriving(0) == nil)

        // Asked again and held meanwhile from elsewhere: counted down to its last run, which answers the request.
        #expect(try run(0, asked: 0, held: true) == .more)
        #expect(try run(4, asked: 0, held: true) == .more)
        #expect(try run(8, asked: 0, held: true) == .complete(index: 0))
        #expect(download.assemblies.isEmpty)

        // A request that timed out (or was refused) while its runs came: the rest is dropped quietly.
        #expect(try run(0, asked: 0) == .more)
        download.dropAssembly(of: 0, from: peer)
        #expect(try run(4, asked: 0) == .more)
        #expect(try run(8, asked: 0) == .more, "no corrupt piece, no answer: that request was settled when it timed out")

        // The store may send one of the request's alternatives: a run of another piece than the one asked is taken from it.
        #expect(try run(0, asked: 5, from: .seed) == .more)
        #expect(download.assemblies[.seed]?.index == 0)
        download.dropAssembly(of: 0, from: .seed)

        // And a clean one completes and stores the piece.
        #expect(try run(0, asked: 0) == .more)
        #expect(try run(4, asked: 0) == .more)
        #expect(try run(8, asked: 0) == .complete(index: 0))
        #expect(download.store.heldPiece(manifest.digest, index: 0) == bytes)
    }
}
