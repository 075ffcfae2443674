import Crypto
public import Foundation
public import SlipwayProto
#if canImport(Glibc)
import Glibc
#endif

/// A content-addressed artifact store on local disk.
///
/// Layout under `root`:
/// ```
/// artifacts/<digest>/manifest        committed: visible to readers
/// artifacts/<digest>/pieces/<index>
/// incoming/<digest>/manifest         being uploaded or replicated
/// incoming/<digest>/pieces/<index>
/// ```
/// Every piece is verified against the manifest before it is written, and is
/// written to a temporary name, fsynced and renamed. Commit checks that every
/// piece is present, re-hashes the whole artifact, then renames the incoming
/// folder into `artifacts/`: a crash at any point leaves either nothing or a
/// complete artifact visible, and an interrupted upload resumes from the pieces
/// already verified. Memory use is one piece, whatever the artifact size.
///
/// Not thread-safe, and one instance per folder: it keeps transfer state in
/// memory. In a region controller its owner is the store server's thread and
/// every other thread goes through that thread (`BlobStoreMailbox`); an agent
/// has one loop thread.
public final class BlobStore {
    /// The folder the store lives in.
    public let root: URL
    private var incoming: [String: Slipway_V1_ArtifactManifest] = [:]
    /// The whole-artifact hash over the pieces stored in order so far, so commit
    /// need not read them back: pieces usually arrive in order.
    private var streamed: [String: (hash: SHA256, next: Int)] = [:]
    private let files = FileManager.default

    /// Opens (creating if needed) a store under `root`, deleting what a crashed
    /// process left half-written.
    public init(root: URL) throws {
        self.root = root
        for folder in ["artifacts", "incoming", "tmp"] {
            try files.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        // Temporary files are only ever half-written pieces or deletions of a crashed process.
        for leftover in (try? files.contentsOfDirectory(atPath: root.appendingPathComponent("tmp").path)) ?? [] {
            try? files.removeItem(at: root.appendingPathComponent("tmp/\(leftover)"))
        }
    }

    /// Digests of artifacts whose transfer has begun but not committed (to resume after a restart).
    public func incomingDigests() -> [String] {
        ((try? files.contentsOfDirectory(atPath: root.appendingPathComponent("incoming").path)) ?? []).filter(Manifest.isDigest).sorted()
    }

    /// The manifest given to ``begin(_:)`` for a transfer in progress, or nil.
    public func incomingManifestIfAny(_ digest: String) -> Slipway_V1_ArtifactManifest? {
        try? incomingManifest(digest)
    }

    /// Indices of the verified pieces a transfer in progress already holds.
    public func receivedPieces(_ digest: String) -> Set<Int> {
        let names = (try? files.contentsOfDirectory(atPath: staging(digest).appendingPathComponent("pieces").path)) ?? []
        return Set(names.compactMap { Int($0) })
    }

    /// Deletes an artifact, committed or in progress. Readers see it vanish at once:
    /// the folder is renamed into `tmp/` before its files are removed.
    public func remove(_ digest: String) throws {
        guard Manifest.isDigest(digest) else { throw ArtifactError(.notFound, "not a digest") }
        incoming[digest] = nil
        streamed[digest] = nil
        for folder in [committed(digest), staging(digest)] where files.fileExists(atPath: folder.path) {
            let doomed = root.appendingPathComponent("tmp/deleted-\(UUID().uuidString)")
            if rename(folder.path, doomed.path) != 0 {
                throw ArtifactError(.io, "cannot move \(digest) aside for deletion: errno \(errno)")
            }
            try files.removeItem(at: doomed)
        }
    }

    /// Whether the artifact is committed here.
    public func has(_ digest: String) -> Bool {
        Manifest.isDigest(digest) && files.fileExists(atPath: committed(digest).appendingPathComponent("manifest").path)
    }

    /// The committed manifest, or nil if the artifact is not here.
    public func manifest(_ digest: String) throws -> Slipway_V1_ArtifactManifest? {
        guard has(digest) else { return nil }
        let data = try Data(contentsOf: committed(digest).appendingPathComponent("manifest"))
        return try Slipway_V1_ArtifactManifest(serializedBytes: data)
    }

    /// Digests of every committed artifact.
    public func committedDigests() throws -> [String] {
        try files.contentsOfDirectory(atPath: root.appendingPathComponent("artifacts").path).filter(Manifest.isDigest).sorted()
    }

    /// Starts (or resumes) receiving an artifact.
    /// - Returns: the index of the first piece still needed (piece count when all are here).
    public func begin(_ manifest: Slipway_V1_ArtifactManifest) throws -> Int {
        try Manifest.validate(manifest)
        let count = manifest.pieceSha256.count
        if has(manifest.digest) { return count }
        let folder = staging(manifest.digest)
        let manifestFile = folder.appendingPathComponent("manifest")
        let encoded = try manifest.serializedData()
        if let existing = try? Data(contentsOf: manifestFile), existing != encoded {
            // Same digest, different piecing: what was received cannot be reused.
            try files.removeItem(at: folder)
            streamed[manifest.digest] = nil
        }
        try files.createDirectory(at: folder.appendingPathComponent("pieces"), withIntermediateDirectories: true)
        if !files.fileExists(atPath: manifestFile.path) {
            try writeAtomically(encoded, to: manifestFile)
        }
        incoming[manifest.digest] = manifest
        return nextMissing(manifest.digest, from: 0, count: count)
    }

    /// Stores one piece after checking it against the manifest given to ``begin(_:)``.
    /// - Returns: the index of the first piece still needed.
    public func put(_ digest: String, index: Int, bytes: [UInt8]) throws -> Int {
        try store(digest, index: index, bytes: bytes)
        return nextMissing(digest, from: 0, count: try incomingManifest(digest).pieceSha256.count)
    }

    /// Stores one piece after checking it against the manifest given to ``begin(_:)``,
    /// for callers that track which pieces they still need themselves.
    public func store(_ digest: String, index: Int, bytes: [UInt8]) throws {
        let manifest = try incomingManifest(digest)
        guard Manifest.verify(piece: bytes, index: index, of: manifest) else {
            throw ArtifactError(.pieceMismatch, "piece \(index) of \(digest) does not match its manifest digest")
        }
        try writeAtomically(Data(bytes), to: staging(digest).appendingPathComponent("pieces/\(index)"))
        var stream = streamed[digest] ?? (SHA256(), 0)
        if stream.next == index {
            stream.hash.update(data: bytes)
            stream.next += 1
            streamed[digest] = stream
        }
    }

    /// Verifies the whole artifact and makes it visible.
    public func commit(_ digest: String) throws {
        if has(digest) { return }
        let manifest = try incomingManifest(digest)
        let count = manifest.pieceSha256.count
        let missing = nextMissing(digest, from: 0, count: count)
        guard missing == count else { throw ArtifactError(.incomplete, "piece \(missing) of \(digest) has not arrived") }
        // Pieces hashed as they arrived were verified in memory before they were
        // written; only the rest are read back and checked.
        var (whole, first) = streamed.removeValue(forKey: digest) ?? (SHA256(), 0)
        for index in first..<count {
            let piece = try Data(contentsOf: staging(digest).appendingPathComponent("pieces/\(index)"))
            guard Manifest.verify(piece: piece, index: index, of: manifest) else {
                throw ArtifactError(.pieceMismatch, "stored piece \(index) of \(digest) is corrupt")
            }
            whole.update(data: piece)
        }
        guard Manifest.hex(whole.finalize()) == digest else {
            try files.removeItem(at: staging(digest))
            incoming[digest] = nil
            throw ArtifactError(.digestMismatch, "pieces of \(digest) hash to a different artifact")
        }
        try syncDirectory(staging(digest).appendingPathComponent("pieces"))
        try syncDirectory(staging(digest))
        try files.moveItem(at: staging(digest), to: committed(digest))
        try syncDirectory(root.appendingPathComponent("artifacts"))
        try syncDirectory(root.appendingPathComponent("incoming"))
        incoming[digest] = nil
    }

    /// One piece of a committed artifact.
    public func piece(_ digest: String, index: Int) throws -> [UInt8] {
        guard has(digest) else { throw ArtifactError(.notFound, "artifact \(digest) is not in this store") }
        let file = committed(digest).appendingPathComponent("pieces/\(index)")
        guard let data = try? Data(contentsOf: file) else {
            throw ArtifactError(.notFound, "piece \(index) of \(digest) is not in this store")
        }
        return [UInt8](data)
    }

    /// One verified piece, of a committed artifact or of one still arriving (pieces
    /// are verified before they are written), or nil if it is not here. Agents
    /// serve these to their peers while they download.
    public func heldPiece(_ digest: String, index: Int) -> [UInt8]? {
        guard Manifest.isDigest(digest), index >= 0 else { return nil }
        for folder in [committed(digest), staging(digest)] {
            if let data = try? Data(contentsOf: folder.appendingPathComponent("pieces/\(index)")) { return [UInt8](data) }
        }
        return nil
    }

    /// Writes a committed artifact out as one file (for agents and tests).
    public func export(_ digest: String, to destination: URL) throws {
        guard let manifest = try manifest(digest) else { throw ArtifactError(.notFound, "artifact \(digest) is not in this store") }
        _ = files.createFile(atPath: destination.path, contents: nil)
        let handle = try FileHandle(forWritingTo: destination)
        defer { try? handle.close() }
        for index in 0..<manifest.pieceSha256.count {
            try handle.write(contentsOf: try piece(digest, index: index))
        }
        try handle.synchronize()
    }

    private func incomingManifest(_ digest: String) throws -> Slipway_V1_ArtifactManifest {
        if let manifest = incoming[digest] { return manifest }
        guard Manifest.isDigest(digest),
              let data = try? Data(contentsOf: staging(digest).appendingPathComponent("manifest")) else {
            throw ArtifactError(.notFound, "no upload of \(digest) has begun")
        }
        let manifest = try Slipway_V1_ArtifactManifest(serializedBytes: data)
        incoming[digest] = manifest
        return manifest
    }

    private func nextMissing(_ digest: String, from start: Int, count: Int) -> Int {
        let folder = staging(digest).appendingPathComponent("pieces")
        var index = start
        while index < count, files.fileExists(atPath: folder.appendingPathComponent("\(index)").path) { index += 1 }
        return index
    }

    private func committed(_ digest: String) -> URL { root.appendingPathComponent("artifacts/\(digest)") }
    private func staging(_ digest: String) -> URL { root.appendingPathComponent("incoming/\(digest)") }

    private func writeAtomically(_ data: Data, to destination: URL) throws {
        let temporary = root.appendingPathComponent("tmp/\(UUID().uuidString)")
        guard files.createFile(atPath: temporary.path, contents: nil) else {
            throw ArtifactError(.io, "cannot create \(temporary.lastPathComponent) in the store's tmp folder")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            try? files.removeItem(at: temporary)
            throw error
        }
        if rename(temporary.path, destination.path) != 0 {
            let code = errno
            try? files.removeItem(at: temporary)
            throw ArtifactError(.io, "rename into \(destination.lastPathComponent) failed: errno \(code)")
        }
    }

    private func syncDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw ArtifactError(.io, "cannot open folder \(url.lastPathComponent): errno \(errno)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw ArtifactError(.io, "fsync of folder \(url.lastPathComponent) failed: errno \(errno)") }
    }
}
