public import SlipwayProto

extension Slipway_V1_Event {
    /// The `event` object (docs/json-output.md): what happened, to what, and the job,
    /// rollout or artifact it carries; what the console's live stream and webhooks send.
    public var json: JSONValue {
        var job: JSONValue = .null, rollout: JSONValue = .null, artifact: JSONValue = .null
        switch type {
        case .jobQueued, .jobStarted, .jobSucceeded, .jobFailed, .jobCancelled, .jobRequeued:
            if let info = try? Slipway_V1_JobInfo(serializedBytes: payload) { job = info.json }
        case .rolloutStarted, .waveStarted, .wavePassed, .rolloutPaused, .rolloutResumed, .rolloutHalted,
             .rolloutRolledBack, .rolloutSucceeded, .rolloutAborted:
            if let status = try? Slipway_V1_RolloutStatus(serializedBytes: payload) { rollout = status.json }
        case .artifactPublished, .artifactDeployable, .artifactDeleted:
            if let manifest = try? Slipway_V1_ArtifactManifest(serializedBytes: payload) {
                artifact = .object([
                    "digest": .string(manifest.digest), "name": .string(manifest.name), "size": .count(manifest.size),
                    "job_id": .text(manifest.jobID), "origin_region": .text(manifest.originRegion),
                ])
            }
        default: break
        }
        return .object([
            "sequence": .count(sequence),
            "type": .string(type.word),
            "at": .time(unixMicros: createdAtUnixMicros),
            "job_id": .text(jobID),
            "artifact_digest": .text(artifactDigest),
            "region": .text(region),
            "service": .text(service),
            "job": job,
            "rollout": rollout,
            "artifact": artifact,
        ])
    }
}

extension Slipway_V1_EventType {
    /// `job_succeeded`, `rollout_halted`, …: the proto name without its prefix, lowercase.
    public var word: String {
        switch self {
        case .jobQueued: "job_queued"
        case .jobStarted: "job_started"
        case .jobLog: "job_log"
        case .jobSucceeded: "job_succeeded"
        case .jobFailed: "job_failed"
        case .jobCancelled: "job_cancelled"
        case .jobRequeued: "job_requeued"
        case .artifactPublished: "artifact_published"
        case .replicaComplete: "replica_complete"
        case .artifactDeployable: "artifact_deployable"
        case .artifactDeleted: "artifact_deleted"
        case .targetChanged: "target_changed"
        case .rolloutStarted: "rollout_started"
        case .waveStarted: "wave_started"
        case .wavePassed: "wave_passed"
        case .rolloutPaused: "rollout_paused"
        case .rolloutResumed: "rollout_resumed"
        case .rolloutHalted: "rollout_halted"
        case .rolloutRolledBack: "rollout_rolled_back"
        case .rolloutSucceeded: "rollout_succeeded"
        case .rolloutAborted: "rollout_aborted"
        default: "unknown"
        }
    }
}
