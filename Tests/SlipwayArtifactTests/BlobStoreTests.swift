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

    @Test("out-of-order pieces are read back and re-verified at commit; a piece damaged on disk stops the commit")
    func outOfOrderCommit() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (file, bytes) = try Self.artifact(in: folder, size: 16_384)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        let piece = { (index: Int) in Array(bytes[(index * 4_096)..<((index + 1) * 4_096)]) }
        let store = try BlobStore(root: folder.appendingPathComponent("store"))
        _ = try store.begin(manifest)
        // 0 and 1 arrive in order (hashed as they come); 3 before 2, so 2 and 3 are read back.
        for index in [0, 1, 3, 2] { try store.store(manifest.digest, index: index, bytes: piece(index)) }
        #expect(store.receivedPieces(manifest.digest) == [0, 1, 2, 3])
        let onDisk = folder.appendingPathComponent("store/incoming/\(manifest.digest)/pieces/3")
        try Data(repeating: 0, count: 4_096).write(to: onDisk)
        #expect((#expect(throws: ArtifactError.self) { try store.commit(manifest.digest) })?.code == .pieceMismatch)
        #expect(!store.has(manifest.digest))
        try store.store(manifest.digest, index: 3, bytes: piece(3))
        try store.commit(manifest.digest)
        let exported = folder.appendingPathComponent("out.bin")
        try store.export(manifest.digest, to: exported)
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
