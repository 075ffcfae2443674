public import SlipwayProto

/// Why a producer call failed, in words a CI log can show.
public struct ProducerError: Error, Sendable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Code: String, Sendable {
        /// No reply after every retry.
        case unreachable
        /// The coordinator answered with an error (see `serverCode`).
        case rejected
        /// The reply was not what the request expects.
        case invalidReply = "invalid_reply"
        /// The overall deadline passed while waiting.
        case timedOut = "timed_out"
    }

    /// The kind of failure.
    public let code: Code
    /// The coordinator's error code for `.rejected` (`.invalidArgument`, `.notFound`, …); unspecified otherwise.
    public let serverCode: Slipway_V1_ErrorCode
    /// One line for the user.
    public let description: String

    /// Worth asking again later: no answer, or the coordinator's database was unavailable.
    public var isTransient: Bool { code == .unreachable || (code == .rejected && serverCode == .unavailable) }

    init(_ code: Code, _ description: String, serverCode: Slipway_V1_ErrorCode = .unspecified) {
        self.code = code
        self.description = description
        self.serverCode = serverCode
    }
}
