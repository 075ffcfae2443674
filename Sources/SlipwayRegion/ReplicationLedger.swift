import Foundation
import SlipwayArtifact
import SlipwayCore

/// What a region controller remembers about replication across restarts, next
/// to its store: the last coordinator event it applied, and which committed
/// artifacts the coordinator has acknowledged as replicated here.
///
/// Losing the sequence number only makes the controller replay events, which
/// is harmless: every event's effect is idempotent.
struct ReplicationLedger {
    private let folder: URL
    private let files = FileManager.default

    init(storeRoot: URL) throws {
        folder = storeRoot.appendingPathComponent("replication")
        try files.createDirectory(at: folder.appendingPathComponent("reported"), withIntermediateDirectories: true)
    }

    /// The newest event sequence number whose effect is durable here (0 when new).
    var lastSequence: UInt64 {
        guard let text = try? String(contentsOf: folder.appendingPathComponent("last-event-seq"), encoding: .utf8) else { return 0 }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    func save(lastSequence: UInt64) throws {
        try DurableFile.write(Data("\(lastSequence)\n".utf8), to: folder.appendingPathComponent("last-event-seq"))
    }

    func isReported(_ digest: String) -> Bool {
        Manifest.isDigest(digest) && files.fileExists(atPath: folder.appendingPathComponent("reported/\(digest)").path)
    }

    func markReported(_ digest: String) {
        guard Manifest.isDigest(digest) else { return }
        _ = files.createFile(atPath: folder.appendingPathComponent("reported/\(digest)").path, contents: nil)
    }

    func forget(_ digest: String) {
        guard Manifest.isDigest(digest) else { return }
        try? files.removeItem(at: folder.appendingPathComponent("reported/\(digest)"))
    }
}
