public import SlipwayProto

extension Slipway_V1_JobInfo {
    /// The `job` object of docs/json-output.md.
    public var json: JSONValue {
        .object([
            "id": .string(jobID),
            "status": .string(status.word),
            "repo": .string(repoURL),
            "commit": .string(commit),
            "requested_commit": .string(requestedCommit.isEmpty ? commit : requestedCommit),
            "artifact_name": .string(artifactName),
            "recipe": .text(recipe),
            "region": .text(region),
            "attempt": .count(attempt),
            "max_attempts": .count(maxAttempts),
            "worker": .text(workerID),
            "artifact_digest": .text(artifactDigest),
            "cache_hit": .bool(cacheHit),
            "environment": .array(environment.map { .string($0) }),
            "labels": .array(labels.map { .string($0) }),
            "submitted_by": .text(submittedBy),
            "failure": .text(error),
            "created_at": .time(unixMicros: createdAtUnixMicros),
            "started_at": .time(unixMicros: startedAtUnixMicros),
            "finished_at": .time(unixMicros: finishedAtUnixMicros),
        ])
    }
}

extension Slipway_V1_CancelBuildAck {
    /// The fields of `cancel` output, `error` aside; `stopping` while the worker stops a running build.
    public var jsonFields: [(key: String, value: JSONValue)] {
        [("job_id", .string(jobID)), ("status", .string(status.word)), ("stopping", .bool(status == .running))]
    }
}
