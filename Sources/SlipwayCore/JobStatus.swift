/// Lifecycle of a build job, spelled once: these names are the values of the
/// `job_status` enum in PostgreSQL (a test compares the two), what the CLI
/// prints and accepts, and map one to one onto the wire's `JobStatus`.
public enum JobStatus: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case queued, running, succeeded, failed, cancelled

    /// True for succeeded, failed and cancelled: the job will never change again.
    public var isTerminal: Bool { self != .queued && self != .running }

    /// The name as stored and shown: `queued`, `running`, ….
    public var description: String { rawValue }
}
