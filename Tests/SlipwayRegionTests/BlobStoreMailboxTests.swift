import Foundation
import Glibc
import SlipwayArtifact
import SlipwayRegionStore
import SlipwayThreads
import Synchronization
import Testing

@Suite("Blob store mailbox: one owner, other threads through it")
struct BlobStoreMailboxTests {
    /// The owner's loop as the store server runs it: wait on the wake descriptor, run what is waiting.
    static func ownerLoop(_ mailbox: BlobStoreMailbox, folder: URL, owner: OwnedThread, stop: StopSignal) -> Task<Void, any Error> {
        Task {
            try await owner.run {
                // Closed whatever happens, so a failing test fails instead of leaving callers waiting.
                defer { mailbox.close() }
                let store = try BlobStore(root: folder)
                while !stop.isStopped {
                    var wake = pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
                    _ = Glibc.poll(&wake, 1, 200)
                    mailbox.runWaiting(on: store)
                }
            }
        }
    }

    @Test("work runs on the owner's thread, in order; a copy goes through it; after close every call fails")
    func ownerRunsEverything() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mailbox-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let file = folder.appendingPathComponent("artifact")
        try Data(bytes).write(to: file)
        let manifest = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)
        try Data(bytes.reversed()).write(to: file)
        let other = try Manifest.build(fileAt: file.path, name: "svc", pieceSize: 4_096)

        let mailbox = try BlobStoreMailbox()
        let owner = OwnedThread(name: "store-owner"), caller = OwnedThread(name: "caller")
        defer {
            owner.shutdown()
            caller.shutdown()
        }
        let stop = StopSignal()
        defer { stop.stop() }
        let loop = Self.ownerLoop(mailbox, folder: folder.appendingPathComponent("store"), owner: owner, stop: stop)

        let (onOwner, heldBefore, committed, committedAgain, held) = try await caller.run {
            let onOwner = try mailbox.perform { _ in owner.isCurrent && !caller.isCurrent }
            let sink: any PieceSink = mailbox
            _ = try mailbox.perform { try $0.begin(manifest) }
            try sink.store(manifest.digest, index: 2, bytes: Array(bytes[8_192...]))
            let heldBefore = try sink.receivedPieces(manifest.digest)
            for index in 0..<2 { try sink.store(manifest.digest, index: index, bytes: Array(bytes[(index * 4_096)..<((index + 1) * 4_096)])) }
            let committed = try sink.commitIfNeeded(manifest.digest)
            let committedAgain = try sink.commitIfNeeded(manifest.digest)
            let held = try mailbox.perform { $0.has(manifest.digest) }
            return (onOwner, heldBefore, committed, committedAgain, held)
        }
        #expect(onOwner, "the work ran on the owner's thread")
        #expect(heldBefore == [2], "calls are run in the order they were made")
        #expect(committed && !committedAgain && held, "committed once; a second commit of the same bytes is not an error")

        // A bad piece is the store's error, passed back to the caller.
        let refused = try await caller.run {
            _ = try mailbox.perform { try $0.begin(other) }
            do {
                try mailbox.store(other.digest, index: 0, bytes: [UInt8](repeating: 0, count: 4_096))
                return false
            } catch {
                return (error as? ArtifactError)?.code == .pieceMismatch
            }
        }
        #expect(refused)

        stop.stop()
        try await loop.value
        let closed = try await caller.run {
            do {
                _ = try mailbox.perform { $0.has(manifest.digest) }
                return false
            } catch {
                return error is BlobStoreMailbox.Closed
            }
        }
        #expect(closed, "after the owner stopped, a call fails at once instead of waiting forever")
    }

    @Test("a call makes the wake descriptor readable at once; running what waits clears it")
    func callWakesTheOwner() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mailbox-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let mailbox = try BlobStoreMailbox()
        let owner = OwnedThread(name: "store-owner"), caller = OwnedThread(name: "caller")
        defer {
            owner.shutdown()
            caller.shutdown()
        }
        let descriptor = mailbox.wakeDescriptor
        let readable: @Sendable (Int32) -> Bool = { wait in
            var wake = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return Glibc.poll(&wake, 1, wait) == 1
        }
        #expect(!readable(0), "nothing posted, nothing to wake for")
        // Queued straight onto the caller's thread: no task of the shared pool (starved for seconds
        // on a loaded CI machine, once) stands between the call and the wake.
        let answer = Mutex<Result<Bool, any Error>?>(nil)
        caller.execute { answer.withLock { $0 = Result { try mailbox.perform { $0.has(String(repeating: "a", count: 64)) } } } }
        // Waits for the call on the owner's thread, as the store server's poll does; 10 s only on a stalled machine.
        let woken = try await owner.run { readable(10_000) }
        #expect(woken, "the call did not wake the owner")
        #expect(try await owner.run { mailbox.runWaiting(on: try BlobStore(root: folder)) } == 1)
        mailbox.close()  // a call that was not run fails now instead of waiting forever
        try await caller.run {}  // the call above has returned
        #expect(try answer.withLock { try $0?.get() } == false)
        #expect(!readable(0), "running what waited cleared the wake")
    }
}
