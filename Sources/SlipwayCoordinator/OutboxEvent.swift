import Foundation
import SlipwayProto
import SlipwayWire
import SlipwayStore
import SwiftProtobuf

/// An event the current transaction produces: the ``Batch`` writes all of its
/// events to the outbox with one statement just before COMMIT (that is when
/// each gets its sequence number) and publishes them after.
struct OutboxEvent: Sendable {
    /// Set when the batch writes it.
    var sequence: Int64 = 0
    let topic: String
    var event: Slipway_V1_Event
    /// The event as stored: encoded without its sequence number (the publisher
    /// and catch-up fill it in from the row).
    let stored: [UInt8]

    /// An event about the state change the caller is making in its transaction.
    static func make(_ type: Slipway_V1_EventType, jobID: String = "", digest: String = "",
                     region: String = "", service: String = "", payload: some SwiftProtobuf.Message) throws -> OutboxEvent {
        var event = Slipway_V1_Event()
        event.type = type
        event.jobID = jobID
        event.artifactDigest = digest
        event.region = region
        event.service = service
        event.createdAtUnixMicros = WireMessage.nowUnixMicros()
        event.payload = try payload.serializedData()
        return OutboxEvent(topic: topic(for: type), event: event, stored: try event.serializedBytes())
    }

    /// The name stored in `events.type`.
    var typeName: String { Self.name(of: event.type) }

    /// The PUB topic: subscribers filter on `job.`, `artifact.`, `target.`, `rollout.`, `wave.` prefixes.
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
        case .rolloutStarted: "rollout.started"
        case .waveStarted: "wave.started"
        case .wavePassed: "wave.passed"
        case .rolloutPaused: "rollout.paused"
        case .rolloutResumed: "rollout.resumed"
        case .rolloutHalted: "rollout.halted"
        case .rolloutRolledBack: "rollout.rolled_back"
        case .rolloutSucceeded: "rollout.succeeded"
        case .rolloutAborted: "rollout.aborted"
        default: "other"
        }
    }

    /// The name stored in `events.type`.
    static func name(of type: Slipway_V1_EventType) -> String {
        String(topic(for: type).map { $0 == "." ? "_" : $0 })
    }
}
