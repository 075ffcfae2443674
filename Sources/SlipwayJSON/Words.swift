import SlipwayCore
public import SlipwayProto
import SlipwayWire

// The one spelling of each protocol enum in output: lowercase words with
// underscores, the same in text and JSON, never the proto enum name.

extension Slipway_V1_JobStatus {
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` (`unknown` for a value this build does not know).
    public var word: String { JobStatus(self)?.rawValue ?? "unknown" }
}

extension Slipway_V1_RolloutState {
    /// `progressing`, `paused`, `halted`, `rolled_back`, `succeeded`, `aborted`.
    public var word: String {
        switch self {
        case .progressing: "progressing"
        case .paused: "paused"
        case .halted: "halted"
        case .rolledBack: "rolled_back"
        case .succeeded: "succeeded"
        case .aborted: "aborted"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }
}

extension Slipway_V1_AgentState {
    /// `idle`, `downloading`, `installed`, `running`, `failed`, `rolled_back`, `download_failed`.
    public var word: String {
        switch self {
        case .idle: "idle"
        case .downloading: "downloading"
        case .installed: "installed"
        case .running: "running"
        case .failed: "failed"
        case .rolledBack: "rolled_back"
        case .downloadFailed: "download_failed"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }
}

extension Slipway_V1_ReplicaState {
    /// `pending`, `copying`, `complete`, `failed`.
    public var word: String {
        switch self {
        case .copying: "copying"
        case .complete: "complete"
        case .failed: "failed"
        case .pending, .unspecified, .UNRECOGNIZED: "pending"
        }
    }
}
