public import SlipwayProto

extension Slipway_V1_RolloutStatus {
    /// The `rollout` object of docs/json-output.md; `wave` counts from 1, as the text does.
    public var json: JSONValue {
        .object([
            "id": .count(id),
            "service": .string(service),
            "from_digest": .text(fromDigest),
            "to_digest": .string(toDigest),
            "plan": .string(plan),
            "state": .string(state.word),
            "wave": .count(wave + 1),
            "waves": .array(waves.map(\.json)),
            "reason": .text(reason),
            "set_by": .string(setBy),
            "actor": .text(actor),
            "created_at": .time(unixMicros: createdAtUnixMicros),
            "updated_at": .time(unixMicros: updatedAtUnixMicros),
            "pause_on_failure": .bool(pauseOnFailure),
            "wave_deadline_seconds": .count(waveDeadlineSeconds),
            "prefetch": .bool(prefetch),
            "progress": .array(progress.map(\.json)),
            "failures": .array(failures.map(\.json)),
        ])
    }
}

extension Slipway_V1_RolloutWave {
    /// The `wave` object: its shares, gate and outcome (`result` null while it runs or before).
    public var json: JSONValue {
        .object([
            "shares": .array(shares.map(\.json)),
            "bake_seconds": .count(bakeSeconds),
            "min_healthy_percent": .number(Double(minHealthyPerMille) / 10),
            "max_failed": .count(maxFailed),
            "result": .text(result),
            "detail": .text(detail),
            "started_at": .time(unixMicros: startedAtUnixMicros),
            "ended_at": .time(unixMicros: endedAtUnixMicros),
        ])
    }
}

extension Slipway_V1_WaveProgress {
    /// The `wave_progress` object: how one region's machines stand in the current wave.
    public var json: JSONValue {
        .object([
            "region": .string(region),
            "machines": .count(machines),
            "selected": .count(selected),
            "healthy": .count(healthy),
            "failed": .count(failed),
            "missing": .count(missing),
            "artifact_digest": .text(artifactDigest),
            "reported_at": .time(unixMicros: receivedAtUnixMicros),
        ])
    }
}

extension Slipway_V1_AuditEntry {
    /// The `audit_entry` object.
    public var json: JSONValue {
        .object([
            "at": .time(unixMicros: atUnixMicros),
            "identity": .text(identity),
            "action": .string(action),
            "object": .text(object),
            "outcome": .string(outcome),
            "detail": .text(detail),
        ])
    }
}
