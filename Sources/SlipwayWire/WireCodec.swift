import SlipwayProto

/// Turns ``WireMessage``s into frames and back, enforcing size limits and the
/// protocol version. Decoding never traps: every bad input is a ``WireError``.
public struct WireCodec: Sendable {
    /// The protocol version this build speaks (`Envelope.protocol_version`).
    public static let protocolVersion: UInt32 = 1

    /// Largest topic frame accepted.
    public var maxTopicBytes: Int
    /// Largest envelope frame accepted (the body is inside it).
    public var maxEnvelopeBytes: Int
    /// Largest raw payload frame accepted (one artifact piece or log chunk).
    public var maxPayloadBytes: Int

    /// Limits sized for Slipway's traffic: 256 B topics, 1 MiB envelopes, 16 MiB payloads.
    public init(maxTopicBytes: Int = 256, maxEnvelopeBytes: Int = 1 << 20, maxPayloadBytes: Int = 16 << 20) {
        self.maxTopicBytes = maxTopicBytes
        self.maxEnvelopeBytes = maxEnvelopeBytes
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// The frames to send: topic, envelope, and the payload if there is one.
    public func encode(_ message: WireMessage) -> [[UInt8]] {
        // Serializing a proto3 message built in this process cannot fail.
        var frames = [message.topic, try! message.envelope.serializedBytes()]
        if let payload = message.payload { frames.append(payload) }
        return frames
    }

    /// The frames to send from a ROUTER to the peer with `routingID`.
    public func encode(_ message: WireMessage, to routingID: [UInt8]) -> [[UInt8]] {
        [routingID] + encode(message)
    }

    /// Decodes the frames of one message (no routing-id frame).
    public func decode(_ frames: [[UInt8]]) throws(WireError) -> WireMessage {
        guard frames.count == 2 || frames.count == 3 else {
            throw WireError(.badFrameCount, "expected 2 or 3 frames, got \(frames.count)")
        }
        let topic = frames[0], envelopeBytes = frames[1]
        let payload = frames.count == 3 ? frames[2] : nil
        try checkSize(topic.count, maxTopicBytes, "topic")
        try checkSize(envelopeBytes.count, maxEnvelopeBytes, "envelope")
        if let payload { try checkSize(payload.count, maxPayloadBytes, "payload") }

        let envelope: Slipway_V1_Envelope
        do {
            envelope = try Slipway_V1_Envelope(serializedBytes: envelopeBytes)
        } catch {
            throw WireError(.malformedEnvelope, "envelope frame of \(envelopeBytes.count) bytes is not a valid Envelope")
        }
        guard envelope.protocolVersion == Self.protocolVersion else {
            throw WireError(.unsupportedVersion, "protocol version \(envelope.protocolVersion), this build speaks \(Self.protocolVersion)")
        }
        guard WireRegistry.bodyTypes[envelope.type] != nil else {
            throw WireError(.unknownMessageType, "message type \(envelope.type.rawValue) is not known to this build")
        }
        return WireMessage(topic: topic, envelope: envelope, payload: payload)
    }

    /// Decodes a message received on a ROUTER socket: routing id, then the message.
    public func decodeRouted(_ frames: [[UInt8]]) throws(WireError) -> (routingID: [UInt8], message: WireMessage) {
        guard let routingID = frames.first, !routingID.isEmpty else {
            throw WireError(.missingRoutingID, "ROUTER message without a routing id")
        }
        return (routingID, try decode(Array(frames.dropFirst())))
    }

    private func checkSize(_ size: Int, _ limit: Int, _ what: String) throws(WireError) {
        if size > limit {
            throw WireError(.oversize, "\(what) frame is \(size) bytes, limit \(limit)")
        }
    }
}
