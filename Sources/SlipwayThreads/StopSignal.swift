import Synchronization

/// A flag a daemon's I/O loop checks between polls; set from a graceful-shutdown handler.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    /// A signal that is not yet set.
    public init() {}

    /// Asks the loop to stop after the message it is handling.
    public func stop() { flag.store(true, ordering: .releasing) }

    /// Whether stop was asked for.
    public var isStopped: Bool { flag.load(ordering: .acquiring) }
}
