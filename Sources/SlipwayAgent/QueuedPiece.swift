import Foundation
import SlipwayArtifact
import SlipwayProto
import SlipwayWire

/// A piece a peer asked for, waiting in its queue at ``PieceServer`` or being sent
/// to it, whole or in runs of blocks (`PieceRequest.blocks`).
struct QueuedPiece {
    /// Bytes per run of blocks: a few blocks per message, so a piece of 1 MiB is four
    /// messages, not sixteen (an agent's work is mostly per message), while each
    /// peer's pipe still holds a quarter of it rather than all of it.
    static let runBytes = 256 << 10

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

    /// Some of it went out: the rest follows before anything else is sent to its peer.
    var isStarted: Bool { nextBlock > 0 }

    /// The next message for the peer, and the block after it (nil: the piece is done once it is sent).
    mutating func nextMessage(_ manifest: Slipway_V1_ArtifactManifest, bytes: [UInt8], sender: String) -> (WireMessage, next: Int?) {
        self.bytes = bytes
        guard inBlocks, !bytes.isEmpty else {
            let header = Manifest.pieceHeader(manifest, index: index, length: bytes.count)
            return (WireMessage(header, sender: sender, inReplyTo: request.envelope.messageID, payload: bytes), nil)
        }
        let blockSize = Int(manifest.blockSize)
        if blockDigests.isEmpty { blockDigests = Manifest.blockDigests(of: bytes, blockSize: blockSize) }
        let start = nextBlock * blockSize
        let end = min(bytes.count, start + max(1, Self.runBytes / blockSize) * blockSize)
        let header = Manifest.blockRunHeader(manifest, index: index, length: bytes.count, firstBlock: nextBlock, blockDigests: blockDigests)
        let message = WireMessage(header, sender: sender, inReplyTo: request.envelope.messageID, payload: Array(bytes[start..<end]))
        return (message, end < bytes.count ? end / blockSize : nil)
    }
}
