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
/// artifacts/<digest>/name            its name (which builds may share pieces)
/// artifacts/<digest>/pieces/<index>
/// incoming/<digest>/manifest         being uploaded or replicated
/// incoming/<digest>/pieces/<index>
/// ```
/// Every piece is verified against the manifest before it is written, and is
/// written to a temporary name and renamed. The whole-artifact digest is built
/// on a queue of its own as pieces land (``IncomingDigest``), which also makes
/// each piece durable as it lands, before hashing it; commit then renames the
/// incoming folder into `artifacts/`. A crash at any point leaves either nothing
/// or a complete artifact visible, and an interrupted transfer resumes from the
/// pieces already on disk, each checked again when the transfer is taken up by
/// a new process (a piece not yet synced may not have survived a power loss).
/// Memory use is one piece plus up to 64 MiB of early pieces per transfer,
/// whatever the artifact size. Pieces a new artifact shares with earlier builds
/// held here are hard links to theirs (``PieceReuse``), received once.
///
/// Not thread-safe, and one instance per folder: it keeps transfer state in
/// memory. In a region controller its owner is the store server's thread and
/// every other thread goes through that thread (`BlobStoreMailbox`); an agent
/// has one loop thread.
public final class BlobStore {
    /// The folder the store lives in.
    public let root: URL
    private var incoming: [String: Slipway_V1_ArtifactManifest] = [:]
    /// Per transfer taken up by this process, its whole-artifact digest in the making.
    private var digests: [String: IncomingDigest] = [:]
    private let files = FileManager.default
    private let earlyPieceMemory: Int
    private var reuse = PieceReuse()
    private var reusedPieces: [String: ReusedPieces] = [:]
    /// `root`'s path: the per-piece calls build their paths as strings (measured: building
    /// them as `URL`s took 3 % of a downloading agent's loop thread at 256 KiB pieces).
    let rootPath: String
    /// Names this process's temporary files apart.
    var temporaries: UInt64 = 0

    /// Opens (creating if needed) a store under `root`, deleting what a crashed
    /// process left half-written. Each transfer keeps up to `earlyPieceMemory`
    /// bytes of pieces that arrived ahead of their turn to be hashed; the rest
    /// are read back from disk then.
    public init(root: URL, earlyPieceMemory: Int = 64 << 20) throws {
        self.root = root
        self.rootPath = root.path
        self.earlyPieceMemory = earlyPieceMemory
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
        digests[digest] = nil
        reusedPieces[digest] = nil
        reuse.removed(digest)
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
        Manifest.isDigest(digest) && access(rootPath + "/artifacts/" + digest + "/manifest", F_OK) == 0
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

    /// Starts (or resumes) receiving an artifact. Pieces that earlier builds of the
    /// same name hold here are linked in at once (``takeReused(_:)`` tells how many).
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
            incoming[manifest.digest] = nil
            digests[manifest.digest] = nil
        }
        try files.createDirectory(at: folder.appendingPathComponent("pieces"), withIntermediateDirectories: true)
        if !files.fileExists(atPath: manifestFile.path) {
            try writeAtomically([UInt8](encoded), to: manifestFile.path, sync: true)
        }
        incoming[manifest.digest] = manifest
        let transfer = try takeUp(manifest.digest)
        let taken = reuse.link(manifest, into: folder.appendingPathComponent("pieces"), store: self,
                               has: transfer.has, landed: { transfer.landed($0, bytes: nil) })
        if taken.pieces > 0 { reusedPieces[manifest.digest, default: ReusedPieces()].add(taken) }
        return transfer.firstMissing
    }

    /// What transfers of `digest` took from earlier builds held here since the
    /// last call (each ``begin(_:)`` may link more, as earlier builds commit).
    public func takeReused(_ digest: String) -> ReusedPieces {
        reusedPieces.removeValue(forKey: digest) ?? ReusedPieces()
    }

    /// Stores one piece after checking it against the manifest given to ``begin(_:)``.
    /// - Returns: the index of the first piece still needed.
    public func put(_ digest: String, index: Int, bytes: [UInt8]) throws -> Int {
        try store(digest, index: index, bytes: bytes)
        return try takeUp(digest).firstMissing
    }

    /// Stores one piece after checking it against the manifest given to ``begin(_:)``,
    /// for callers that track which pieces they still need themselves.
    public func store(_ digest: String, index: Int, bytes: [UInt8]) throws {
        let manifest = try incomingManifest(digest)
        guard Manifest.verify(piece: bytes, index: index, of: manifest) else {
            throw ArtifactError(.pieceMismatch, "piece \(index) of \(digest) does not match its manifest digest")
        }
        try write(digest, index: index, bytes: bytes)
    }

    /// Stores a piece whose blocks were checked as they arrived (``BlockAssembly``),
    /// without hashing it whole again.
    public func store(_ piece: VerifiedPiece) throws {
        _ = try incomingManifest(piece.digest)
        try write(piece.digest, index: piece.index, bytes: piece.bytes)
    }

    private func write(_ digest: String, index: Int, bytes: [UInt8]) throws {
        let transfer = try takeUp(digest)
        // A piece sent twice (a retried upload, two peers) is written and hashed once.
        guard !transfer.has(index) else { return }
        // Not synced here: the digest's queue syncs each piece as it lands, off this thread.
        try writeAtomically(bytes, to: piecePath(stagingPath(digest), index), sync: false)
        transfer.landed(index, bytes: bytes)
    }

    /// Waits for the whole-artifact check, then makes the artifact visible.
    public func commit(_ digest: String) throws {
        if has(digest) { return }
        try checkComplete(digest)
        try finish(digest, try takeUp(digest).settled())
    }

    /// Makes the artifact visible if its whole-artifact check is done, without
    /// waiting for it: for an owner that must keep serving meanwhile.
    /// - Returns: true once committed, false while the check is still running.
    public func commitIfVerified(_ digest: String) throws -> Bool {
        if has(digest) { return true }
        let transfer = try takeUp(digest)
        // Polled every turn while the queue works: the piece files are looked at
        // only once it is done, or when a piece has not landed (to name it).
        if transfer.state == .hashing, transfer.hasEveryPiece { return false }
        try checkComplete(digest)
        let state = transfer.state
        if state == .hashing { return false }
        try finish(digest, state)
        return true
    }

    private func checkComplete(_ digest: String) throws {
        let count = try incomingManifest(digest).pieceSha256.count
        let missing = try takeUp(digest).firstMissing
        guard missing == count else { throw ArtifactError(.incomplete, "piece \(missing) of \(digest) has not arrived") }
    }

    /// Renames a verified transfer into `artifacts/`, or drops one whose pieces make another artifact.
    private func finish(_ digest: String, _ state: IncomingDigest.State) throws {
        switch state {
        case .hashing:
            throw ArtifactError(.incomplete, "\(digest) is still being hashed")
        case .failed(let error):
            digests[digest] = nil
            if error.code == .digestMismatch {
                try files.removeItem(at: staging(digest))
                incoming[digest] = nil
                reuse.failed(digest)
            }
            throw error
        case .verified:
            break
        }
        // The name alone, so a later process finds earlier builds without parsing every manifest.
        let name = incoming[digest]?.name ?? ""
        try writeAtomically(Array(name.utf8), to: stagingPath(digest) + "/" + PieceReuse.nameFile, sync: true)
        try syncDirectory(staging(digest).appendingPathComponent("pieces"))
        try syncDirectory(staging(digest))
        try files.moveItem(at: staging(digest), to: committed(digest))
        try syncDirectory(root.appendingPathComponent("artifacts"))
        try syncDirectory(root.appendingPathComponent("incoming"))
        reuse.committed(digest, name: name)
        incoming[digest] = nil
        digests[digest] = nil
    }

    /// One piece of a committed artifact.
    public func piece(_ digest: String, index: Int) throws -> [UInt8] {
        guard has(digest) else { throw ArtifactError(.notFound, "artifact \(digest) is not in this store") }
        guard let bytes = Self.read(path: piecePath(committedPath(digest), index)) else {
            throw ArtifactError(.notFound, "piece \(index) of \(digest) is not in this store")
        }
        return bytes
    }

    /// One verified piece, of a committed artifact or of one still arriving (pieces
    /// are verified before they are written), or nil if it is not here. Agents
    /// serve these to their peers while they download.
    public func heldPiece(_ digest: String, index: Int) -> [UInt8]? {
        guard Manifest.isDigest(digest), index >= 0 else { return nil }
        for folder in [committedPath(digest), stagingPath(digest)] {
            if let bytes = Self.read(path: piecePath(folder, index)) { return bytes }
        }
        return nil
    }

    /// Writes a committed artifact out as one file (for agents and tests).
    public func export(_ digest: String, to destination: URL) throws {
        guard let manifest = try manifest(digest) else { throw ArtifactError(.notFound, "artifact \(digest) is not in this store") }
        let output = open(destination.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw ArtifactError(.io, "cannot create \(destination.lastPathComponent): errno \(errno)") }
        defer { close(output) }
        for index in 0..<manifest.pieceSha256.count {
            try copy(piece: committed(digest).appendingPathComponent("pieces/\(index)"), length: Manifest.pieceLength(manifest, index: index), to: output)
        }
        guard fsync(output) == 0 else { throw ArtifactError(.io, "fsync of \(destination.lastPathComponent) failed: errno \(errno)") }
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

    /// The transfer's digest in the making; the first time this process touches a
    /// transfer, the pieces already on disk are checked again (dropping any that
    /// do not match) and handed to it.
    private func takeUp(_ digest: String) throws -> IncomingDigest {
        if let transfer = digests[digest] { return transfer }
        let manifest = try incomingManifest(digest)
        let folder = staging(digest).appendingPathComponent("pieces")
        let transfer = IncomingDigest(digest: digest, pieceCount: manifest.pieceSha256.count, pieces: folder,
                                      memoryLimit: earlyPieceMemory)
        for name in (try? files.contentsOfDirectory(atPath: folder.path)) ?? [] {
            guard let index = Int(name), String(index) == name else { continue }
            let file = folder.appendingPathComponent(name)
            if let bytes = Self.read(file), Manifest.verify(piece: bytes, index: index, of: manifest) {
                transfer.landed(index, bytes: bytes)
            } else {
                try? files.removeItem(at: file)
            }
        }
        digests[digest] = transfer
        return transfer
    }

    /// Where a committed artifact's manifest and pieces live.
    func committed(_ digest: String) -> URL { URL(fileURLWithPath: committedPath(digest), isDirectory: true) }
    private func staging(_ digest: String) -> URL { URL(fileURLWithPath: stagingPath(digest), isDirectory: true) }
    private func committedPath(_ digest: String) -> String { rootPath + "/artifacts/" + digest }
    private func stagingPath(_ digest: String) -> String { rootPath + "/incoming/" + digest }
    private func piecePath(_ folder: String, _ index: Int) -> String { folder + "/pieces/" + String(index) }
}
