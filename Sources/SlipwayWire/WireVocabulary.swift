public import SlipwayCore
public import SlipwayProto

extension JobStatus {
    /// The status a wire `JobStatus` names; nil for unspecified or unknown values.
    public init?(_ wire: Slipway_V1_JobStatus) {
        switch wire {
        case .queued: self = .queued
        case .running: self = .running
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    /// The same status on the wire.
    public var wire: Slipway_V1_JobStatus {
        switch self {
        case .queued: .queued
        case .running: .running
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        }
    }
}

extension Slipway_V1_ErrorReply {
    /// A reply with `code` for programs and `message` for people.
    public init(_ code: Slipway_V1_ErrorCode, _ message: String) {
        self.init()
        self.code = code
        self.message = message
    }
}

extension Slipway_V1_ErrorCode {
    /// The code in words for logs and CLI messages: `invalid_argument`, `unavailable`, ….
    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .invalidArgument: "invalid_argument"
        case .notFound: "not_found"
        case .failedPrecondition: "failed_precondition"
        case .unavailable: "unavailable"
        case .unsupported: "unsupported"
        case .busy: "busy"
        case .internal: "internal"
        case .permissionDenied: "permission_denied"
        case .UNRECOGNIZED(let value): "code_\(value)"
        }
    }
}

extension Slipway_V1_AbortReason {
    /// The reason in words for logs: `cancelled`, `timed_out`, `superseded`.
    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .cancelled: "cancelled"
        case .timedOut: "timed_out"
        case .superseded: "superseded"
        case .UNRECOGNIZED(let value): "reason_\(value)"
        }
    }
}
