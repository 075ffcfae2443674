import Foundation
import SlipwayArtifact
import SlipwayProto
import Testing

@Suite("Manifests and the content-addressed blob store")
struct BlobStoreTests {
    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-blob-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func artifact(in folder: URL, size: Int) throws -> (URL, [UInt8]) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let file = folder.appendingPathComponent("artifact.bin")
        try Data(bytes).write(to: file)
        return (file, bytes)
    }

    /// A random artifact of `size` bytes in a fresh folder, its manifest, and its piece `i`.
    struct Fixture {
        let folder: URL
        let bytes: [UInt8]
        let manifest: Slipway_V1_ArtifactManifest
        let pieceSize: Int

        init(size: Int, pieceSize: Int = 4_096, blockSize: UInt32 = Manifest.defaultBlockSize) throws {
            folder = try BlobStoreTests.scratch()
            let (file, bytes) = try BlobStoreTests.artifact(in: folder, size: size)
            self.bytes = bytes
            self.pieceSize = pieceSize
            manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: UInt32(pieceSize), blockSize: blockSize)
        }

        func piece(_ index: Int) -> [UInt8] { Array(bytes[(index * pieceSize)..<min(bytes.count, (index + 1) * pieceSize)]) }
        func store(earlyPieceMemory: Int = 64 << 20) throws -> BlobStore {
            try BlobStore(root: folder.appendingPathComponent("store"), earlyPieceMemory: earlyPieceMemory)
        }
        /// The committed artifact written out as one file.
        func exported(from store: BlobStore) throws -> [UInt8] {
            let out = folder.appendingPathComponent("out.bin")
            try store.export(manifest.digest, to: out)
            return [UInt8](try Data(contentsOf: out))
        }
    }

    @Test("a manifest matches sha256sum and covers every piece")
    func manifest() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 10_000)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        #expect(manifest.size == 10_000)
        #expect(manifest.pieceSha256.count == 3)
        #expect(Manifest.pieceLength(manifest, index: 2) == 10_000 - 8_192)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(output.hasPrefix(manifest.digest + " "))
        #expect(Manifest.verify(piece: bytes[4_096..<8_192], index: 1, of: manifest))
        #expect(!Manifest.verify(piece: bytes[0..<4_096], index: 1, of: manifest))
        try Manifest.validate(manifest)
    }

    @Test("piece roots are the SHA-256 of each piece's block digests, as Python's hashlib computes them")
    func pieceRoots() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 100_000)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 64 << 10, blockSize: 16 << 10)
        #expect(manifest.blockSize == 16 << 10)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", """
            import hashlib, sys
            data = open(sys.argv[1], 'rb').read()
            for start in range(0, len(data), 65536):
                piece = data[start:start + 65536]
                blocks = b''.join(hashlib.sha256(piece[b:b + 16384]).digest() for b in range(0, len(piece), 16384))
                print(hashlib.sha256(blocks).hexdigest())
            """, file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(output.split(separator: "\n").map(String.init) == manifest.pieceRoot.map { Manifest.hex($0) })
        #expect(manifest.pieceRoot.count == 2)
        try Manifest.validate(manifest)
        #expect(Manifest.verify(piece: bytes[65_536...], index: 1, of: manifest))

        // A manifest as workers older than blocks made it: no roots, pieces checked whole.
        let plain = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 64 << 10, blockSize: 0)
        #expect(plain.blockSize == 0 && plain.pieceRoot.isEmpty && plain.pieceSha256 == manifest.pieceSha256)
        try Manifest.validate(plain)
        #expect(Manifest.verify(piece: bytes[65_536...], index: 1, of: plain))
        #expect(throws: ArtifactError.self) { try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 64 << 10, blockSize: 3_000) }
    }

    @Test("a store refuses a piece whose SHA-256 matches but whose root does not: a manifest's lying root is caught at its piece")
    func lyingRoot() throws {
        let fixture = try Fixture(size: 12_000)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        var manifest = fixture.manifest
        #expect(manifest.pieceRoot.count == 3)
        manifest.pieceRoot[1] = Data(repeating: 7, count: 32)
        let store = try fixture.store()
        _ = try store.begin(manifest)
        try store.store(manifest.digest, index: 0, bytes: fixture.piece(0))
        let error = #expect(throws: ArtifactError.self) { try store.store(manifest.digest, index: 1, bytes: fixture.piece(1)) }
        #expect(error?.code == .pieceMismatch)
        #expect(store.receivedPieces(manifest.digest) == [0])
    }

    @Test("hostile manifests are refused before anything is written", arguments: [
        "digest", "pieces", "pieceSize", "hashLength", "rootsWithoutBlockSize", "blockSize", "rootCount", "rootLength",
    ])
    func invalidManifest(fault: String) throws {
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = String(repeating: "a", count: 64)
        manifest.size = 8
        manifest.pieceSize = 4
        manifest.pieceSha256 = [Data(count: 32), Data(count: 32)]
        switch fault {
        case "digest": manifest.digest = "../../etc/passwd"
        case "pieces": manifest.pieceSha256.append(Data(count: 32))
        case "pieceSize": manifest.pieceSize = 0
        case "rootsWithoutBlockSize": manifest.pieceRoot = [Data(count: 32), Data(count: 32)]
        case "blockSize": (manifest.blockSize, manifest.pieceRoot) = (48 << 10, [Data(count: 32), Data(count: 32)])
        case "rootCount": (manifest.blockSize, manifest.pieceRoot) = (16 << 10, [Data(count: 32)])
        case "rootLength": (manifest.blockSize, manifest.pieceRoot) = (16 << 10, [Data(count: 32), Data(count: 33)])
        default: manifest.pieceSha256[1] = Data(count: 31)
        }
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try BlobStore(root: folder)
        let error = #expect(throws: ArtifactError.self) { try store.begin(manifest) }
        #expect(error?.code == .invalidManifest)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("incoming").path).isEmpty)
    }

    @Test("upload: bad pieces refused, resume after reopening, commit makes it visible")
    func uploadResumeCommit() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 20_000)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let piece = { (index: Int) in Array(bytes[(index * 4_096)..<min(bytes.count, (index + 1) * 4_096)]) }

        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        #expect(try store.begin(manifest) == 0)
        #expect(try store.put(manifest.digest, index: 0, bytes: piece(0)) == 1)
        var corrupt = piece(1)
        corrupt[7] ^= 0xFF
        #expect((#expect(throws: ArtifactError.self) { try store.put(manifest.digest, index: 1, bytes: corrupt) })?.code == .pieceMismatch)
        #expect(try store.put(manifest.digest, index: 1, bytes: piece(1)) == 2)
        #expect((#expect(throws: ArtifactError.self) { try store.commit(manifest.digest) })?.code == .incomplete)
        #expect(!store.has(manifest.digest))

        // A new process (a restarted region) resumes where the last one stopped.
        let reopened = try BlobStore(root: folder.appendingPathComponent("store"))
        #expect(try reopened.begin(manifest) == 2)
        for index in 2..<5 { _ = try reopened.put(manifest.digest, index: index, bytes: piece(index)) }
        try reopened.commit(manifest.digest)
        #expect(reopened.has(manifest.digest))
        #expect(try reopened.manifest(manifest.digest) == manifest)
        #expect(try reopened.committedDigests() == [manifest.digest])
        #expect(try reopened.begin(manifest) == 5)
        let exported = folder.appendingPathComponent("out.bin")
        try reopened.export(manifest.digest, to: exported)
        #expect([UInt8](try Data(contentsOf: exported)) == bytes)
    }

    @Test("pieces in any order, some twice, are hashed in order on the digest's queue; commit needs no read-back", arguments: [0, 64 << 20])
    func anyOrderCommit(earlyPieceMemory: Int) throws {
        let fixture = try Fixture(size: 40_000)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let store = try fixture.store(earlyPieceMemory: earlyPieceMemory)
        _ = try store.begin(fixture.manifest)
        for index in [9, 3, 0, 3, 1, 8, 2, 4, 7, 6, 5, 9] { try store.store(fixture.manifest.digest, index: index, bytes: fixture.piece(index)) }
        try store.commit(fixture.manifest.digest)
        #expect(try fixture.exported(from: store) == fixture.bytes)
    }

    @Test("a piece that cannot be written is refused with the cause, leaves nothing behind, and is taken once the store can write again")
    func pieceWriteFailure() throws {
        let fixture = try Fixture(size: 12_000)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let store = try fixture.store()
        _ = try store.begin(fixture.manifest)
        let temporaries = fixture.folder.appendingPathComponent("store/tmp")
        try FileManager.default.removeItem(at: temporaries)
        let error = #expect(throws: ArtifactError.self) { try store.store(fixture.manifest.digest, index: 1, bytes: fixture.piece(1)) }
        #expect(error?.code == .io)
        #expect(error?.detail.contains("tmp folder") == true)
        #expect(error?.detail.contains("errno \(ENOENT)") == true)
        #expect(!store.receivedPieces(fixture.manifest.digest).contains(1))

        try FileManager.default.createDirectory(at: temporaries, withIntermediateDirectories: true)
        for index in 0..<3 { try store.store(fixture.manifest.digest, index: index, bytes: fixture.piece(index)) }
        try store.commit(fixture.manifest.digest)
        #expect(try fixture.exported(from: store) == fixture.bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporaries.path).isEmpty)
    }

    @Test("commitIfVerified never waits: incomplete throws, then it commits once the queue has checked the artifact")
    func commitWithoutWaiting() async throws {
        let fixture = try Fixture(size: 1 << 20, pieceSize: 16_384)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let digest = fixture.manifest.digest
        let store = try fixture.store()
        _ = try store.begin(fixture.manifest)
        try store.store(digest, index: 63, bytes: fixture.piece(63))
        #expect((#expect(throws: ArtifactError.self) { try store.commitIfVerified(digest) })?.code == .incomplete)
        for index in (0..<63).reversed() { try store.store(digest, index: index, bytes: fixture.piece(index)) }
        var polls = 0
        while try !store.commitIfVerified(digest) {
            polls += 1
            #expect(!store.has(digest))
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(store.has(digest) && polls < 2_000)
        #expect(try store.commitIfVerified(digest), "committed stays committed")
    }

    @Test("a piece damaged on disk before its turn fails the whole-artifact check; nothing becomes visible and a retry starts clean")
    func damagedBeforeHashing() throws {
        let fixture = try Fixture(size: 16_384)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let digest = fixture.manifest.digest
        // No early piece is kept in memory: 3 arrives before 2 and is read back when its turn comes.
        let store = try fixture.store(earlyPieceMemory: 0)
        _ = try store.begin(fixture.manifest)
        for index in [0, 1, 3] { try store.store(digest, index: index, bytes: fixture.piece(index)) }
        try Data(repeating: 0, count: 4_096).write(to: fixture.folder.appendingPathComponent("store/incoming/\(digest)/pieces/3"))
        try store.store(digest, index: 2, bytes: fixture.piece(2))
        #expect((#expect(throws: ArtifactError.self) { try store.commit(digest) })?.code == .digestMismatch)
        #expect(!store.has(digest) && store.incomingDigests().isEmpty)
        #expect(try store.begin(fixture.manifest) == 0)
        for index in 0..<4 { try store.store(digest, index: index, bytes: fixture.piece(index)) }
        try store.commit(digest)
        #expect(store.has(digest))
    }

    @Test("a transfer taken up by a new process checks the pieces on disk again and drops a damaged one")
    func resumeChecksPieces() throws {
        let fixture = try Fixture(size: 16_384)
        defer { try? FileManager.default.removeItem(at: fixture.folder) }
        let digest = fixture.manifest.digest
        let store = try fixture.store()
        _ = try store.begin(fixture.manifest)
        for index in [0, 1, 2] { try store.store(digest, index: index, bytes: fixture.piece(index)) }
        // Pieces are synced only at commit: after a power loss one may be torn.
        try Data(repeating: 0, count: 100).write(to: fixture.folder.appendingPathComponent("store/incoming/\(digest)/pieces/1"))

        let reopened = try fixture.store()
        #expect(try reopened.begin(fixture.manifest) == 1)
        #expect(reopened.receivedPieces(digest) == [0, 2])
        for index in [3, 1] { try reopened.store(digest, index: index, bytes: fixture.piece(index)) }
        try reopened.commit(digest)
        #expect(try fixture.exported(from: reopened) == fixture.bytes)
    }

    @Test("remove makes an artifact vanish, committed or incoming, and a new transfer starts clean")
    func remove() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 8_192)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        try store.store(manifest.digest, index: 0, bytes: Array(bytes[0..<4_096]))
        #expect(store.incomingDigests() == [manifest.digest])
        try store.remove(manifest.digest)
        #expect(store.incomingDigests().isEmpty)
        #expect(try store.begin(manifest) == 0, "nothing survives a removal")
        for index in 0..<2 { try store.store(manifest.digest, index: index, bytes: Array(bytes[(index * 4_096)..<((index + 1) * 4_096)])) }
        try store.commit(manifest.digest)
        try store.remove(manifest.digest)
        #expect(!store.has(manifest.digest))
        #expect(try store.committedDigests().isEmpty)
        #expect(throws: ArtifactError.self) { try store.remove("not-a-digest") }
    }
}
