import Foundation
import SlipwayArtifact
import SlipwayProto
import Testing

@Suite("Pieces cut by content, and what a new build takes from the one before")
struct PieceReuseTests {
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    static func write(_ bytes: [UInt8], _ name: String, in folder: URL) throws -> URL {
        let file = folder.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file
    }

    /// Share of `new`'s bytes that sit in pieces `old` also has.
    static func shared(_ old: Slipway_V1_ArtifactManifest, _ new: Slipway_V1_ArtifactManifest) -> Double {
        let known = Set(old.pieceSha256)
        let bytes = new.pieceSha256.indices.filter { known.contains(new.pieceSha256[$0]) }
            .reduce(0) { $0 + Manifest.pieceLength(new, index: $1) }
        return Double(bytes) / Double(new.size)
    }

    @Test("content-defined pieces survive an insertion; fixed pieces do not")
    func insertionMovesFewBoundaries() throws {
        let folder = try BlobStoreTests.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let old = Self.random(4 << 20, seed: 1)
        var new = old
        new.insert(contentsOf: Self.random(100, seed: 2), at: 1 << 20)
        let oldFile = try Self.write(old, "old", in: folder), newFile = try Self.write(new, "new", in: folder)
        let cutting = Manifest.Cutting.byContent(ContentChunker(average: 16 << 10))
        let oldByContent = try Manifest.build(fileAt: oldFile.path, name: "svc", cutting: cutting)
        let newByContent = try Manifest.build(fileAt: newFile.path, name: "svc", cutting: cutting)
        #expect(Self.shared(oldByContent, newByContent) > 0.95)
        let oldFixed = try Manifest.build(fileAt: oldFile.path, name: "svc", pieceSize: 16 << 10)
        let newFixed = try Manifest.build(fileAt: newFile.path, name: "svc", pieceSize: 16 << 10)
        #expect(Self.shared(oldFixed, newFixed) < 0.3)
    }

    @Test("content-defined manifests: lengths within bounds, offsets add up, same bytes cut the same")
    func contentDefinedManifest() throws {
        let folder = try BlobStoreTests.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bytes = Self.random(3 << 20, seed: 3)
        let file = try Self.write(bytes, "artifact", in: folder)
        let chunker = ContentChunker(average: 64 << 10)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", cutting: .byContent(chunker))
        try Manifest.validate(manifest)
        #expect(manifest == (try Manifest.build(fileAt: file.path, name: "svc", cutting: .byContent(chunker))))
        #expect(manifest.pieceLength.count == manifest.pieceSha256.count)
        #expect(manifest.pieceLength.dropLast().allSatisfy { $0 >= chunker.minimum && $0 <= chunker.maximum })
        #expect(manifest.pieceSize == manifest.pieceLength.max())
        #expect(manifest.pieceSha256.count > (3 << 20) / chunker.maximum)
        let offsets = Manifest.pieceOffsets(manifest)
        for index in manifest.pieceSha256.indices {
            #expect(Manifest.pieceOffset(manifest, index: index) == offsets[index])
            let start = Int(offsets[index])
            #expect(Manifest.verify(piece: bytes[start..<start + Manifest.pieceLength(manifest, index: index)], index: index, of: manifest))
        }
        #expect(Int(offsets.last!) + Manifest.pieceLength(manifest, index: manifest.pieceSha256.count - 1) == bytes.count)
        // An empty file has no pieces and is a valid artifact.
        let empty = try Manifest.build(fileAt: try Self.write([], "empty", in: folder).path, name: "svc")
        #expect(empty.pieceSha256.isEmpty)
        try Manifest.validate(empty)
    }

    @Test("hostile piece lengths are refused", arguments: ["sum", "count", "zero", "longerThanPieceSize"])
    func invalidLengths(fault: String) throws {
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = String(repeating: "a", count: 64)
        manifest.size = 10
        manifest.pieceSize = 6
        manifest.pieceSha256 = [Data(count: 32), Data(count: 32)]
        manifest.pieceLength = [6, 4]
        try Manifest.validate(manifest)
        switch fault {
        case "sum": manifest.pieceLength = [6, 5]
        case "count": manifest.pieceLength = [10]
        case "zero": manifest.pieceLength = [10, 0]; manifest.pieceSize = 10
        default: manifest.pieceLength = [7, 3]
        }
        #expect((#expect(throws: ArtifactError.self) { try Manifest.validate(manifest) })?.code == .invalidManifest)
    }

    /// A store holding `old` committed, and the manifests of `old` and `new` (cut by content).
    struct TwoBuilds {
        let folder: URL
        let store: BlobStore
        let old: Slipway_V1_ArtifactManifest
        let new: Slipway_V1_ArtifactManifest
        let newBytes: [UInt8]

        init(newName: String = "svc") throws {
            folder = try BlobStoreTests.scratch()
            let oldBytes = PieceReuseTests.random(2 << 20, seed: 4)
            var changed = oldBytes
            changed.replaceSubrange(700_000..<700_010, with: PieceReuseTests.random(30, seed: 5))
            newBytes = changed
            let cutting = Manifest.Cutting.byContent(ContentChunker(average: 32 << 10))
            old = try Manifest.build(fileAt: try PieceReuseTests.write(oldBytes, "old", in: folder).path, name: "svc", cutting: cutting)
            new = try Manifest.build(fileAt: try PieceReuseTests.write(newBytes, "new", in: folder).path, name: newName, cutting: cutting)
            store = try BlobStore(root: folder.appendingPathComponent("store"))
            try receive(old, oldBytes)
        }

        func piece(_ manifest: Slipway_V1_ArtifactManifest, _ bytes: [UInt8], _ index: Int) -> [UInt8] {
            let start = Int(Manifest.pieceOffset(manifest, index: index))
            return Array(bytes[start..<start + Manifest.pieceLength(manifest, index: index)])
        }

        /// Begins `manifest` and stores every piece the store still lacks; returns how many were sent.
        @discardableResult
        func receive(_ manifest: Slipway_V1_ArtifactManifest, _ bytes: [UInt8]) throws -> Int {
            _ = try store.begin(manifest)
            let held = store.receivedPieces(manifest.digest)
            let needed = manifest.pieceSha256.indices.filter { !held.contains($0) }
            for index in needed { try store.store(manifest.digest, index: index, bytes: piece(manifest, bytes, index)) }
            try store.commit(manifest.digest)
            return needed.count
        }
    }

    @Test("a new build of the same name receives only the pieces it does not share")
    func newBuildTakesSharedPieces() throws {
        let builds = try TwoBuilds()
        defer { try? FileManager.default.removeItem(at: builds.folder) }
        let sharedPieces = Set(builds.old.pieceSha256)
        let expected = builds.new.pieceSha256.filter { !sharedPieces.contains($0) }.count
        #expect(expected > 0 && expected < builds.new.pieceSha256.count / 4)
        let first = try builds.store.begin(builds.new)
        #expect(first < builds.new.pieceSha256.count)
        let reused = builds.store.takeReused(builds.new.digest)
        #expect(reused.pieces == builds.new.pieceSha256.count - expected)
        #expect(try builds.receive(builds.new, builds.newBytes) == expected)
        let out = builds.folder.appendingPathComponent("out")
        try builds.store.export(builds.new.digest, to: out)
        #expect([UInt8](try Data(contentsOf: out)) == builds.newBytes)
        // The earlier build can go: the new one's linked pieces stay.
        try builds.store.remove(builds.old.digest)
        try builds.store.export(builds.new.digest, to: out)
        #expect([UInt8](try Data(contentsOf: out)) == builds.newBytes)
    }

    @Test("a piece is linked only at its own length: a manifest that moves lengths between pieces links none of those")
    func lengthsMustMatch() throws {
        let builds = try TwoBuilds()
        defer { try? FileManager.default.removeItem(at: builds.folder) }
        var moved = builds.old
        moved.digest = String(repeating: "b", count: 64)
        moved.pieceLength[0] += 1
        moved.pieceLength[1] -= 1
        moved.pieceSize = max(moved.pieceSize, moved.pieceLength[0])
        try Manifest.validate(moved)
        _ = try builds.store.begin(moved)
        #expect(builds.store.takeReused(moved.digest).pieces == moved.pieceSha256.count - 2)
        #expect(!builds.store.receivedPieces(moved.digest).contains(0) && !builds.store.receivedPieces(moved.digest).contains(1))
    }

    @Test("a piece is linked only under the root it was checked against; a manifest without roots links by SHA-256")
    func rootsMustMatch() throws {
        let builds = try TwoBuilds()
        defer { try? FileManager.default.removeItem(at: builds.folder) }
        var lying = builds.old
        lying.digest = String(repeating: "c", count: 64)
        lying.pieceRoot[2] = Data(repeating: 9, count: 32)
        try Manifest.validate(lying)
        _ = try builds.store.begin(lying)
        #expect(builds.store.takeReused(lying.digest).pieces == lying.pieceSha256.count - 1)
        #expect(!builds.store.receivedPieces(lying.digest).contains(2))
        let refused = #expect(throws: ArtifactError.self) {
            try builds.store.store(lying.digest, index: 2, bytes: builds.piece(lying, PieceReuseTests.random(2 << 20, seed: 4), 2))
        }
        #expect(refused?.code == .pieceMismatch)

        var plain = builds.old
        plain.digest = String(repeating: "d", count: 64)
        (plain.blockSize, plain.pieceRoot) = (0, [])
        _ = try builds.store.begin(plain)
        #expect(builds.store.takeReused(plain.digest).pieces == plain.pieceSha256.count)
    }

    @Test("an artifact of another name takes nothing")
    func otherNameTakesNothing() throws {
        let builds = try TwoBuilds(newName: "other")
        defer { try? FileManager.default.removeItem(at: builds.folder) }
        #expect(try builds.store.begin(builds.new) == 0)
        #expect(builds.store.takeReused(builds.new.digest) == ReusedPieces())
        #expect(try builds.receive(builds.new, builds.newBytes) == builds.new.pieceSha256.count)
    }

    @Test("a held piece that rotted fails the check once; the retry receives everything")
    func rottenHeldPiece() throws {
        let builds = try TwoBuilds()
        defer { try? FileManager.default.removeItem(at: builds.folder) }
        // Rot piece 0 of the committed build in place, as a failing disk would.
        let rotten = builds.folder.appendingPathComponent("store/artifacts/\(builds.old.digest)/pieces/0")
        var bytes = [UInt8](try Data(contentsOf: rotten))
        bytes[0] ^= 0xFF
        try Data(bytes).write(to: rotten)
        #expect(builds.new.pieceSha256[0] == builds.old.pieceSha256[0])
        let error = #expect(throws: ArtifactError.self) { try builds.receive(builds.new, builds.newBytes) }
        #expect(error?.code == .digestMismatch)
        #expect(!builds.store.has(builds.new.digest))
        #expect(try builds.receive(builds.new, builds.newBytes) == builds.new.pieceSha256.count)
        #expect(builds.store.has(builds.new.digest))
    }

    @Test("a piece bitmap holds exactly its indices and tolerates short input")
    func bitmap() {
        let map = PieceBitmap([0, 9, 17], count: 18)
        #expect(map.bytes.count == 3)
        #expect((0..<24).filter(map.contains) == [0, 9, 17])
        #expect(!PieceBitmap(bytes: Data([0xFF])).contains(8))
        #expect(!map.contains(-1))
    }
}
