import Foundation
import SlipwayArtifact
import SlipwayProto
import Testing

/// Pieces sent in runs of blocks: each block checked as it lands, against
/// digests checked against the manifest's root.
@Suite("Pieces assembled from verified blocks")
struct BlockAssemblyTests {
    /// 100,000 random bytes in pieces of 64 KiB and blocks of 16 KiB: piece 0 has
    /// four whole blocks, piece 1 (34,464 bytes) two whole and one short.
    static func fixture() throws -> BlobStoreTests.Fixture {
        try BlobStoreTests.Fixture(size: 100_000, pieceSize: 64 << 10, blockSize: 16 << 10)
    }

    /// The first run's header of piece `index`, with the digests a server computes.
    static func firstRun(_ fixture: BlobStoreTests.Fixture, _ index: Int) -> Slipway_V1_PieceData {
        let piece = fixture.piece(index)
        return Manifest.blockRunHeader(fixture.manifest, index: index, length: piece.count, firstBlock: 0,
                                       blockDigests: Manifest.blockDigests(of: piece, blockSize: 16 << 10))
    }

    @Test("runs of whole blocks, the last one short, make the piece; the store takes it without hashing it whole and commits")
    func assembles() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let store = try fixture.store()
        _ = try store.begin(fixture.manifest)
        for index in 0..<2 {
            let piece = fixture.piece(index)
            var assembly = try BlockAssembly(header: Self.firstRun(fixture, index), of: fixture.manifest)
            #expect(assembly.piece() == nil)
            // Runs of two blocks: piece 1 ends with one short block.
            var outcomes: [BlockAssembly.Outcome] = []
            for first in stride(from: 0, to: piece.count, by: 32 << 10) {
                outcomes.append(assembly.take(firstBlock: first / (16 << 10), payload: Array(piece[first..<min(piece.count, first + (32 << 10))])))
            }
            #expect(outcomes == [.more, .complete(index: index)])
            let verified = try #require(assembly.piece())
            #expect(verified.bytes == piece && verified.index == index && verified.digest == fixture.manifest.digest)
            try store.store(verified)
        }
        try store.commit(fixture.manifest.digest)
        #expect(try store.piece(fixture.manifest.digest, index: 1) == fixture.piece(1))
    }

    @Test("a corrupt block is refused on arrival, naming it; runs out of order, off a block boundary or past the end are refused")
    func refusesBadRuns() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let piece = fixture.piece(0)
        let fresh = { try BlockAssembly(header: Self.firstRun(fixture, 0), of: fixture.manifest) }

        var corrupt = try fresh()
        #expect(corrupt.take(firstBlock: 0, payload: Array(piece[0..<(16 << 10)])) == .more)
        var rotten = Array(piece[(16 << 10)..<(48 << 10)])
        rotten[(16 << 10) + 7] ^= 1
        #expect(corrupt.take(firstBlock: 1, payload: rotten) == .corrupt("block 2 of piece 0 does not match its digest"))
        #expect(corrupt.nextBlock == 1, "nothing of a run with a corrupt block is kept")

        var outOfOrder = try fresh()
        guard case .corrupt = outOfOrder.take(firstBlock: 1, payload: Array(piece[(16 << 10)..<(32 << 10)])) else {
            Issue.record("a run that skips block 0 was taken")
            return
        }
        var offBoundary = try fresh()
        guard case .corrupt = offBoundary.take(firstBlock: 0, payload: Array(piece[0..<1000])) else {
            Issue.record("a run ending inside a block was taken")
            return
        }
        var empty = try fresh()
        guard case .corrupt = empty.take(firstBlock: 0, payload: []) else {
            Issue.record("an empty run was taken")
            return
        }
        var tooLong = try fresh()
        guard case .corrupt = tooLong.take(firstBlock: 0, payload: piece + Array(repeating: 0, count: 16 << 10)) else {
            Issue.record("a run past the piece's end was taken")
            return
        }
    }

    @Test("block digests that do not match the root, too few or too many, another piece's, or a manifest without roots are refused")
    func refusesBadDigests() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        var lying = Self.firstRun(fixture, 0)
        lying.blockSha256[3] = Data(repeating: 0, count: 32)
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: lying, of: fixture.manifest) }
        var short = Self.firstRun(fixture, 0)
        short.blockSha256.removeLast()
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: short, of: fixture.manifest) }
        var long = Self.firstRun(fixture, 0)
        long.blockSha256.append(long.blockSha256[0])
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: long, of: fixture.manifest) }
        var swapped = Self.firstRun(fixture, 1)
        swapped.index = 0
        swapped.length = UInt32(fixture.piece(0).count)
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: swapped, of: fixture.manifest) }
        var later = Self.firstRun(fixture, 0)
        later.firstBlock = 1
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: later, of: fixture.manifest) }
        var outOfRange = Self.firstRun(fixture, 0)
        outOfRange.index = 2
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: outOfRange, of: fixture.manifest) }

        var rootless = fixture.manifest
        rootless.blockSize = 0
        rootless.pieceRoot = []
        #expect(throws: ArtifactError.self) { try BlockAssembly(header: Self.firstRun(fixture, 0), of: rootless) }
    }

    @Test("block digests are the SHA-256 of each block, the last one short, and hash to the piece's root")
    func digestsMakeTheRoot() throws {
        let fixture = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        for index in 0..<2 {
            let digests = Manifest.blockDigests(of: fixture.piece(index), blockSize: 16 << 10)
            #expect(digests.count == [4, 3][index])
            let root = fixture.piece(index).withUnsafeBytes { Manifest.pieceRoot(of: $0, blockSize: 16 << 10) }
            #expect(root == fixture.manifest.pieceRoot[index])
            #expect(try BlockAssembly(header: Self.firstRun(fixture, index), of: fixture.manifest).length == fixture.piece(index).count)
        }
    }
}
