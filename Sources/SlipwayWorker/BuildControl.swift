import Synchronization

/// Lets the worker loop stop a running build from another thread.
final class BuildControl: Sendable {
    enum Reason: UInt8 {
        /// The user cancelled the job.
        case cancelled = 1
        /// The worker is shutting down; the job should run again elsewhere.
        case shutdown = 2
        /// The coordinator says this attempt is no longer current.
        case superseded = 3
    }

    private let reason = Atomic<UInt8>(0)

    /// Requests a stop; the first reason wins.
    func abort(_ why: Reason) {
        _ = reason.compareExchange(expected: 0, desired: why.rawValue, ordering: .acquiringAndReleasing)
    }

    /// Why the build was asked to stop, if it was.
    var aborted: Reason? { Reason(rawValue: reason.load(ordering: .acquiring)) }
}
