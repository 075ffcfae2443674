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

/// A download whose store answers a piece request with an error: real sockets
/// on 127.0.0.1 and a hand-driven store, in this process.
@Suite("A store that cannot serve a request")
struct StoreRefusalTests {
    @Test("the refused piece goes back to missing at once, and the store rests instead of being asked again")
    func refusedRequestIsFreed() async throws {
        let runner = OwnedThread(name: "store-refusal")
        defer { runner.shutdown() }
        try await runner.run { try Self.body() }
    }

    static func body() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-refusal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bytes = (0..<(2 << 16)).map { _ in UInt8.random(in: 0...255) }
        let file = folder.appendingPathComponent("app")
        try Data(bytes).write(to: file)
        let manifest = try Manifest.build(fileAt: file.path, name: "app", pieceSize: 1 << 16)
        let context = try ZMQContext()
        let (seed, seedAddress) = try SlowPeerTests.router(context)
        defer { seed.close() }
        let download = PieceDownload(digest: manifest.digest, machineID: "m1", store: try BlobStore(root: folder.appendingPathComponent("store")),
                                     context: context, sender: "agent-m1", seedEndpoint: try Endpoint(parsing: seedAddress),
                                     seedSecurity: .plain, logger: Logger(label: "test"), seedOnly: true)
        defer { download.close() }
        let codec = WireCodec()
        var refused: Int?, refusedAt: ContinuousClock.Instant?, askedAfter = 0
        // Requests sent before the refusal was taken in may be drained after it: they do not count.
        var sentBefore: Set<String> = []
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(5), refusedAt.map({ ContinuousClock.now - $0 < .seconds(1) }) ?? true {
            try download.pump(now: ContinuousClock.now)
            for (source, _) in download.sockets { try download.receive(from: source, now: ContinuousClock.now) }
            if let refused, refusedAt == nil, download.requests.sent[refused] == nil {
                refusedAt = ContinuousClock.now
                sentBefore = download.outstanding.ids
                #expect(download.picker?.seedChoked == true, "the store rests after its refusal")
            }
            while let (peer, message) = try codec.receiveRouted(from: seed, wait: .never, maxFrames: 4, dropped: { _ in }) {
                switch message.type {
                case .manifestRequest:
                    _ = try seed.send(codec.encode(WireMessage(manifest, sender: "region-eu", inReplyTo: message.envelope.messageID), to: peer), wait: .never)
                case .pieceRequest where refused == nil:
                    refused = Int(try message.body(as: Slipway_V1_PieceRequest.self).firstPiece)
                    let busy = Slipway_V1_ErrorReply(.busy, "64 pieces already wait for you")
                    _ = try seed.send(codec.encode(WireMessage(busy, sender: "region-eu", inReplyTo: message.envelope.messageID), to: peer), wait: .never)
                case .pieceRequest:
                    // Requests the download had in flight before the refusal are answered as usual; none comes after it.
                    if refusedAt != nil, !sentBefore.contains(message.envelope.messageID) { askedAfter += 1 }
                default:
                    break
                }
            }
            usleep(5_000)
        }
        #expect(refused != nil, "the download asked the store for a piece")
        #expect(refusedAt != nil, "the refused request was freed at once, not held until it timed out")
        #expect(askedAfter == 0, "and the store was not asked again while it rests")
    }
}
