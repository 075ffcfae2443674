public import ServiceLifecycle
import Synchronization

/// A daemon's I/O loop: built on its own thread by a ``LoopService`` (opening
/// its sockets and files there, so it owns them) and run on that same thread.
public protocol ServingLoop: AnyObject {
    /// What the loop opened, for the daemon's one "serving" line: `["store": "tcp://…"]`.
    var opened: [String: String] { get }
    /// Serves until the ``StopSignal`` it was given is set, then returns.
    /// Throwing ends the daemon with that error.
    func serve() throws
}

/// One part of a daemon as ``DaemonRunner`` runs it: opened first (everything
/// bound and checked, or a reason naming the setting), then run until graceful
/// shutdown or cancellation; discarded if another part could not open.
public protocol DaemonService: Service {
    /// The name in logs and in the one failure line.
    var name: String { get }
    /// Binds and checks what the service needs; what it opened, for the "serving" line.
    @discardableResult
    func open() async throws -> [String: String]
    /// Releases what ``open()`` took, for a service that will not run.
    func discard() async
}

/// A daemon's I/O loop on a thread of its own, as a `Service`, in two phases:
///
/// 1. ``open()`` builds the loop on the service's thread: it binds every
///    socket and opens every file, and throws a reason naming the setting
///    when it cannot. A daemon opens all its services before it says it serves.
/// 2. ``run()`` serves until graceful shutdown (SIGTERM, SIGINT through a
///    `ServiceGroup`) **or task cancellation** (another service of the group
///    failed) sets the loop's ``StopSignal``; loops check it at least every
///    few hundred milliseconds.
///
/// Blocking libzmq and libpq calls are safe on the service's thread; it is
/// never one of Swift's cooperative threads.
public final class LoopService: DaemonService, Sendable {
    /// The service's name in logs and thread names.
    public let name: String
    private let make: @Sendable (StopSignal) throws -> any ServingLoop
    private let thread: OwnedThread
    private let stop = StopSignal()
    private let slot = LoopSlot()

    /// A service whose loop `make` builds, on the service's thread, from the stop signal it must watch.
    public init(name: String, make: @escaping @Sendable (StopSignal) throws -> any ServingLoop) {
        self.name = name
        self.make = make
        self.thread = OwnedThread(name: name)
    }

    deinit { thread.shutdown() }

    /// Builds the loop (sockets bound, files open) without serving yet.
    /// - Returns: what it opened, for the daemon's "serving" line.
    /// - Throws: why the loop cannot serve; `CancellationError` if cancelled first.
    @discardableResult
    public func open() async throws -> [String: String] {
        let make = self.make, stop = self.stop, slot = self.slot
        return try await withTaskCancellationHandler {
            try await thread.run {
                if let loop = slot.loop { return loop.opened }
                let loop = try make(stop)
                slot.loop = loop
                return loop.opened
            }
        } onCancel: {
            stop.stop()
        }
    }

    /// Serves until graceful shutdown, cancellation, or the loop's own end;
    /// opens the loop first if ``open()`` was not called.
    public func run() async throws {
        try await open()
        let stop = self.stop, slot = self.slot
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await thread.run {
                    // Released here, on its own thread, whether it returned or threw.
                    defer { slot.loop = nil }
                    try slot.loop?.serve()
                }
            } onGracefulShutdown: {
                stop.stop()
            }
        } onCancel: {
            stop.stop()
        }
    }

    /// Closes an opened loop that will not run (another service failed to open).
    public func discard() async {
        stop.stop()
        let slot = self.slot
        _ = try? await thread.run { slot.loop = nil }
    }
}

/// Holds the loop between ``LoopService/open()`` and ``LoopService/run()``.
private final class LoopSlot: @unchecked Sendable {
    // @unchecked: `loop` is only read and written by closures running on the
    // service's OwnedThread, one at a time, so it never crosses threads.
    var loop: (any ServingLoop)?
}
