import Crypto
import SlipwayCore
public import Foundation
public import SlipwayProto

/// Builds and checks artifact manifests: size, SHA-256 of the whole, piece
/// size and the SHA-256 of every piece.
public enum Manifest {
    /// 4 MiB: big enough that per-piece overhead is small, small enough that a
    /// piece fits comfortably in one ZeroMQ frame and in memory.
    public static let defaultPieceSize: UInt32 = 4 << 20
    /// The largest piece a manifest may have: one piece travels as one frame,
    /// and the wire codec takes payload frames up to 16 MiB.
    public static let maxPieceSize: UInt32 = 16 << 20

    /// Reads `path` once, in piece-sized blocks (bounded memory for any size).
    public static func build(fileAt path: String, name: String, pieceSize: UInt32 = defaultPieceSize) throws -> Slipway_V1_ArtifactManifest {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ArtifactError(.io, "cannot open \(path)")
        }
        defer { try? handle.close() }
        var whole = SHA256()
        var pieces: [Data] = []
        var size: UInt64 = 0
        while true {
            let block = try handle.read(upToCount: Int(pieceSize)) ?? Data()
            if block.isEmpty { break }
            whole.update(data: block)
            pieces.append(Data(SHA256.hash(data: block)))
            size += UInt64(block.count)
        }
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = hex(whole.finalize())
        manifest.size = size
        manifest.pieceSize = pieceSize
        manifest.pieceSha256 = pieces
        manifest.name = name
        return manifest
    }

    /// Number of pieces an artifact of `size` bytes has.
    public static func pieceCount(size: UInt64, pieceSize: UInt32) -> Int {
        Int((size + UInt64(pieceSize) - 1) / UInt64(pieceSize))
    }

    /// Length of piece `index`.
    public static func pieceLength(_ manifest: Slipway_V1_ArtifactManifest, index: Int) -> Int {
        let start = UInt64(index) * UInt64(manifest.pieceSize)
        return Int(min(UInt64(manifest.pieceSize), manifest.size - start))
    }

    /// The header a piece travels under when served: where it sits in the
    /// artifact and the SHA-256 the receiver checks it against.
    public static func pieceHeader(_ manifest: Slipway_V1_ArtifactManifest, index: Int, length: Int) -> Slipway_V1_PieceData {
        var header = Slipway_V1_PieceData()
        header.digest = manifest.digest
        header.index = UInt32(index)
        header.offset = UInt64(index) * UInt64(manifest.pieceSize)
        header.length = UInt32(length)
        header.sha256 = manifest.pieceSha256[index]
        return header
    }

    /// Checks a manifest received from outside before anything is written for it.
    public static func validate(_ manifest: Slipway_V1_ArtifactManifest) throws(ArtifactError) {
        guard isDigest(manifest.digest) else { throw ArtifactError(.invalidManifest, "digest is not 64 lowercase hex characters") }
        guard manifest.pieceSize > 0, manifest.pieceSize <= Manifest.maxPieceSize else {
            throw ArtifactError(.invalidManifest, "piece size \(manifest.pieceSize) outside 1 B…16 MiB")
        }
        guard manifest.size <= 1 << 44 else { throw ArtifactError(.invalidManifest, "size \(manifest.size) exceeds 16 TiB") }
        let expected = pieceCount(size: manifest.size, pieceSize: manifest.pieceSize)
        guard manifest.pieceSha256.count == expected else {
            throw ArtifactError(.invalidManifest, "\(manifest.pieceSha256.count) piece digests for \(expected) pieces")
        }
        guard manifest.pieceSha256.allSatisfy({ $0.count == 32 }) else {
            throw ArtifactError(.invalidManifest, "a piece digest is not 32 bytes")
        }
    }

    /// Whether `bytes` are piece `index` of `manifest`.
    public static func verify(piece bytes: some DataProtocol, index: Int, of manifest: Slipway_V1_ArtifactManifest) -> Bool {
        guard index >= 0, index < manifest.pieceSha256.count, bytes.count == pieceLength(manifest, index: index) else { return false }
        return Data(SHA256.hash(data: bytes)) == manifest.pieceSha256[index]
    }

    /// True for 64 lowercase hex characters: the only digest form Slipway accepts.
    public static func isDigest(_ text: String) -> Bool {
        Digest.isValid(text)
    }

    /// Lowercase hex of a digest.
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
