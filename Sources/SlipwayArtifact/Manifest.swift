import Crypto
import SlipwayCore
public import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import SlipwayProto

/// Builds and checks artifact manifests: size, SHA-256 of the whole, how the
/// artifact is cut into pieces and the SHA-256 of every piece.
public enum Manifest {
    /// 4 MiB: big enough that per-piece overhead is small, small enough that a
    /// piece fits comfortably in one ZeroMQ frame and in memory.
    public static let defaultPieceSize: UInt32 = 4 << 20
    /// The largest piece a manifest may have: one piece travels as one frame,
    /// and the wire codec takes payload frames up to 16 MiB.
    public static let maxPieceSize: UInt32 = 16 << 20
    /// The blocks pieces travel in, each checked on arrival against its piece's root
    /// (``pieceRoot(of:blockSize:)``): 64 KiB, so a piece of 1 MiB has 16, and its
    /// list of block digests (sent with its first block) stays within 2 KiB for the longest pieces.
    public static let defaultBlockSize: UInt32 = 64 << 10
    /// Block sizes a manifest may name: powers of two from 16 KiB to 1 MiB.
    public static let blockSizes: ClosedRange<UInt32> = (16 << 10)...(1 << 20)

    /// How a manifest cuts an artifact into pieces.
    public enum Cutting: Sendable, Equatable {
        /// Every piece but the last this long.
        case fixed(UInt32)
        /// Where the content says (``ContentChunker``): what builds share, they ship once.
        case byContent(ContentChunker)

        /// Pieces cut by content, averaging 1 MiB (256 KiB…4 MiB): what workers publish.
        public static let standard = Cutting.byContent(ContentChunker())
    }

    /// Reads `path` once, a few pieces at a time (bounded memory for any size),
    /// in fixed pieces of `pieceSize`.
    public static func build(fileAt path: String, name: String, pieceSize: UInt32,
                             blockSize: UInt32 = defaultBlockSize) throws -> Slipway_V1_ArtifactManifest {
        try build(fileAt: path, name: name, cutting: .fixed(pieceSize), blockSize: blockSize)
    }

    /// Reads `path` once, a few pieces at a time (bounded memory for any size).
    /// - Parameter blockSize: the blocks every piece's root covers (one of ``blockSizes``),
    ///   or 0 for a manifest without roots, as workers older than blocks made.
    public static func build(fileAt path: String, name: String, cutting: Cutting = .standard,
                             blockSize: UInt32 = defaultBlockSize) throws -> Slipway_V1_ArtifactManifest {
        guard blockSize == 0 || isBlockSize(blockSize) else {
            throw ArtifactError(.invalidManifest, "block size \(blockSize) is not a power of two from 16 KiB to 1 MiB")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ArtifactError(.io, "cannot open \(path): errno \(errno)") }
        defer { close(descriptor) }
        let longest: Int
        switch cutting {
        case .fixed(let size): longest = Int(size)
        case .byContent(let chunker): longest = chunker.maximum
        }
        var whole = SHA256()
        var pieces: [Data] = []
        var roots: [Data] = []
        var lengths: [UInt32] = []
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 2 * longest)
        var start = 0, end = 0, atEnd = false
        while true {
            if !atEnd, end - start < longest {
                (start, end, atEnd) = try buffer.withUnsafeMutableBytes { bytes in
                    try refill(bytes, start: start, end: end, from: descriptor, path: path)
                }
            }
            if start == end { break }
            let length = buffer.withUnsafeBytes { bytes -> Int in
                let rest = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                switch cutting {
                case .fixed: return min(longest, rest.count)
                case .byContent(let chunker): return chunker.cut(rest, atEnd: atEnd) ?? rest.count
                }
            }
            buffer.withUnsafeBytes { bytes in
                let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<start + length])
                whole.update(bufferPointer: piece)
                pieces.append(Data(SHA256.hash(data: piece)))
                if blockSize > 0 { roots.append(pieceRoot(of: piece, blockSize: Int(blockSize))) }
            }
            lengths.append(UInt32(length))
            size += UInt64(length)
            start += length
        }
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = hex(whole.finalize())
        manifest.size = size
        manifest.pieceSha256 = pieces
        manifest.blockSize = blockSize
        manifest.pieceRoot = roots
        manifest.name = name
        switch cutting {
        case .fixed(let pieceSize):
            manifest.pieceSize = pieceSize
        case .byContent:
            manifest.pieceSize = lengths.max() ?? 1
            manifest.pieceLength = lengths
        }
        return manifest
    }

    /// Moves what is left of `bytes[start..<end]` to the front and reads until the
    /// buffer is full or the file ends.
    private static func refill(_ bytes: UnsafeMutableRawBufferPointer, start: Int, end: Int, from descriptor: Int32,
                               path: String) throws -> (Int, Int, Bool) {
        let kept = end - start
        if start > 0, kept > 0 { memmove(bytes.baseAddress!, bytes.baseAddress! + start, kept) }
        var filled = kept
        while filled < bytes.count {
            let got = read(descriptor, bytes.baseAddress! + filled, bytes.count - filled)
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw ArtifactError(.io, "cannot read \(path): errno \(errno)") }
            if got == 0 { return (0, filled, true) }
            filled += got
        }
        return (0, filled, false)
    }

    /// Number of pieces an artifact of `size` bytes has.
    public static func pieceCount(size: UInt64, pieceSize: UInt32) -> Int {
        Int((size + UInt64(pieceSize) - 1) / UInt64(pieceSize))
    }

    /// Length of piece `index`.
    public static func pieceLength(_ manifest: Slipway_V1_ArtifactManifest, index: Int) -> Int {
        if !manifest.pieceLength.isEmpty { return Int(manifest.pieceLength[index]) }
        let start = UInt64(index) * UInt64(manifest.pieceSize)
        return Int(min(UInt64(manifest.pieceSize), manifest.size - start))
    }

    /// Where piece `index` starts in the artifact.
    public static func pieceOffset(_ manifest: Slipway_V1_ArtifactManifest, index: Int) -> UInt64 {
        guard !manifest.pieceLength.isEmpty else { return UInt64(index) * UInt64(manifest.pieceSize) }
        return manifest.pieceLength[..<index].reduce(0) { $0 + UInt64($1) }
    }

    /// Where every piece starts, in order (one pass, for callers that walk them all).
    public static func pieceOffsets(_ manifest: Slipway_V1_ArtifactManifest) -> [UInt64] {
        var offset: UInt64 = 0
        return (0..<manifest.pieceSha256.count).map { index in
            defer { offset += UInt64(pieceLength(manifest, index: index)) }
            return offset
        }
    }

    /// The header a piece travels under when served: where it sits in the
    /// artifact and the SHA-256 the receiver checks it against.
    public static func pieceHeader(_ manifest: Slipway_V1_ArtifactManifest, index: Int, length: Int) -> Slipway_V1_PieceData {
        var header = Slipway_V1_PieceData()
        header.digest = manifest.digest
        header.index = UInt32(index)
        header.offset = pieceOffset(manifest, index: index)
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
        if manifest.pieceLength.isEmpty {
            let expected = pieceCount(size: manifest.size, pieceSize: manifest.pieceSize)
            guard manifest.pieceSha256.count == expected else {
                throw ArtifactError(.invalidManifest, "\(manifest.pieceSha256.count) piece digests for \(expected) pieces")
            }
        } else {
            guard manifest.pieceLength.count == manifest.pieceSha256.count else {
                throw ArtifactError(.invalidManifest, "\(manifest.pieceSha256.count) piece digests for \(manifest.pieceLength.count) piece lengths")
            }
            guard manifest.pieceLength.allSatisfy({ $0 > 0 && $0 <= manifest.pieceSize }) else {
                throw ArtifactError(.invalidManifest, "a piece length is 0 or longer than the piece size \(manifest.pieceSize)")
            }
            let total = manifest.pieceLength.reduce(UInt64(0)) { $0 + UInt64($1) }
            guard total == manifest.size else {
                throw ArtifactError(.invalidManifest, "piece lengths add up to \(total) bytes, not the size \(manifest.size)")
            }
        }
        guard manifest.pieceSha256.allSatisfy({ $0.count == 32 }) else {
            throw ArtifactError(.invalidManifest, "a piece digest is not 32 bytes")
        }
        if manifest.blockSize == 0 {
            guard manifest.pieceRoot.isEmpty else { throw ArtifactError(.invalidManifest, "piece roots without a block size") }
        } else {
            guard isBlockSize(manifest.blockSize) else {
                throw ArtifactError(.invalidManifest, "block size \(manifest.blockSize) is not a power of two from 16 KiB to 1 MiB")
            }
            guard manifest.pieceRoot.count == manifest.pieceSha256.count else {
                throw ArtifactError(.invalidManifest, "\(manifest.pieceRoot.count) piece roots for \(manifest.pieceSha256.count) pieces")
            }
            guard manifest.pieceRoot.allSatisfy({ $0.count == 32 }) else {
                throw ArtifactError(.invalidManifest, "a piece root is not 32 bytes")
            }
        }
    }

    /// Whether `size` is one of ``blockSizes`` and a power of two.
    static func isBlockSize(_ size: UInt32) -> Bool {
        blockSizes.contains(size) && size & (size - 1) == 0
    }

    /// A piece's root: the SHA-256 of the SHA-256s of its `blockSize` blocks (the
    /// last one shorter), concatenated.
    public static func pieceRoot(of piece: UnsafeRawBufferPointer, blockSize: Int) -> Data {
        precondition(blockSize > 0, "a block has at least one byte")
        var list = SHA256()
        var start = 0
        repeat {
            let end = min(piece.count, start + blockSize)
            SHA256.hash(data: UnsafeRawBufferPointer(rebasing: piece[start..<end])).withUnsafeBytes { list.update(bufferPointer: $0) }
            start = end
        } while start < piece.count
        return Data(list.finalize())
    }

    /// Whether `bytes` are piece `index` of `manifest`: its SHA-256 and, when the
    /// manifest has them, its root (so a manifest whose roots do not match its pieces
    /// is refused by the first store or agent it reaches, before anyone checks a block against them).
    public static func verify(piece bytes: some DataProtocol, index: Int, of manifest: Slipway_V1_ArtifactManifest) -> Bool {
        guard index >= 0, index < manifest.pieceSha256.count, bytes.count == pieceLength(manifest, index: index),
              Data(SHA256.hash(data: bytes)) == manifest.pieceSha256[index] else { return false }
        guard manifest.blockSize > 0 else { return true }
        guard index < manifest.pieceRoot.count, isBlockSize(manifest.blockSize) else { return false }
        let blockSize = Int(manifest.blockSize)
        let root = bytes.withContiguousStorageIfAvailable { pieceRoot(of: UnsafeRawBufferPointer($0), blockSize: blockSize) }
            ?? Array(bytes).withUnsafeBytes { pieceRoot(of: $0, blockSize: blockSize) }
        return root == manifest.pieceRoot[index]
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
