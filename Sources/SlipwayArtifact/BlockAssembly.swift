import Crypto
public import Foundation
public import SlipwayProto

/// A piece whose blocks all matched digests that match the manifest's root, so
/// it is the manifest's piece without hashing it whole again. Only
/// ``BlockAssembly`` makes one; ``BlobStore/store(_:)`` takes it as it is.
public struct VerifiedPiece: Sendable {
    /// The artifact it belongs to.
    public let digest: String
    public let index: Int
    public let bytes: [UInt8]
}

/// The receiving half of a piece sent in runs of blocks (`PieceData.blocks`): the
/// first run's block digests are checked against the manifest's root, then every
/// block against its digest as it lands, so a corrupt block is caught before the
/// rest of its piece arrives and is pinned on the one connection that sent it.
/// Pure: the download feeds it runs and acts on what it answers.
public struct BlockAssembly: Sendable {
    /// What one run did to the piece.
    public enum Outcome: Equatable, Sendable {
        /// Taken; more runs to come.
        case more
        /// The last run: the whole piece, verified.
        case complete(index: Int)
        /// The sender broke the piece or the protocol; nothing it sent of this piece is kept.
        case corrupt(String)
    }

    /// The artifact and piece being assembled.
    public let digest: String
    public let index: Int
    /// The piece's length and its manifest's block size.
    public let length: Int
    public let blockSize: Int
    /// Every block's SHA-256, checked against the piece's root.
    public let blockDigests: [Data]
    /// The blocks taken so far, in order.
    public private(set) var bytes: [UInt8] = []

    /// Starts a piece from its first run's header, checking the block digests it
    /// carries against `manifest`'s root for the piece. Throws when they do not
    /// match, or the header does not describe the manifest's piece.
    public init(header: Slipway_V1_PieceData, of manifest: Slipway_V1_ArtifactManifest) throws(ArtifactError) {
        let index = Int(header.index)
        guard header.digest == manifest.digest, header.blocks, header.firstBlock == 0 else {
            throw ArtifactError(.pieceMismatch, "a piece in blocks starts at block 0 of the artifact asked for")
        }
        guard manifest.blockSize > 0, Manifest.isBlockSize(manifest.blockSize), index < manifest.pieceRoot.count else {
            throw ArtifactError(.pieceMismatch, "the manifest has no block roots: pieces of \(manifest.digest) travel whole")
        }
        let length = Manifest.pieceLength(manifest, index: index)
        let blockSize = Int(manifest.blockSize)
        guard Int(header.length) == length, header.blockSha256.count == (length + blockSize - 1) / blockSize,
              header.blockSha256.allSatisfy({ $0.count == 32 }) else {
            throw ArtifactError(.pieceMismatch, "piece \(index) has \(header.blockSha256.count) block digests for \(length) bytes")
        }
        var list = SHA256()
        for block in header.blockSha256 { list.update(data: block) }
        guard Data(list.finalize()) == manifest.pieceRoot[index] else {
            throw ArtifactError(.pieceMismatch, "the block digests of piece \(index) do not match its root")
        }
        self.digest = manifest.digest
        self.index = index
        self.length = length
        self.blockSize = blockSize
        self.blockDigests = header.blockSha256
        bytes.reserveCapacity(length)
    }

    /// The block the next run must start at.
    public var nextBlock: Int { bytes.count / blockSize }

    /// Takes one run: it must start at ``nextBlock``, hold whole blocks (the
    /// piece's last may be shorter) and not run past the piece, and each block
    /// must match its digest.
    public mutating func take(firstBlock: Int, payload: [UInt8]) -> Outcome {
        guard firstBlock == nextBlock, !payload.isEmpty else {
            return .corrupt("run of piece \(index) starts at block \(firstBlock), not \(nextBlock)")
        }
        let end = bytes.count + payload.count
        guard end <= length, end == length || payload.count % blockSize == 0 else {
            return .corrupt("run of piece \(index) ends at byte \(end): not a block boundary of its \(length) bytes")
        }
        var start = 0
        var block = firstBlock
        while start < payload.count {
            let stop = min(payload.count, start + blockSize)
            let matches = payload.withUnsafeBytes { raw in
                Data(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: raw[start..<stop]))) == blockDigests[block]
            }
            guard matches else { return .corrupt("block \(block) of piece \(index) does not match its digest") }
            start = stop
            block += 1
        }
        bytes.append(contentsOf: payload)
        return end == length ? .complete(index: index) : .more
    }

    /// The whole piece, once ``take(firstBlock:payload:)`` answered `complete`.
    public func piece() -> VerifiedPiece? {
        bytes.count == length ? VerifiedPiece(digest: digest, index: index, bytes: bytes) : nil
    }
}

extension Manifest {
    /// The SHA-256 of each `blockSize` block of `piece` (the last one shorter):
    /// what the first run of a piece sent in blocks carries. None for an empty piece,
    /// which is only ever sent whole.
    public static func blockDigests(of piece: [UInt8], blockSize: Int) -> [Data] {
        precondition(blockSize > 0, "a block has at least one byte")
        return piece.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count, by: blockSize).map { start in
                Data(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: raw[start..<min(raw.count, start + blockSize)])))
            }
        }
    }

    /// Bytes per run of blocks senders use: a few blocks per message, so a piece of
    /// 1 MiB is four messages, not sixteen (a peer's work is mostly per message),
    /// while each peer's pipe holds a quarter of it rather than all of it.
    public static let runBytes = 256 << 10

    /// The next run of piece `index` (`length` bytes) from block `firstBlock`: at most
    /// ``runBytes`` (one block at least) of the whole blocks in `available`, or its end
    /// once `available` is the whole piece. Nil while no block past `firstBlock` is there.
    /// - Returns: the header, the payload, and the block after it (nil: the piece is done).
    public static func blockRun(_ manifest: Slipway_V1_ArtifactManifest, index: Int, length: Int, available: [UInt8], firstBlock: Int,
                                blockDigests: [Data]) -> (header: Slipway_V1_PieceData, payload: [UInt8], next: Int?)? {
        let blockSize = Int(manifest.blockSize)
        let start = firstBlock * blockSize
        let ready = available.count >= length ? length : available.count / blockSize * blockSize
        let end = min(ready, start + max(1, runBytes / blockSize) * blockSize)
        guard end > start else { return nil }
        let header = blockRunHeader(manifest, index: index, length: length, firstBlock: firstBlock, blockDigests: blockDigests)
        return (header, Array(available[start..<end]), end < length ? end / blockSize : nil)
    }

    /// The header of one run of a piece sent in blocks, from block `firstBlock`;
    /// the first run carries `blockDigests`.
    public static func blockRunHeader(_ manifest: Slipway_V1_ArtifactManifest, index: Int, length: Int, firstBlock: Int,
                                      blockDigests: [Data]) -> Slipway_V1_PieceData {
        var header = pieceHeader(manifest, index: index, length: length)
        header.blocks = true
        header.firstBlock = UInt32(firstBlock)
        if firstBlock == 0 { header.blockSha256 = blockDigests }
        return header
    }
}
