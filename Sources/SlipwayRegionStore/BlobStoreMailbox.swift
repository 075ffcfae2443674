public import SlipwayArtifact
public import SlipwayCore
import CSystemShims
import Dispatch
import Glibc
import Synchronization

/// How other threads of a region controller use its blob store: they post
/// work here and the store's one owner, the ``StoreServer`` thread, runs it
/// between requests. `BlobStore` has one owner; this is the only way in.
///
/// ``perform(_:)`` blocks its caller until the owner has run the work (a piece
/// write and its fsync, say), so a caller sees its own effects in order, and a
/// check followed by a change inside one work item cannot race an upload.
public final class BlobStoreMailbox: Sendable {
    /// The owner has stopped: nothing posted is run any more.
    public struct Closed: Error, CustomStringConvertible {
        public var description: String { "the region's store thread has stopped" }
    }

    private struct Work: Sendable {
        let run: @Sendable (BlobStore) -> Void
        let abandon: @Sendable () -> Void
    }

    private let state = Mutex<(waiting: [Work], closed: Bool)>(([], false))
    /// Readable while work is waiting: the owner polls it with its sockets.
    public let wakeDescriptor: Int32

    /// A mailbox with no owner yet.
    public init() throws(StartupError) {
        wakeDescriptor = slipway_wake_open()
        guard wakeDescriptor >= 0 else {
            throw StartupError(setting: "the region store's mailbox", reason: "eventfd failed: \(String(cString: strerror(errno)))")
        }
    }

    deinit { _ = Glibc.close(wakeDescriptor) }

    /// Runs `work` on the owner's thread and returns what it returned. Never
    /// call it from the owner's thread (it would wait for itself).
    /// - Throws: what `work` threw, or ``Closed`` if the owner stopped first.
    public func perform<Value: Sendable>(_ work: @escaping @Sendable (BlobStore) throws -> Value) throws -> Value {
        let reply = Reply<Value>()
        let posted = state.withLock { state in
            guard !state.closed else { return false }
            state.waiting.append(Work(run: { store in reply.finish(Result { try work(store) }) },
                                      abandon: { reply.finish(.failure(Closed())) }))
            return true
        }
        guard posted else { throw Closed() }
        slipway_wake_signal(wakeDescriptor)
        return try reply.wait()
    }

    /// Runs everything posted so far, in order. Only the owner calls it, with its store.
    /// - Returns: how many work items ran.
    @discardableResult
    public func runWaiting(on store: BlobStore) -> Int {
        slipway_wake_clear(wakeDescriptor)
        let batch = state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for work in batch { work.run(store) }
        return batch.count
    }

    /// The owner is stopping: work still waiting, and any posted later, fails with ``Closed``.
    public func close() {
        let abandoned = state.withLock { state in
            state.closed = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for work in abandoned { work.abandon() }
    }
}

/// One caller's answer, handed from the owner's thread to the caller's.
private final class Reply<Value: Sendable>: Sendable {
    private let result = Mutex<Result<Value, any Error>?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func finish(_ outcome: Result<Value, any Error>) {
        result.withLock { $0 = outcome }
        ready.signal()
    }

    func wait() throws -> Value {
        ready.wait()
        return try result.withLock { $0! }.get()
    }
}

/// Where ``PieceFetcher``-style copies put what they receive: a `BlobStore`
/// directly (tools, benchmarks, a single-threaded owner) or a region's
/// ``BlobStoreMailbox`` (the replication thread, through the store's owner).
public protocol PieceSink {
    /// Indices of the verified pieces an artifact in progress already holds.
    func receivedPieces(_ digest: String) throws -> Set<Int>
    /// Verifies one piece against the begun manifest and stores it.
    func store(_ digest: String, index: Int, bytes: [UInt8]) throws
    /// Verifies the whole artifact and makes it visible.
    /// - Returns: false if it was already committed (by an upload of the same bytes).
    func commitIfNeeded(_ digest: String) throws -> Bool
}

extension BlobStore: PieceSink {
    public func commitIfNeeded(_ digest: String) throws -> Bool {
        guard !has(digest) else { return false }
        try commit(digest)
        return true
    }
}

extension BlobStoreMailbox: PieceSink {
    public func receivedPieces(_ digest: String) throws -> Set<Int> {
        try perform { $0.receivedPieces(digest) }
    }

    public func store(_ digest: String, index: Int, bytes: [UInt8]) throws {
        try perform { try $0.store(digest, index: index, bytes: bytes) }
    }

    public func commitIfNeeded(_ digest: String) throws -> Bool {
        try perform { try $0.commitIfNeeded(digest) }
    }
}
