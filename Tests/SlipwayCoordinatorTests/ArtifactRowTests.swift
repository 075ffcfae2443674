import Foundation
@testable import SlipwayCoordinator
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import Testing

/// The coordinator keeps each artifact's manifest as an `artifacts` row and rebuilds it
/// for the events regions replicate and deploy from: what it rebuilds must be what the worker made.
@Suite("Manifests kept as artifact rows", .enabled(if: TestDatabase.isConfigured))
struct ArtifactRowTests {
    @Test("a manifest with block roots, and one without, come back from their rows as they went in; a row with a block size and no roots is refused")
    func roundTrip() async throws {
        let url = try await TestDatabase.create()
        defer { Task { await TestDatabase.drop(url) } }
        let db = try PGConnection(url: url, logger: TestDatabase.logger)
        let queries = CoordinatorQueries(defaultMaxAttempts: 3, defaultTimeoutSeconds: 60, retryBackoff: .seconds(1))

        var blocks = Slipway_V1_ArtifactManifest()
        blocks.digest = String(repeating: "b", count: 64)
        blocks.name = "svc"
        blocks.size = 5
        blocks.pieceSize = 3
        blocks.pieceSha256 = [Data(repeating: 1, count: 32), Data(repeating: 2, count: 32)]
        blocks.pieceLength = [3, 2]
        blocks.blockSize = 64 << 10
        blocks.pieceRoot = [Data(repeating: 3, count: 32), Data(repeating: 4, count: 32)]
        blocks.originRegion = "eu"
        var plain = blocks
        plain.digest = String(repeating: "c", count: 64)
        plain.blockSize = 0
        plain.pieceRoot = []
        for manifest in [blocks, plain] {
            _ = try db.query("""
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, piece_lengths, block_size, piece_roots, origin_region)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """, [.text(manifest.digest), .text(manifest.name), .int(manifest.size), .int(manifest.pieceSize),
                      .bytes(CoordinatorQueries.packed(manifest.pieceSha256)), CoordinatorQueries.packedLengths(manifest),
                      .int(manifest.blockSize), CoordinatorQueries.packedRoots(manifest), .text(manifest.originRegion)])
            #expect(try queries.manifest(db, digest: manifest.digest) == manifest)
        }

        #expect(throws: (any Error).self) {
            try db.query("""
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, block_size, origin_region)
                VALUES ($1, 'svc', 1, 1, '\\x00', 65536, 'eu')
                """, [.text(String(repeating: "d", count: 64))])
        }
    }
}
