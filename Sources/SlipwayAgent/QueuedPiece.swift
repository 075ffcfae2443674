import Foundation
import SlipwayArtifact
import SlipwayProto
import SlipwayWire

/// A piece a peer asked for, waiting in its queue at ``PieceServer`` or being sent
/// to it, whole or in runs of blocks (`PieceRequest.blocks`).
struct QueuedPiece {
    let request: WireMessage
    let digest: String
    let index: Int
    /// Sent in runs of blocks: the downloader asked, and the manifest has roots.
    let inBlocks: Bool
    /// When it was asked for, or when its last run went out: one that waits
    /// ``PieceServer/queueTimeout`` past this is answered `busy` and dropped.
    var waitingSince: ContinuousClock.Instant
    /// Its bytes once read: kept while the peer's pipe is full, and between runs.
    var bytes: [UInt8]?
    /// For runs: every block's SHA-256 (computed when the first run is built) and the next block to send.
    var blockDigests: [Data] = []
    var nextBlock = 0
    /// The next message, encoded, while the peer's pipe is too full to take it,
    /// and the block after it. Kept, not built again every turn: measured, most
    /// runs were built several times over (their payload copied each time)
    /// before one went out.
    var encoded: (frames: [[UInt8]], next: Int?)?

    /// Some of it went out: the rest follows before anything else is sent to its peer.
    var isStarted: Bool { nextBlock > 0 }

    /// The next message for the peer, and the block after it (nil: the piece is done once
    /// it is sent); nil while the blocks it needs have not arrived here. A piece held here
    /// is kept between runs; one still arriving is not (its download appends to those bytes,
    /// and a second reference would make every append copy them).
    mutating func nextMessage(_ manifest: Slipway_V1_ArtifactManifest, from source: PieceBytes, sender: String) -> (WireMessage, next: Int?)? {
        var length = Manifest.pieceLength(manifest, index: index)
        let bytes: [UInt8]
        switch source {
        case .held(let whole):
            // As read: a piece damaged on disk fails its receiver's checks and bans this machine, as it should.
            (self.bytes, bytes, length) = (whole, whole, whole.count)
            guard inBlocks, !whole.isEmpty else {
                let header = Manifest.pieceHeader(manifest, index: index, length: whole.count)
                return (WireMessage(header, sender: sender, inReplyTo: request.envelope.messageID, payload: whole), nil)
            }
            if blockDigests.isEmpty { blockDigests = Manifest.blockDigests(of: whole, blockSize: Int(manifest.blockSize)) }
        case .arriving(let digests, let partial):
            guard inBlocks else { return nil }
            bytes = partial
            blockDigests = digests
        }
        guard let run = Manifest.blockRun(manifest, index: index, length: length, available: bytes, firstBlock: nextBlock,
                                          blockDigests: blockDigests) else { return nil }
        var payload = run.payload
        if case .arriving = source, payload.count == bytes.count {
            // A run of every block received so far shares the download's buffer, and the message
            // may wait for the pipe (``encoded``): its own copy keeps the download's appends in place.
            payload = payload.withUnsafeBufferPointer { Array($0) }
        }
        return (WireMessage(run.header, sender: sender, inReplyTo: request.envelope.messageID, payload: payload), run.next)
    }
}

/// Where ``PieceServer`` sends a piece from.
enum PieceBytes {
    /// Verified and stored here.
    case held([UInt8])
    /// Still arriving in blocks: its digests, and the blocks checked so far.
    case arriving(blockDigests: [Data], bytes: [UInt8])
}
