import Crypto
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The whole-file SHA-256 of an artifact being received, built on a queue of its
/// own while its pieces land, so that neither a piece's arrival nor the commit
/// stalls the store's owner: an agent keeps serving its peers, a region store
/// its agents.
///
/// Pieces are hashed in order. One that lands ahead of the next in line is kept
/// in memory while the kept bytes stay under ``memoryLimit``, else read back from
/// the store's folder (most often from the page cache) when its turn comes.
/// Each piece is made durable (`fsync`) on the queue as it lands, whatever its
/// turn to be hashed, while later pieces still travel; once the last one lands the
/// queue is left the hashing of pieces that waited behind a hole and the digest
/// comparison, so the owner's commit is left only the renames. (One `syncfs` at
/// the end was tried: it also writes whatever every other process left dirty on
/// the file system, and made commits slow and unpredictable on a shared disk.)
final class IncomingDigest: Sendable {
    /// Where the hashing stands.
    enum State: Sendable, Equatable {
        case hashing
        /// Every piece hashed to the artifact's digest and is on stable storage.
        case verified
        case failed(ArtifactError)
    }

    private struct Landed {
        /// Pieces landed and synced, not hashed yet; nil bytes mean "read it back".
        var waiting: [Int: [UInt8]?] = [:]
        var seen: Set<Int> = []
        /// Every piece below this has landed.
        var contiguous = 0
        var keptBytes = 0
        var state = State.hashing
    }

    /// Bytes of early pieces kept in memory at most.
    let memoryLimit: Int
    private let digest: String
    private let pieceCount: Int
    private let pieces: URL
    private let landed = Mutex(Landed())
    /// Touched only on `queue`; the lock makes that provable to the compiler.
    private let running = Mutex((hash: SHA256(), next: 0))
    private let queue: DispatchQueue

    /// Starts hashing artifact `digest` of `pieceCount` pieces stored under `pieces` (one file per index).
    init(digest: String, pieceCount: Int, pieces: URL, memoryLimit: Int = 64 << 20) {
        self.digest = digest
        self.pieceCount = pieceCount
        self.pieces = pieces
        self.memoryLimit = memoryLimit
        queue = DispatchQueue(label: "slipway.digest.\(digest.prefix(12))")
        if pieceCount == 0 { queue.async { self.advance() } }
    }

    /// Where the hashing stands now.
    var state: State { landed.withLock { $0.state } }

    /// Every piece has landed (hashed or waiting its turn).
    var hasEveryPiece: Bool { landed.withLock { $0.seen.count == pieceCount } }

    /// The first piece that has not landed (the piece count when all have).
    var firstMissing: Int { landed.withLock { $0.contiguous } }

    /// Whether piece `index` has landed.
    func has(_ index: Int) -> Bool { landed.withLock { $0.seen.contains(index) } }

    /// Takes in piece `index`, verified and written: hashed now if it is next, else
    /// when its turn comes. Without `bytes` it is read back from its file then.
    func landed(_ index: Int, bytes: [UInt8]?) {
        // Whether to keep its bytes is decided now, so the bound holds while syncs queue up.
        let (fresh, kept) = landed.withLock { shared -> (Bool, [UInt8]?) in
            guard shared.seen.insert(index).inserted else { return (false, nil) }
            while shared.seen.contains(shared.contiguous) { shared.contiguous += 1 }
            // After a failure nothing is hashed any more: keep no bytes for it.
            guard case .hashing = shared.state else { return (false, nil) }
            guard let bytes, shared.keptBytes + bytes.count <= memoryLimit else { return (true, nil) }
            shared.keptBytes += bytes.count
            return (true, bytes)
        }
        guard fresh else { return }
        queue.async {
            // Made durable as it lands, not when its turn to be hashed comes: pieces land
            // out of order, and syncing them in order left every piece past the last hole
            // to be synced after the last one landed. A piece waits to be hashed only once
            // it is synced, so `.verified` still means every piece is on stable storage.
            if case .hashing = self.state, let error = self.sync(index) { return self.fail(error) }
            self.landed.withLock { shared in
                guard case .hashing = shared.state else { return }
                shared.waiting[index] = .some(kept)
            }
            self.advance()
        }
    }

    /// Blocks until every piece landed so far is hashed, then tells where it stands.
    func settled() -> State {
        queue.sync {}
        return state
    }

    private func advance() {
        running.withLock { running in
            while running.next < pieceCount, case .hashing = state {
                let index = running.next
                guard let kept = landed.withLock({ shared -> [UInt8]?? in
                    guard let bytes = shared.waiting.removeValue(forKey: index) else { return nil }
                    shared.keptBytes -= bytes?.count ?? 0
                    return .some(bytes)
                }) else { return }
                guard let bytes = kept ?? BlobStore.read(pieces.appendingPathComponent("\(index)")) else {
                    return fail(ArtifactError(.io, "piece \(index) of \(digest) vanished before it was hashed"))
                }
                running.hash.update(data: bytes)
                running.next += 1
            }
            guard running.next == pieceCount, case .hashing = state else { return }
            guard Manifest.hex(running.hash.finalize()) == digest else {
                return fail(ArtifactError(.digestMismatch, "pieces of \(digest) hash to a different artifact"))
            }
            landed.withLock { $0.state = .verified }
        }
    }

    private func fail(_ error: ArtifactError) {
        landed.withLock { shared in
            shared.state = .failed(error)
            shared.waiting = [:]
            shared.keptBytes = 0
        }
    }

    private func sync(_ index: Int) -> ArtifactError? {
        let path = pieces.appendingPathComponent("\(index)").path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return ArtifactError(.io, "cannot open piece \(index) of \(digest) to sync it: errno \(errno)") }
        defer { close(descriptor) }
        guard fsync(descriptor) != 0 else { return nil }
        let code = errno
        // Linux marks pages whose write-back failed clean, so a later fsync of this file
        // would succeed with the data never on disk: the file goes, and a transfer taken
        // up again fetches the piece afresh instead of trusting the page cache's copy.
        unlink(path)
        return ArtifactError(.io, "fsync of piece \(index) of \(digest) failed: errno \(code)")
    }
}
