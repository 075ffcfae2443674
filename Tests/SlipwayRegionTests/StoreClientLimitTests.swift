import Foundation
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayRegionStore
import SlipwayWire
import Testing

/// A manifest too large for the one message an upload begins with is refused
/// before anything is sent, with the cause, rather than dropped unread by the store.
@Suite("Uploads of manifests that fit one message")
struct StoreClientLimitTests {
    /// A manifest of `pieces` pieces of 1 MiB with 64 KiB blocks, as workers publish (digests made up).
    static func manifest(pieces: Int) -> Slipway_V1_ArtifactManifest {
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = String(repeating: "a", count: 64)
        manifest.name = "big"
        manifest.pieceSize = 4 << 20
        manifest.size = UInt64(pieces) << 20
        manifest.pieceLength = Array(repeating: 1 << 20, count: pieces)
        manifest.pieceSha256 = (0..<pieces).map { Data(repeating: UInt8($0 & 0xFF), count: 32) }
        manifest.blockSize = Manifest.defaultBlockSize
        manifest.pieceRoot = manifest.pieceSha256
        return manifest
    }

    @Test("10 GiB in 1 MiB pieces fits; 16 GiB is refused naming its size, before any store is asked")
    func limit() throws {
        // Nothing listens here: a check that sent anything would wait, then fail otherwise.
        let client = StoreClient(context: try ZMQContext(), endpoint: try Endpoint(parsing: "tcp://127.0.0.1:9"), sender: "worker-w1",
                                 security: .plain)
        #expect(throws: Never.self) { try client.checkFits(Self.manifest(pieces: 10 << 10)) }
        do {
            try client.upload(URL(fileURLWithPath: "/nonexistent"), manifest: Self.manifest(pieces: 16 << 10))
            Issue.record("a 16 GiB manifest was taken")
        } catch let failure as StoreClient.ManifestTooLarge {
            #expect(failure.description.contains("17179869184 bytes in 16384 pieces"), "\(failure)")
            #expect(failure.description.contains("over the 1048576 one message may carry"), "\(failure)")
        }
    }
}
