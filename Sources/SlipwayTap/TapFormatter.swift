public import Foundation
import SlipwayProto
import SlipwayWire
import SwiftProtobuf

/// Turns captured frames into one readable line, or one JSON object per line.
/// Anything that does not decode is shown (as hex with `raw`), never dropped.
public struct TapFormatter: Sendable {
    /// One JSON object per line instead of text.
    public var json: Bool
    /// Show the frames of undecodable messages as hex.
    public var raw: Bool
    private let codec = WireCodec(maxTopicBytes: 1 << 20, maxEnvelopeBytes: 64 << 20, maxPayloadBytes: 64 << 20)

    /// A formatter.
    public init(json: Bool = false, raw: Bool = false) {
        self.json = json
        self.raw = raw
    }

    /// The message's type name as `--type` matches it: `event`, `job_queued`, `work_assignment`, …
    public func typeNames(_ frames: [[UInt8]]) -> [String] {
        guard let message = try? codec.decode(frames) else { return ["undecodable"] }
        var names = [Self.name(message.type)]
        if message.type == .event, let event = try? message.body(as: Slipway_V1_Event.self) {
            names.append(Self.name(event.type))
        }
        return names
    }

    /// One line for the frames captured at `time`.
    public func line(_ frames: [[UInt8]], at time: Date) -> String {
        let stamp = Self.timestamp(time)
        do {
            let message = try codec.decode(frames)
            let body = try message.anyBody()
            let topic = String(decoding: message.topic, as: UTF8.self)
            let payload = try decodedPayload(of: body)
            if json {
                var object: [String: Any] = [
                    "time": stamp, "topic": topic, "type": Self.name(message.type), "sender": message.envelope.sender,
                    "message_id": message.envelope.messageID, "body": try jsonObject(body),
                ]
                if !message.envelope.inReplyTo.isEmpty { object["in_reply_to"] = message.envelope.inReplyTo }
                if !message.envelope.traceID.isEmpty { object["trace_id"] = message.envelope.traceID }
                if let payload { object["event_payload"] = try jsonObject(payload) }
                if let bytes = message.payload { object["payload_bytes"] = bytes.count }
                return Self.serialize(object)
            }
            var text = "\(stamp) \(topic.isEmpty ? "-" : topic) \(Self.name(message.type)) from \(message.envelope.sender)"
            if let event = body as? Slipway_V1_Event {
                text += " #\(event.sequence) \(Self.name(event.type))"
                if !event.jobID.isEmpty { text += " job=\(event.jobID)" }
                if !event.artifactDigest.isEmpty { text += " artifact=\(event.artifactDigest.prefix(12))" }
                if let payload { text += " \(Self.compact(payload))" }
            } else {
                text += " \(Self.compact(body))"
            }
            if let bytes = message.payload { text += " +\(bytes.count) payload bytes" }
            return text
        } catch {
            let reason = (error as? WireError)?.description ?? "\(error)"
            if json {
                var object: [String: Any] = ["time": stamp, "error": reason, "frames": frames.count]
                if raw { object["frames_hex"] = frames.map { Self.hex($0) } }
                return Self.serialize(object)
            }
            var text = "\(stamp) ! undecodable: \(reason) (\(frames.count) frames, \(frames.map(\.count)) bytes)"
            if raw { text += " " + frames.map { Self.hex($0) }.joined(separator: " | ") }
            return text
        }
    }

    /// An event's payload decoded by its type, where the type says what it holds.
    private func decodedPayload(of body: any WireBody) throws -> (any SwiftProtobuf.Message)? {
        guard let event = body as? Slipway_V1_Event, !event.payload.isEmpty else { return nil }
        switch event.type {
        case .jobQueued, .jobStarted, .jobSucceeded, .jobFailed, .jobCancelled, .jobRequeued, .jobLog:
            return try Slipway_V1_JobInfo(serializedBytes: event.payload)
        case .artifactPublished, .artifactDeployable, .artifactDeleted:
            return try Slipway_V1_ArtifactManifest(serializedBytes: event.payload)
        case .replicaComplete:
            return try Slipway_V1_ReplicationStatus(serializedBytes: event.payload)
        case .targetChanged:
            return try Slipway_V1_TargetChange(serializedBytes: event.payload)
        case .rolloutStarted, .waveStarted, .wavePassed, .rolloutPaused, .rolloutResumed, .rolloutHalted, .rolloutRolledBack,
             .rolloutSucceeded, .rolloutAborted:
            return try Slipway_V1_RolloutStatus(serializedBytes: event.payload)
        default:
            return nil
        }
    }

    private func jsonObject(_ message: any SwiftProtobuf.Message) throws -> Any {
        let data = try message.jsonUTF8Data()
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    /// `PROTO_ENUM_NAME` → `proto_enum_name` without the type prefix.
    static func name(_ type: Slipway_V1_MessageType) -> String {
        snake(String(describing: type))
    }

    static func name(_ type: Slipway_V1_EventType) -> String {
        snake(String(describing: type))
    }

    private static func snake(_ camel: String) -> String {
        var out = ""
        for character in camel {
            if character.isUppercase {
                if !out.isEmpty { out += "_" }
                out += character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }

    /// The text format on one line, bytes fields shortened.
    static func compact(_ message: any SwiftProtobuf.Message) -> String {
        let text = message.textFormatString().split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        let limited = text.count > 400 ? String(text.prefix(400)) + "…" : text
        return "{\(limited)}"
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(256).map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        return bytes.count > 256 ? shown + "…" : shown
    }

    static func timestamp(_ time: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: time)
    }

    private static func serialize(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
