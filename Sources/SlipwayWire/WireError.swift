/// Why an inbound message was rejected. Receivers count it, log it and drop the
/// message; they never crash on it.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kinds of bad input, each counted separately in metrics.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// Not 2 or 3 frames (topic, envelope, optional payload).
        case badFrameCount = "bad_frame_count"
        /// A frame exceeds its configured limit.
        case oversize
        /// The envelope frame is not a valid protobuf `Envelope`.
        case malformedEnvelope = "malformed_envelope"
        /// The envelope's `protocol_version` is not one this build speaks.
        case unsupportedVersion = "unsupported_version"
        /// The envelope names a message type this build does not know.
        case unknownMessageType = "unknown_message_type"
        /// The body was asked for as a different type than the envelope names.
        case typeMismatch = "type_mismatch"
        /// The body bytes are not a valid message of the named type.
        case malformedBody = "malformed_body"
        /// A ROUTER message without the routing-id frame.
        case missingRoutingID = "missing_routing_id"
    }

    /// The kind of bad input.
    public let code: Code
    /// Safe detail, e.g. "envelope frame is 2000000 bytes, limit 1048576".
    public let detail: String

    /// Creates an error.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// `rejected message (oversize): envelope frame is 2000000 bytes, limit 1048576`.
    public var description: String { "rejected message (\(code.rawValue)): \(detail)" }
    /// Same as ``description``; the detail never carries payload bytes.
    public var debugDescription: String { "WireError(\(code)): \(detail)" }
}
