import Foundation
import Logging
@testable import SlipwayAgent
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A download whose peer takes a request and never answers: real sockets on
/// 127.0.0.1, a hand-driven store and a silent peer, in this process.
@Suite("A peer that stops answering")
struct SlowPeerTests {
    /// A ROUTER on a free loopback port, and its address.
    static func router(_ context: ZMQContext) throws -> (ZMQSocket, String) {
        for _ in 0..<20 {
            let address = "tcp://127.0.0.1:\(scratchPort())"
            let socket = try ZMQSocket(context: context, type: .router)
            if (try? socket.bind(address)) != nil { return (socket, address) }
            socket.close()
        }
        throw CancellationError()
    }

    /// A tracker's list naming one peer, `machine` at `endpoint`, that holds all of `digest`.
    static func completeHolder(_ digest: String, machine: String = "m2", at endpoint: String) -> Slipway_V1_PeerList {
        var list = Slipway_V1_PeerList()
        list.digest = digest
        var holder = Slipway_V1_Peer()
        holder.machineID = machine
        holder.endpoint = endpoint
        holder.complete = true
        list.peers = [holder]
        return list
    }

    @Test("a piece asked of a peer that went silent is asked of the store after the slow time, not the 30 s timeout")
    func silentPeer() async throws {
        // It waits up to 10 s on sockets: on a thread of its own, not one of Swift's few pool threads.
        let runner = OwnedThread(name: "slow-peer")
        defer { runner.shutdown() }
        try await runner.run { try Self.silentPeerBody() }
    }

    static func silentPeerBody() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slow-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bytes = (0..<(4 << 16)).map { _ in UInt8.random(in: 0...255) }
        let file = folder.appendingPathComponent("app")
        try Data(bytes).write(to: file)
        let manifest = try Manifest.build(fileAt: file.path, name: "app", pieceSize: 1 << 16)
        let context = try ZMQContext()
        let (seed, seedAddress) = try Self.router(context)
        let (silent, silentAddress) = try Self.router(context)
        defer { seed.close(); silent.close() }
        let download = PieceDownload(digest: manifest.digest, machineID: "m1", store: try BlobStore(root: folder.appendingPathComponent("store")),
                                     context: context, sender: "agent-m1", seedEndpoint: try Endpoint(parsing: seedAddress),
                                     seedSecurity: .plain, logger: Logger(label: "test"), slowAfter: .milliseconds(500))
        defer { download.close() }
        let codec = WireCodec()
        var askedOfSilent: Set<Int> = [], askedOfSeed: Set<Int> = [], listed = false
        let start = ContinuousClock.now
        while !download.isComplete, ContinuousClock.now - start < .seconds(10) {
            try download.pump(now: ContinuousClock.now)
            for (source, _) in download.sockets { try download.receive(from: source, now: ContinuousClock.now) }
            while let (peer, message) = try codec.receiveRouted(from: seed, wait: .never, maxFrames: 4, dropped: { _ in }) {
                switch message.type {
                case .manifestRequest:
                    _ = try seed.send(codec.encode(WireMessage(manifest, sender: "region-eu", inReplyTo: message.envelope.messageID), to: peer), wait: .never)
                case .pieceRequest:
                    let index = Int(try message.body(as: Slipway_V1_PieceRequest.self).firstPiece)
                    askedOfSeed.insert(index)
                    let piece = Array(bytes[(index << 16)..<((index + 1) << 16)])
                    let header = Manifest.pieceHeader(manifest, index: index, length: piece.count)
                    _ = try seed.send(codec.encode(WireMessage(header, sender: "region-eu", inReplyTo: message.envelope.messageID, payload: piece), to: peer), wait: .never)
                default:
                    break
                }
            }
            // The silent peer reads its requests and never answers.
            while let (_, message) = try codec.receiveRouted(from: silent, wait: .never, maxFrames: 4, dropped: { _ in }) {
                if message.type == .pieceRequest { askedOfSilent.insert(Int(try message.body(as: Slipway_V1_PieceRequest.self).firstPiece)) }
            }
            if download.manifest != nil, !listed {
                download.update(peers: completeHolder(manifest.digest, at: silentAddress))
                listed = true
            }
            usleep(5_000)
        }
        #expect(download.isComplete, "done within 10 s, though the request timeout is 30 s")
        #expect(askedOfSilent.count == 1, "the peer holding everything was asked first, once")
        #expect(askedOfSeed == Set(0..<4), "then the store, for every piece: the silent peer no longer counts")
    }
}
