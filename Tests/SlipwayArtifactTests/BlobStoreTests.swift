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

    @Test("hostile manifests are refused before anything is written", arguments: [
        "digest", "pieces", "pieceSize", "hashLength",
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
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 40_000)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let piece = { (index: Int) in Array(bytes[(index * 4_096)..<min(bytes.count, (index + 1) * 4_096)]) }
        let store = try BlobStore(root: folder.appendingPathComponent("store"), earlyPieceMemory: earlyPieceMemory)
        _ = try store.begin(manifest)
        for index in [9, 3, 0, 3, 1, 8, 2, 4, 7, 6, 5, 9] { try store.store(manifest.digest, index: index, bytes: piece(index)) }
        try store.commit(manifest.digest)
        let exported = folder.appendingPathComponent("out.bin")
        try store.export(manifest.digest, to: exported)
        #expect([UInt8](try Data(contentsOf: exported)) == bytes)
    }

    @Test("commitIfVerified never waits: incomplete throws, then it commits once the queue has checked the artifact")
    func commitWithoutWaiting() async throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 1 << 20)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 16_384)
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in (0..<64).reversed() { try store.store(manifest.digest, index: index, bytes: Array(bytes[(index * 16_384)..<((index + 1) * 16_384)])) }
        var polls = 0
        while try !store.commitIfVerified(manifest.digest) {
            polls += 1
            #expect(!store.has(manifest.digest))
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(store.has(manifest.digest) && polls < 2_000)
        #expect(try store.commitIfVerified(manifest.digest), "committed stays committed")
    }

    @Test("a piece damaged on disk before its turn fails the whole-artifact check; nothing becomes visible and a retry starts clean")
    func damagedBeforeHashing() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 16_384)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let piece = { (index: Int) in Array(bytes[(index * 4_096)..<((index + 1) * 4_096)]) }
        // No early piece is kept in memory: 3 arrives before 2 and is read back when its turn comes.
        let store = try BlobStore(root: folder.appendingPathComponent("store"), earlyPieceMemory: 0)
        _ = try store.begin(manifest)
        for index in [0, 1, 3] { try store.store(manifest.digest, index: index, bytes: piece(index)) }
        let onDisk = folder.appendingPathComponent("store/incoming/\(manifest.digest)/pieces/3")
        try Data(repeating: 0, count: 4_096).write(to: onDisk)
        try store.store(manifest.digest, index: 2, bytes: piece(2))
        #expect((#expect(throws: ArtifactError.self) { try store.commit(manifest.digest) })?.code == .digestMismatch)
        #expect(!store.has(manifest.digest) && store.incomingDigests().isEmpty)
        #expect(try store.begin(manifest) == 0)
        for index in 0..<4 { try store.store(manifest.digest, index: index, bytes: piece(index)) }
        try store.commit(manifest.digest)
        #expect(store.has(manifest.digest))
    }

    @Test("a transfer taken up by a new process checks the pieces on disk again and drops a damaged one")
    func resumeChecksPieces() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 16_384)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let piece = { (index: Int) in Array(bytes[(index * 4_096)..<((index + 1) * 4_096)]) }
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        for index in [0, 1, 2] { try store.store(manifest.digest, index: index, bytes: piece(index)) }
        // Pieces are synced only at commit: after a power loss one may be torn.
        try Data(repeating: 0, count: 100).write(to: folder.appendingPathComponent("store/incoming/\(manifest.digest)/pieces/1"))

        let reopened = try BlobStore(root: folder.appendingPathComponent("store"))
        #expect(try reopened.begin(manifest) == 1)
        #expect(reopened.receivedPieces(manifest.digest) == [0, 2])
        for index in [3, 1] { try reopened.store(manifest.digest, index: index, bytes: piece(index)) }
        try reopened.commit(manifest.digest)
        let exported = folder.appendingPathComponent("out.bin")
        try reopened.export(manifest.digest, to: exported)
        #expect([UInt8](try Data(contentsOf: exported)) == bytes)
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
