import Logging
import SlipwayAuth
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// Catch-up for event subscribers (zguide "Clone"): a subscriber that started
/// late or saw a gap asks for everything after the last number it applied, and
/// gets the stored events in order, then `SnapshotEnd` with the newest number.
struct Snapshots {
    /// Most events sent in answer to one request; the subscriber asks again for more.
    static let pageLimit: Int32 = 10_000

    let sender: String
    let logger: Logger
    private let codec = WireCodec()

    init(sender: String, logger: Logger) {
        self.sender = sender
        self.logger = logger
    }

    /// Answers up to 64 waiting requests on `socket` from the outbox.
    func serve(_ socket: ZMQSocket, db: PGConnection, authorization: Authorization, rejections: inout RejectionLog,
               audit: inout PendingAudit) throws {
        for _ in 0..<64 {
            guard let (peer, message) = try codec.receiveRouted(from: socket, wait: .never, maxFrames: 4, dropped: { error in
                rejections.record(error, logger: logger)
            }) else { return }
            let identity = DaemonSecurity.sender(of: socket)
            if let refusal = authorization.refusal(message.type, from: identity, on: socket) {
                Authorization.count(message.type, from: identity)
                audit.append(AuditRecord(identity, action: "\(message.type)", object: "", outcome: .refused, detail: refusal.message))
                rejections.record(reason: "permission_denied", detail: refusal.message, logger: logger)
                let reply = WireMessage(Slipway_V1_ErrorReply(refusal.code, refusal.message), sender: sender, inReplyTo: message.envelope.messageID)
                _ = try? socket.send(codec.encode(reply, to: peer), wait: .never)
                continue
            }
            guard message.type == .snapshotRequest, let request = try? message.body(as: Slipway_V1_SnapshotRequest.self) else {
                rejections.record(reason: "not_a_snapshot_request", detail: "only snapshot requests are served here", logger: logger)
                continue
            }
            var after = Int64(clamping: request.afterSequence)
            var sent: Int32 = 0
            while sent < Self.pageLimit {
                let page = try Outbox.events(db, after: after, limit: 1_000)
                if page.isEmpty { break }
                for stored in page {
                    var event = try Slipway_V1_Event(serializedBytes: stored.payload)
                    event.sequence = UInt64(stored.sequence)
                    let reply = WireMessage(event, sender: sender, topic: stored.topic, inReplyTo: message.envelope.messageID)
                    _ = try? socket.send(codec.encode(reply, to: peer), wait: .never)
                    after = stored.sequence
                    sent += 1
                }
            }
            var end = Slipway_V1_SnapshotEnd()
            end.lastSequence = UInt64(try Outbox.lastSequence(db))
            _ = try? socket.send(codec.encode(WireMessage(end, sender: sender, inReplyTo: message.envelope.messageID), to: peer), wait: .never)
        }
    }
}
