#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

/// A dedicated OS thread that runs submitted work one item at a time, in order.
///
/// Blocking libzmq and libpq calls must never run on Swift's cooperative thread
/// pool: a blocked pool thread starves every task in the process. Each socket and
/// each database connection is instead owned by one `OwnedThread`, either through
/// ``run(_:)`` or by pinning an actor to it (the thread is a `SerialExecutor`):
///
/// ```swift
/// actor Intake {
///     nonisolated let thread = OwnedThread(name: "intake")
///     nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
/// }
/// ```
///
/// Work runs in submission order. Call ``shutdown()`` to stop the thread after the
/// queued work; it must not be called from the thread itself.
public final class OwnedThread: @unchecked Sendable {
    // @unchecked: the mutable queue lives in a `Mutex`; `threadID` is written once
    // by the new thread before `started` is signalled and only read after that.
    private enum Item {
        case closure(@Sendable () -> Void)
        case job(UnownedJob)
        case stop
    }

    /// The name given at creation, used in diagnostics.
    public let name: String
    private let queue = Mutex<(items: [Item], stopped: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var threadID = pthread_t()

    /// Starts the thread. It idles until work is submitted.
    public init(name: String) {
        self.name = name
        let started = DispatchSemaphore(value: 0)
        let context = ThreadStart(owner: self, started: started)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            start.owner.main(started: start.started)
            return nil
        }, Unmanaged.passRetained(context).toOpaque())
        precondition(rc == 0, "pthread_create failed for OwnedThread \(name): \(rc)")
        pthread_detach(tid)
        started.wait()
    }

    /// True when the calling code runs on any `OwnedThread`.
    public static var isOnOwnedThread: Bool {
        pthread_getspecific(ownedThreadKey) != nil
    }

    /// True when the calling code runs on this thread.
    public var isCurrent: Bool {
        pthread_equal(threadID, pthread_self()) != 0
    }

    /// Runs `body` on this thread and returns its result to the awaiting task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = submit(.closure({ continuation.resume(with: Result { try body() }) }))
            if !accepted {
                continuation.resume(throwing: OwnedThreadStopped(name: name))
            }
        }
    }

    /// Queues `body` without waiting for it. Returns false if the thread was shut down.
    @discardableResult
    public func execute(_ body: @escaping @Sendable () -> Void) -> Bool {
        submit(.closure(body))
    }

    /// Stops the thread after the work already queued, and waits for it to exit.
    public func shutdown() {
        precondition(!isCurrent, "OwnedThread \(name) cannot shut itself down")
        let first = queue.withLock { state in
            if state.stopped { return false }
            state.stopped = true
            state.items.append(.stop)
            return true
        }
        guard first else { return }
        available.signal()
        finished.wait()
    }

    private func submit(_ item: Item) -> Bool {
        // Checked and appended under one lock, so nothing lands behind `.stop`.
        let accepted = queue.withLock { state in
            if state.stopped { return false }
            state.items.append(item)
            return true
        }
        if accepted { available.signal() }
        return accepted
    }

    private func main(started: DispatchSemaphore) {
        threadID = pthread_self()
        pthread_setspecific(ownedThreadKey, UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()))
        started.signal()
        while true {
            available.wait()
            let item = queue.withLock { $0.items.isEmpty ? nil : $0.items.removeFirst() }
            switch item {
            case .closure(let body): body()
            case .job(let job): job.runSynchronously(on: asUnownedSerialExecutor())
            case .stop:
                pthread_setspecific(ownedThreadKey, nil)
                finished.signal()
                return
            case nil: continue
            }
        }
    }
}

extension OwnedThread: SerialExecutor {
    /// Runs actor jobs on this thread; used by actors that pin themselves to it.
    public func enqueue(_ job: consuming ExecutorJob) {
        // An actor pinned to a thread that was shut down has nowhere to run; running
        // the job elsewhere would break the one-owner rule, so this is a bug to fix.
        guard submit(.job(UnownedJob(job))) else {
            preconditionFailure("actor used after its OwnedThread \(name) was shut down")
        }
    }

    /// The executor reference actors return from `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets `assumeIsolated` and runtime checks see this thread as the actor's executor.
    public func checkIsolated() {
        precondition(isCurrent, "expected to run on OwnedThread \(name)")
    }
}

/// Thrown by ``OwnedThread/run(_:)`` after the thread was shut down.
public struct OwnedThreadStopped: Error, CustomStringConvertible, Sendable {
    /// The thread's name.
    public let name: String
    /// A one-line explanation.
    public var description: String { "thread \(name) has been shut down" }
}

private final class ThreadStart {
    let owner: OwnedThread
    let started: DispatchSemaphore
    init(owner: OwnedThread, started: DispatchSemaphore) {
        self.owner = owner
        self.started = started
    }
}

private let ownedThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key, nil)
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()
