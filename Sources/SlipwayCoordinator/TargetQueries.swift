import Foundation
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayStore

/// Target builds and their history: the SQL behind deploy, rollback and status.
/// Every check runs before the first write, so a refusal leaves the caller's
/// transaction untouched.
extension CoordinatorQueries {
    /// Sets `service`'s target to `digest` globally (`regions` empty) or in each listed region.
    ///
    /// Refused unless the artifact has a complete replica in every region the
    /// target covers: every configured region for a global target.
    func deploy(_ db: PGConnection, service: String, digest: String, regions: [String], setBy: String, actor: String?) throws
        -> (Slipway_V1_DeployReply, [OutboxEvent]) {
        guard try db.query("SELECT 1 FROM artifacts WHERE digest = $1", [.text(digest)]).first != nil else {
            throw Rejection(.notFound, "no artifact \(digest)")
        }
        try requireReplicated(db, digest: digest, regions: regions)
        return try setTargets(db, service: service, regions: regions.isEmpty ? [""] : regions, action: "deploy", setBy: setBy, actor: actor) { _ in digest }
    }

    /// Sets each target (global when `regions` is empty) back to the build its last change replaced.
    /// `requestID` identifies the request: the same request resent (its answer
    /// was lost) finds its rollback done and changes nothing more.
    func rollback(_ db: PGConnection, service: String, regions: [String], setBy: String, actor: String?,
                  requestID: String) throws -> (Slipway_V1_DeployReply, [OutboxEvent]) {
        if try db.query("SELECT 1 FROM deployments WHERE service = $1 AND request_id = $2 LIMIT 1",
                        [.text(service), .text(requestID)]).first != nil {
            var reply = Slipway_V1_DeployReply()
            for region in regions.isEmpty ? [""] : regions {
                if let existing = try target(db, service: service, region: region) {
                    reply.targets.append(existing)
                    reply.unchanged.append(region)
                }
            }
            return (reply, [])
        }
        var previous: [String: String] = [:]
        for region in regions.isEmpty ? [""] : regions {
            let row = try db.query("""
                SELECT from_digest FROM deployments WHERE service = $1 AND region = $2 ORDER BY id DESC LIMIT 1
                """, [.text(service), .text(region)]).first
            guard let from = try row?.optionalString("from_digest") else {
                let scope = region.isEmpty ? "the global target" : "region \(region)"
                throw Rejection(.failedPrecondition, "\(service) has no previous target for \(scope) to roll back to")
            }
            guard try db.query("SELECT 1 FROM artifacts WHERE digest = $1", [.text(from)]).first != nil else {
                throw Rejection(.failedPrecondition, "the previous target \(from) no longer exists")
            }
            // A region may have lost its copy, or joined, since that build was the target.
            try requireReplicated(db, digest: from, regions: region.isEmpty ? [] : [region])
            previous[region] = from
        }
        return try setTargets(db, service: service, regions: Array(previous.keys).sorted(), action: "rollback", setBy: setBy, actor: actor,
                              requestID: requestID) { previous[$0]! }
    }

    /// Refuses unless `digest` has a complete replica in each of `regions` (every
    /// required region when empty: a global target).
    func requireReplicated(_ db: PGConnection, digest: String, regions: [String]) throws {
        let needed = regions.isEmpty ? try requiredRegions(db, digest: digest) : regions
        let rows = try db.query("""
            SELECT region, status::text AS status, pieces_done FROM replicas WHERE artifact_digest = $1
            """, [.text(digest)]).rows
        var states: [String: String] = [:]
        for row in rows { states[try row.string("region")] = try row.string("status") }
        let missing = needed.filter { states[$0] != "complete" }
        guard missing.isEmpty else {
            let detail = missing.map { "\($0) (\(states[$0] ?? "no replica"))" }.joined(separator: ", ")
            throw Rejection(.failedPrecondition,
                            "artifact \(digest) is not replicated to every target region yet: \(detail)")
        }
    }

    /// Regions a global target must be replicated to: every configured one, or the origin alone.
    private func requiredRegions(_ db: PGConnection, digest: String) throws -> [String] {
        if !regions.isEmpty { return regions }
        return try db.query("SELECT origin_region FROM artifacts WHERE digest = $1", [.text(digest)]).rows.map { try $0.string("origin_region") }
    }

    /// Writes the new targets, their history rows and `target.changed` events.
    private func setTargets(_ db: PGConnection, service: String, regions: [String], action: String, setBy: String, actor: String?,
                            requestID: String? = nil, digest: (String) -> String) throws -> (Slipway_V1_DeployReply, [OutboxEvent]) {
        var reply = Slipway_V1_DeployReply()
        var events: [OutboxEvent] = []
        for region in regions {
            let wanted = digest(region)
            if try currentTarget(db, service: service, region: region)?.digest == wanted,
               let existing = try target(db, service: service, region: region) {
                reply.targets.append(existing)
                reply.unchanged.append(region)
                continue
            }
            let (change, event) = try writeTarget(db, service: service, region: region, digest: wanted, setBy: setBy,
                                                  history: TargetHistory(action: action, actor: actor, requestID: requestID))
            reply.targets.append(change)
            events.append(event)
        }
        return (reply, events)
    }

    /// Removes each region's override of `service`, so the region follows the
    /// global target again. The row stays, without a build, so the region's
    /// version keeps growing; a region without an override is left alone.
    func clearOverrides(_ db: PGConnection, service: String, regions: [String], setBy: String, actor: String?) throws
        -> (Slipway_V1_DeployReply, [OutboxEvent]) {
        var reply = Slipway_V1_DeployReply()
        var events: [OutboxEvent] = []
        for region in regions {
            guard try currentTarget(db, service: service, region: region)?.digest != nil else {
                reply.unchanged.append(region)
                continue
            }
            let (change, event) = try writeTarget(db, service: service, region: region, digest: nil, setBy: setBy,
                                                  history: TargetHistory(action: "clear", actor: actor, requestID: nil))
            reply.targets.append(change)
            events.append(event)
        }
        return (reply, events)
    }

    /// What a target change writes to the deployment history.
    struct TargetHistory {
        var action: String
        var actor: String?
        var requestID: String?
        var rolloutID: UInt64? = nil
    }

    /// A target row as stored: its build (nil: a cleared override), version, and
    /// for a rollout's target the rollout and the build outside its waves.
    func currentTarget(_ db: PGConnection, service: String, region: String) throws
        -> (digest: String?, version: Int, rolloutID: UInt64?, stable: String?)? {
        guard let row = try db.query("""
            SELECT artifact_digest, version, rollout_id, stable_digest FROM targets WHERE service = $1 AND region = $2 FOR UPDATE
            """, [.text(service), .text(region)]).first else { return nil }
        return (try row.optionalString("artifact_digest"), try row.int("version"), try row.optionalInt("rollout_id").map(UInt64.init),
                try row.optionalString("stable_digest"))
    }

    /// Writes one target (the next version), signs it, and makes its
    /// `target.changed` event; with `history`, also a row of the deployment history.
    /// `rollout`: the rollout this target carries (id, the build outside its waves, the shares).
    func writeTarget(_ db: PGConnection, service: String, region: String, digest: String?,
                     rollout: (id: UInt64, stable: String?, shares: [RolloutPlan.Share], prefetch: Bool)? = nil, setBy: String,
                     history: TargetHistory?) throws -> (Slipway_V1_TargetChange, OutboxEvent) {
        let current = try currentTarget(db, service: service, region: region)
        let version = (current?.version ?? 0) + 1
        let shares = try rollout.map { String(decoding: try JSONEncoder().encode($0.shares), as: UTF8.self) }
        let written = try db.query("""
            INSERT INTO targets (service, region, artifact_digest, version, set_by, set_at, rollout_id, stable_digest, shares, prefetch)
            VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8::jsonb, $9)
            ON CONFLICT (service, region) DO UPDATE
            SET artifact_digest = excluded.artifact_digest, version = excluded.version, set_by = excluded.set_by, set_at = now(),
                rollout_id = excluded.rollout_id, stable_digest = excluded.stable_digest, shares = excluded.shares,
                prefetch = excluded.prefetch
            RETURNING (extract(epoch FROM set_at) * 1000000)::bigint AS set_us
            """, [.text(service), .text(region), .optional(digest), .int(version), .text(setBy), .optional(rollout.map { String($0.id) }),
                  .optional(rollout?.stable), .optional(shares), .text(rollout?.prefetch == true ? "true" : "false")])
        let previous = try db.query("""
            SELECT coalesce((SELECT d.from_digest FROM deployments d WHERE d.service = $1 AND d.region = $2 ORDER BY d.id DESC LIMIT 1), '') AS p
            """, [.text(service), .text(region)]).first?.string("p") ?? ""
        if let history {
            try db.query("""
                INSERT INTO deployments (service, region, from_digest, to_digest, version, action, set_by, request_id, actor, rollout_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                """, [.text(service), .text(region), .optional(current?.digest), .optional(digest), .int(version), .text(history.action),
                      .text(setBy), .optional(history.requestID), .optional(history.actor), .optional(history.rolloutID.map { String($0) })])
        }
        var change = Slipway_V1_TargetChange()
        change.service = service
        change.region = region
        change.artifactDigest = digest ?? ""
        change.version = UInt64(version)
        change.setBy = setBy
        change.setAtUnixMicros = Int64(try written.first?.int("set_us") ?? 0)
        change.previousDigest = history == nil ? previous : (current?.digest ?? "")
        if let rollout {
            change.rolloutID = rollout.id
            change.stableDigest = rollout.stable ?? ""
            change.shares = rollout.shares.map(\.wire)
            change.prefetch = rollout.prefetch
        }
        if let signer = signer?.signer { change.signature = Data(try TargetSignature.sign(change, with: signer)) }
        return (change, try OutboxEvent.make(.targetChanged, digest: digest ?? "", region: region, service: service, payload: change))
    }

    private func target(_ db: PGConnection, service: String, region: String) throws -> Slipway_V1_TargetChange? {
        try targets(db, service: service).first { $0.region == region }
    }

    /// Every target of `service`: global first, then regional overrides by region.
    func targets(_ db: PGConnection, service: String) throws -> [Slipway_V1_TargetChange] {
        try db.query("""
            SELECT t.region, t.artifact_digest, t.version, t.set_by, (extract(epoch FROM t.set_at) * 1000000)::bigint AS set_us,
                   coalesce((SELECT d.from_digest FROM deployments d WHERE d.service = t.service AND d.region = t.region
                             ORDER BY d.id DESC LIMIT 1), '') AS previous,
                   t.rollout_id, coalesce(t.stable_digest, '') AS stable, coalesce(t.shares::text, '[]') AS shares, t.prefetch
            FROM targets t WHERE t.service = $1 AND t.artifact_digest IS NOT NULL ORDER BY t.region
            """, [.text(service)]).rows.map { row in
            var change = Slipway_V1_TargetChange()
            change.service = service
            change.region = try row.string("region")
            change.artifactDigest = try row.string("artifact_digest")
            change.version = UInt64(try row.int("version"))
            change.setBy = try row.string("set_by")
            change.setAtUnixMicros = Int64(try row.int("set_us"))
            change.previousDigest = try row.string("previous")
            if let rollout = try row.optionalInt("rollout_id") {
                change.rolloutID = UInt64(rollout)
                change.stableDigest = try row.string("stable")
                change.shares = try JSONDecoder().decode([RolloutPlan.Share].self, from: Data(try row.string("shares").utf8)).map(\.wire)
                change.prefetch = try row.bool("prefetch")
            }
            return change
        }
    }

    /// Targets and the newest `limit` history rows of `service`.
    func serviceStatus(_ db: PGConnection, service: String, limit: Int) throws -> Slipway_V1_ServiceStatus {
        var status = Slipway_V1_ServiceStatus()
        status.service = service
        status.targets = try targets(db, service: service)
        status.history = try db.query("""
            SELECT region, coalesce(from_digest, '') AS from_digest, coalesce(to_digest, '') AS to_digest, version, action, set_by,
                   (extract(epoch FROM set_at) * 1000000)::bigint AS set_us
            FROM deployments WHERE service = $1 ORDER BY id DESC LIMIT $2
            """, [.text(service), .int(limit)]).rows.map { row in
            var record = Slipway_V1_DeploymentRecord()
            record.service = service
            record.region = try row.string("region")
            record.fromDigest = try row.string("from_digest")
            record.toDigest = try row.string("to_digest")
            record.version = UInt64(try row.int("version"))
            record.action = try row.string("action")
            record.setBy = try row.string("set_by")
            record.setAtUnixMicros = Int64(try row.int("set_us"))
            return record
        }
        status.regions = try regionReports(db).map { $0.only(service) }
        // Read after the reports: what a report counts happened in the rollout's current wave or before.
        status.rollouts = try rollouts(db, service: service, limit: 5).map { $0.status() }
        return status
    }

    /// Every service with a target or reported by a region, by name, each with
    /// its targets, newest rollout and its machines per region.
    func services(_ db: PGConnection) throws -> Slipway_V1_ServiceList {
        let reports = try regionReports(db)
        var names = Set(try db.query("SELECT DISTINCT service FROM targets").rows.map { try $0.string("service") })
        for report in reports {
            names.formUnion(report.counts.map(\.service))
            names.formUnion(report.failures.map(\.service))
            names.formUnion(report.missing.map(\.service))
        }
        var list = Slipway_V1_ServiceList()
        list.services = try names.filter { !$0.isEmpty }.sorted().map { service in
            var status = Slipway_V1_ServiceStatus()
            status.service = service
            status.targets = try targets(db, service: service)
            status.regions = reports.map { $0.only(service) }
            status.rollouts = try rollouts(db, service: service, limit: 1).map { $0.status() }
            return status
        }
        return list
    }

    /// Whether `service` has a target, or a machine of any region reported it.
    func isKnown(_ db: PGConnection, service: String) throws -> Bool {
        if try db.query("SELECT EXISTS (SELECT 1 FROM targets WHERE service = $1) AS known", [.text(service)]).first?.bool("known") == true {
            return true
        }
        return try regionReports(db).contains { report in
            report.counts.contains { $0.service == service } || report.failures.contains { $0.service == service }
                || report.missing.contains { $0.service == service }
        }
    }
}
