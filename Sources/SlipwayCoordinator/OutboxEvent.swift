import Foundation
import SlipwayProto
import SlipwayWire
import SlipwayStore
import SwiftProtobuf

/// An event written to the outbox in the current transaction, to publish after commit.
struct OutboxEvent: Sendable {
    let sequence: Int64
    let topic: String
    let event: Slipway_V1_Event

    /// Writes the event in the caller's transaction; the sequence number comes from the outbox.
    static func append(_ db: PGConnection, _ type: Slipway_V1_EventType, jobID: String = "", digest: String = "",
                       region: String = "", service: String = "", payload: some SwiftProtobuf.Message) throws -> OutboxEvent {
        var event = Slipway_V1_Event()
        event.type = type
        event.jobID = jobID
        event.artifactDigest = digest
        event.region = region
        event.service = service
        event.createdAtUnixMicros = WireMessage.nowUnixMicros()
        event.payload = try payload.serializedData()
        let topic = topic(for: type)
        // Stored without its sequence number; the publisher fills it in from the row.
        let sequence = try Outbox.append(db, type: name(of: type), topic: topic, payload: try event.serializedBytes())
        event.sequence = UInt64(sequence)
        return OutboxEvent(sequence: sequence, topic: topic, event: event)
    }

    /// The PUB topic: subscribers filter on `job.`, `artifact.`, `target.` prefixes.
    static func topic(for type: Slipway_V1_EventType) -> String {
        switch type {
        case .jobQueued: "job.queued"
        case .jobStarted: "job.started"
        case .jobLog: "job.log"
        case .jobSucceeded: "job.succeeded"
        case .jobFailed: "job.failed"
        case .jobCancelled: "job.cancelled"
        case .jobRequeued: "job.requeued"
        case .artifactPublished: "artifact.published"
        case .replicaComplete: "artifact.replica"
        case .artifactDeployable: "artifact.deployable"
        case .artifactDeleted: "artifact.deleted"
        case .targetChanged: "target.changed"
        default: "other"
        }
    }

    /// The name stored in `events.type`.
    static func name(of type: Slipway_V1_EventType) -> String {
        topic(for: type).replacingOccurrences(of: ".", with: "_")
    }
}
