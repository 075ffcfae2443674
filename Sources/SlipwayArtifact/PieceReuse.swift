import Foundation
import SlipwayProto
#if canImport(Glibc)
import Glibc
#endif

/// Finds the pieces a new artifact shares with the builds a store already holds,
/// so that a build that differs a little from the one before ships little: the
/// store links those pieces into the transfer instead of receiving them.
///
/// Candidates are the newest committed artifacts of the same name (the earlier
/// builds of the same service), found by the small `name` file beside each
/// manifest; the candidates' manifests are read per transfer, so nothing grows
/// with the number of artifacts but a name per artifact.
/// A linked piece is not read here: the transfer's whole-artifact digest reads
/// and checks it with every other piece. If that check fails for a transfer that
/// linked pieces (a held piece rotted on disk), the transfer is received whole
/// from then on, so a bad piece is never linked twice.
///
/// Linking needs pieces to be immutable files, which they are: every piece is
/// written to a temporary name and renamed, never written in place.
struct PieceReuse {

    /// Earlier builds looked at per transfer, newest first.
    static let candidates = 4
    /// The file beside a committed artifact's manifest that holds its name.
    static let nameFile = "name"

    /// Name and manifest time of each committed artifact looked at so far.
    private var known: [String: (name: String, written: Date)] = [:]
    /// Transfers that linked pieces in this process.
    private var linkedInto: Set<String> = []
    /// Transfers whose linked pieces failed the whole-artifact check.
    private var receiveWhole: Set<String> = []

    /// Links into `folder` every piece of `manifest` that `has` says is missing
    /// and an earlier build holds, calling `landed` for each.
    mutating func link(_ manifest: Slipway_V1_ArtifactManifest, into folder: URL, store: BlobStore,
                       has: (Int) -> Bool, landed: (Int) -> Void) -> ReusedPieces {
        guard !receiveWhole.contains(manifest.digest) else { return ReusedPieces() }
        let missing = (0..<manifest.pieceSha256.count).filter { !has($0) }
        guard !missing.isEmpty else { return ReusedPieces() }
        var held: [Data: (file: URL, length: Int, blockSize: UInt32, root: Data?)] = [:]
        for digest in earlierBuilds(named: manifest.name, excluding: manifest.digest, in: store) {
            guard let earlier = try? store.manifest(digest) else { continue }
            let pieces = store.committed(digest).appendingPathComponent("pieces")
            let rooted = earlier.blockSize > 0 && earlier.pieceRoot.count == earlier.pieceSha256.count
            for (index, sha) in earlier.pieceSha256.enumerated() where held[sha] == nil || (held[sha]!.root == nil && rooted) {
                held[sha] = (pieces.appendingPathComponent("\(index)"), Manifest.pieceLength(earlier, index: index),
                             earlier.blockSize, rooted ? earlier.pieceRoot[index] : nil)
            }
        }
        var taken = ReusedPieces()
        for index in missing {
            // Same SHA-256 and the same length: a manifest that moved lengths between
            // pieces would otherwise commit with pieces no downloader could verify.
            guard let source = held[manifest.pieceSha256[index]], source.length == Manifest.pieceLength(manifest, index: index) else {
                continue
            }
            // Linked pieces are not checked again one by one, so a root must be one an earlier
            // build's piece was checked against: a manifest whose root lies for a shared piece
            // then has that piece received, and refused.
            if manifest.blockSize > 0, source.blockSize != manifest.blockSize || source.root != manifest.pieceRoot[index] { continue }
            // A failed link (the piece is gone, the file system cannot) only means receiving it.
            guard Glibc.link(source.file.path, folder.appendingPathComponent("\(index)").path) == 0 else { continue }
            landed(index)
            taken.pieces += 1
            taken.bytes += UInt64(Manifest.pieceLength(manifest, index: index))
        }
        if taken.pieces > 0 { linkedInto.insert(manifest.digest) }
        return taken
    }

    /// The transfer of `digest` failed its whole-artifact check.
    mutating func failed(_ digest: String) {
        if linkedInto.remove(digest) != nil { receiveWhole.insert(digest) }
    }

    /// `digest` was committed: it may serve later builds.
    mutating func committed(_ digest: String, name: String) {
        known[digest] = (name, .now)
        linkedInto.remove(digest)
        receiveWhole.remove(digest)
    }

    /// `digest` left the store.
    mutating func removed(_ digest: String) {
        known[digest] = nil
        linkedInto.remove(digest)
    }

    private mutating func earlierBuilds(named name: String, excluding digest: String, in store: BlobStore) -> [String] {
        guard !name.isEmpty else { return [] }
        for committed in (try? store.committedDigests()) ?? [] where known[committed] == nil {
            let folder = store.committed(committed)
            // Artifacts committed before the name file existed: their manifest says it.
            let file = folder.appendingPathComponent(Self.nameFile)
            let named = (try? Data(contentsOf: file)).map { String(decoding: $0, as: UTF8.self) }
            guard let name = named ?? (try? store.manifest(committed))?.name,
                  let written = try? FileManager.default.attributesOfItem(
                      atPath: named == nil ? folder.appendingPathComponent("manifest").path : file.path)[.modificationDate] as? Date
            else { continue }
            known[committed] = (name, written)
        }
        return known.filter { $0.key != digest && $0.value.name == name }
            .sorted { $0.value.written > $1.value.written }
            .prefix(Self.candidates).map(\.key)
    }
}

/// What a transfer took from the builds its store already held.
public struct ReusedPieces: Equatable, Sendable {
    /// Pieces linked in rather than received.
    public var pieces = 0
    /// Their bytes.
    public var bytes: UInt64 = 0

    /// Nothing reused.
    public init() {}
}

extension ReusedPieces {
    mutating func add(_ other: ReusedPieces) {
        pieces += other.pieces
        bytes += other.bytes
    }
}
