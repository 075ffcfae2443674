import SlipwayCore
public import SlipwayProto
#if canImport(Glibc)
import Glibc
#endif

/// One message as it crosses a socket: topic frame, envelope frame, optional raw payload frame.
///
/// On ROUTER sockets the routing-id frame comes first; ``WireCodec/decodeRouted(_:)``
/// splits it off. On non-PUB sockets the topic frame is empty, which also serves
/// as the delimiter frame ROUTER/DEALER conventions expect.
public struct WireMessage: Sendable {
    /// SUB sockets filter on this frame's prefix; empty where there is no filtering.
    public var topic: [UInt8]
    /// The decoded envelope; its `body` holds the typed message.
    public var envelope: Slipway_V1_Envelope
    /// Bytes that follow the envelope raw (artifact pieces, log data), if any.
    public var payload: [UInt8]?

    /// Wraps a body in a fresh envelope (protocol version, type, new id, timestamp).
    public init<Body: WireBody>(
        _ body: Body, sender: String, topic: String = "", traceID: String = "",
        inReplyTo: String = "", payload: [UInt8]? = nil
    ) {
        var envelope = Slipway_V1_Envelope()
        envelope.protocolVersion = WireCodec.protocolVersion
        envelope.type = Body.messageType
        envelope.messageID = WireMessage.newMessageID()
        envelope.sender = sender
        envelope.sentAtUnixMicros = WireMessage.nowUnixMicros()
        envelope.traceID = traceID
        envelope.inReplyTo = inReplyTo
        // Serializing a fully-initialised proto3 message cannot fail.
        envelope.body = try! body.serializedBytes()
        self.init(topic: Array(topic.utf8), envelope: envelope, payload: payload)
    }

    /// Assembles a message from already-built parts.
    public init(topic: [UInt8], envelope: Slipway_V1_Envelope, payload: [UInt8]?) {
        self.topic = topic
        self.envelope = envelope
        self.payload = payload
    }

    /// The message type the envelope names.
    public var type: Slipway_V1_MessageType { envelope.type }

    /// Decodes the body as `Body`; fails if the envelope names another type.
    public func body<Body: WireBody>(as _: Body.Type = Body.self) throws(WireError) -> Body {
        guard envelope.type == Body.messageType else {
            throw WireError(.typeMismatch, "expected \(Body.messageType), envelope says \(envelope.type)")
        }
        do {
            return try Body(serializedBytes: envelope.body)
        } catch {
            throw WireError(.malformedBody, "body is not a valid \(Body.protoMessageName)")
        }
    }

    /// Decodes the body as whatever type the envelope names.
    public func anyBody() throws(WireError) -> any WireBody {
        try WireRegistry.decodeBody(envelope.body, type: envelope.type)
    }

    /// A random 128-bit id as 32 hex characters (kernel randomness, ``RandomPool``).
    public static func newMessageID() -> String {
        let words = RandomPool.next128()
        return withUnsafeBytes(of: words) { Hex.encode($0) }
    }

    /// Microseconds since the Unix epoch from the real-time clock.
    public static func nowUnixMicros() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }
}
