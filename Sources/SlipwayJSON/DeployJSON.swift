public import SlipwayProto

extension Slipway_V1_TargetChange {
    /// The `target` object of docs/json-output.md; `region` is null for the global target.
    public var json: JSONValue {
        .object([
            "service": .string(service),
            "region": .text(region),
            "artifact_digest": .text(artifactDigest),
            "version": .count(version),
            "set_by": .string(setBy),
            "set_at": .time(unixMicros: setAtUnixMicros),
            "previous_digest": .text(previousDigest),
            "rollout_id": rolloutID == 0 ? .null : .count(rolloutID),
            "stable_digest": .text(stableDigest),
            "shares": .array(shares.map(\.json)),
            "prefetch": .bool(prefetch),
        ])
    }
}

extension Slipway_V1_WaveShare {
    /// The `share` object: a count of machines or a percentage of a region (`*`: every region).
    public var json: JSONValue {
        .object([
            "region": .string(region),
            "machines": machines > 0 ? .count(machines) : .null,
            "percent": machines > 0 ? .null : .number(Double(perMille) / 10),
        ])
    }
}

extension Slipway_V1_DeployReply {
    /// The fields of `deploy` and `rollback` output, `error` aside.
    public var jsonFields: [(key: String, value: JSONValue)] {
        [
            ("targets", .array(targets.map(\.json))),
            ("unchanged", .array(unchanged.map { .string($0) })),
            ("pinned_regions", .array(pinnedRegions.map { .string($0) })),
            ("rollout", hasRollout ? rollout.json : .null),
        ]
    }
}

extension Slipway_V1_ServiceStatus {
    /// The `service_summary` object of `slipway services`: targets, the newest
    /// rollout, and this service's machines per region.
    public func summaryJSON(nowMicros: Int64, staleAfterMicros: Int64) -> JSONValue {
        .object([
            "service": .string(service),
            "targets": .array(targets.map(\.json)),
            "rollout": rollouts.first?.json ?? .null,
            "regions": .array(regions.map { $0.json(service: service, nowMicros: nowMicros, staleAfterMicros: staleAfterMicros) }),
        ])
    }
}

extension Slipway_V1_ServiceStatus {
    /// The fields of `status` output, `error` aside: targets, the newest rollout, this
    /// service's machines per region, history (the CLI and the console's API alike).
    public func statusJSONFields(nowMicros: Int64, staleAfterMicros: Int64) -> [(key: String, value: JSONValue)] {
        [
            ("service", .string(service)),
            ("targets", .array(targets.map(\.json))),
            ("rollout", rollouts.first?.json ?? .null),
            ("regions", .array(regions.map { $0.json(service: service, nowMicros: nowMicros, staleAfterMicros: staleAfterMicros) })),
            ("history", .array(history.map(\.json))),
        ]
    }
}

extension Slipway_V1_DeploymentRecord {
    /// The `deployment` object: one row of a service's history.
    public var json: JSONValue {
        .object([
            "at": .time(unixMicros: setAtUnixMicros),
            "action": .string(action),
            "region": .text(region),
            "version": .count(version),
            "from_digest": .text(fromDigest),
            "to_digest": .text(toDigest),
            "set_by": .string(setBy),
        ])
    }
}

extension Slipway_V1_AgentStatus {
    /// The `machine` object: one machine's state for a service, and why.
    public var json: JSONValue {
        .object([
            "machine_id": .string(machineID),
            "region": .string(region),
            "service": .string(service),
            "state": .string(state.word),
            "artifact_digest": .text(artifactDigest),
            "failed_digest": .text(failedDigest),
            "reason": .text(reason),
        ])
    }
}

extension Slipway_V1_RegionReport {
    /// The `region` object of `status`: this service's machines only.
    public func json(service: String, nowMicros: Int64, staleAfterMicros: Int64) -> JSONValue {
        let counts = self.counts.filter { $0.service == service }
        return .object([
            "region": .string(region),
            "machines": .count(counts.reduce(0) { $0 + Int64($1.machines) }),
            "reported_at": .time(unixMicros: receivedAtUnixMicros),
            "stale": .bool(nowMicros - receivedAtUnixMicros > staleAfterMicros),
            "builds": .array(counts.map { count in
                .object([
                    "artifact_digest": .text(count.artifactDigest),
                    "state": .string(count.state.word),
                    "machines": .count(count.machines),
                ])
            }),
            "failing": .array(failures.filter { $0.service == service }.map(\.json)),
            "missing": .array(missing.filter { $0.service == service }.map(\.json)),
        ])
    }
}
