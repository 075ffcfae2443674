import Foundation
import Logging
import SlipwayProto
import SlipwayStore

/// A rollout as stored, with what the state machine does not need.
struct StoredRollout {
    var machine: RolloutMachine
    var setBy: String
    var actor: String?
    var createdAt: Int64
    var updatedAt: Int64
    /// The machines that failed the gate, kept from the moment it halted
    /// (machines soon report healthy again on the old build).
    var failures: [FailedMachine] = []
    /// The last operator request applied to it, so a resend is not applied twice.
    var lastRequestID: String?
}

/// A machine that failed a rollout's gate, as its region reported it.
struct FailedMachine: Codable, Equatable {
    var machine: String
    var region: String
    var digest: String
    var state: Int
    var reason: String

    init(_ status: Slipway_V1_AgentStatus) {
        machine = status.machineID
        region = status.region
        digest = status.artifactDigest
        state = status.state.rawValue
        reason = status.reason
    }

    var wire: Slipway_V1_AgentStatus {
        var status = Slipway_V1_AgentStatus()
        status.machineID = machine
        status.region = region
        status.artifactDigest = digest
        status.state = Slipway_V1_AgentState(rawValue: state) ?? .unspecified
        status.reason = reason
        return status
    }
}

/// Rollouts in PostgreSQL: the durable half of ``RolloutMachine``.
extension CoordinatorQueries {
    private static let columns = """
        id, service, from_digest, to_digest, plan::text AS plan, state, wave, waves::text AS waves, reason, holding_since, wave_version,
        set_by, actor, failures::text AS failures, last_request_id, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
        (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us
        """

    /// The database's clock in microseconds: rollouts and region reports are timed by one clock.
    func databaseNow(_ db: PGConnection) throws -> Int64 {
        Int64(try db.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now").first?.int("now") ?? 0)
    }

    /// The service's rollout that has not ended, locked for this transaction.
    func activeRollout(_ db: PGConnection, service: String) throws -> StoredRollout? {
        try db.query("""
            SELECT \(Self.columns) FROM rollouts WHERE service = $1 AND state IN ('progressing', 'paused', 'halted') FOR UPDATE
            """, [.text(service)]).rows.first.map(Self.rollout)
    }

    /// Every progressing rollout, locked for this transaction. A row that cannot be
    /// read is logged and left out, so it never stops the others.
    func progressingRollouts(_ db: PGConnection, logger: Logger) throws -> [StoredRollout] {
        try db.query("SELECT \(Self.columns) FROM rollouts WHERE state = 'progressing' ORDER BY id FOR UPDATE").rows.compactMap { row in
            do {
                return try Self.rollout(row)
            } catch {
                logger.error("a stored rollout cannot be read; it is left as it is", metadata: [
                    "rollout": "\((try? row.int("id")) ?? -1)", "error": "\(error)"])
                return nil
            }
        }
    }

    /// The service's rollout that last applied the operator request `requestID`, if any.
    func rolloutHandling(_ db: PGConnection, service: String, requestID: String) throws -> StoredRollout? {
        try db.query("SELECT \(Self.columns) FROM rollouts WHERE service = $1 AND last_request_id = $2 ORDER BY id DESC LIMIT 1",
                     [.text(service), .text(requestID)]).rows.first.map(Self.rollout)
    }

    /// The service's newest rollouts, newest first; or the one with `id`.
    func rollouts(_ db: PGConnection, service: String, id: UInt64? = nil, limit: Int) throws -> [StoredRollout] {
        if let id {
            return try db.query("SELECT \(Self.columns) FROM rollouts WHERE service = $1 AND id = $2", [.text(service), .int(id)]).rows.map(Self.rollout)
        }
        return try db.query("SELECT \(Self.columns) FROM rollouts WHERE service = $1 ORDER BY id DESC LIMIT $2",
                            [.text(service), .int(limit)]).rows.map(Self.rollout)
    }

    /// The id the next rollout will have (taken now, so the one it supersedes can name it before it exists).
    func nextRolloutID(_ db: PGConnection) throws -> UInt64 {
        UInt64(try db.query("SELECT nextval('rollouts_id_seq') AS id").first?.int("id") ?? 0)
    }

    /// A new rollout's row, with an id from ``nextRolloutID(_:)``.
    func createRollout(_ db: PGConnection, id: UInt64, service: String, from: String?, to: String, plan: RolloutPlan, setBy: String,
                       actor: String?, requestID: String?) throws {
        try db.query("""
            INSERT INTO rollouts (id, service, from_digest, to_digest, plan_name, plan, state, waves, set_by, actor, request_id)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'progressing', '[]'::jsonb, $7, $8, $9)
            """, [.int(id), .text(service), .optional(from), .text(to), .text(plan.name), .text(try Self.json(plan)), .text(setBy),
                  .optional(actor), .optional(requestID)])
    }

    /// Writes the rollout's state back.
    func save(_ db: PGConnection, _ stored: StoredRollout) throws {
        let machine = stored.machine
        try db.query("""
            UPDATE rollouts SET state = $2, wave = $3, waves = $4::jsonb, reason = $5, holding_since = $6, wave_version = $7,
                                failures = $8::jsonb, last_request_id = coalesce($9, last_request_id), updated_at = now()
            WHERE id = $1
            """, [.int(machine.id), .text(machine.state.rawValue), .int(machine.wave), .text(try Self.json(machine.waves)),
                  .text(machine.reason), .optional(machine.holdingSince.map { String($0) }), .int(machine.waveVersion),
                  .text(try Self.json(stored.failures)), .optional(stored.lastRequestID)])
    }

    /// What each region last reported about `service`'s rollout, by region.
    func regionViews(_ db: PGConnection, service: String) throws
        -> (views: [String: RegionView], failures: [Slipway_V1_AgentStatus], missing: [Slipway_V1_AgentStatus]) {
        var views: [String: RegionView] = [:]
        var failures: [Slipway_V1_AgentStatus] = []
        var missing: [Slipway_V1_AgentStatus] = []
        for report in try regionReports(db) {
            let progress = report.waves.first { $0.service == service }
            views[report.region] = RegionView(region: report.region, receivedAtMicros: report.receivedAtUnixMicros, progress: progress)
            failures += report.failures.filter { $0.service == service }
            missing += report.missing.filter { $0.service == service }
        }
        return (views, failures, missing)
    }

    /// Regions with an override of `service`: a global target does not reach them.
    func pinnedRegions(_ db: PGConnection, service: String) throws -> [String] {
        try db.query("""
            SELECT region FROM targets WHERE service = $1 AND region <> '' AND artifact_digest IS NOT NULL ORDER BY region
            """, [.text(service)]).rows.map { try $0.string("region") }
    }

    /// Every region a `*` share covers: the configured ones (a region dropped from
    /// the configuration stops counting, whatever report it left), or without
    /// configured regions, every region that ever reported.
    func knownRegions(_ db: PGConnection) throws -> [String] {
        guard regions.isEmpty else { return regions }
        // Without configured regions, one silent for a day is taken as retired, not as unseen.
        return try db.query("SELECT region FROM region_reports WHERE received_at > now() - interval '1 day' ORDER BY region")
            .rows.map { try $0.string("region") }
    }

    private static func rollout(_ row: PGRow) throws -> StoredRollout {
        let plan = try JSONDecoder().decode(RolloutPlan.self, from: Data(try row.string("plan").utf8))
        guard !plan.waves.isEmpty else { throw PGError(.queryFailed, message: "rollout \(try row.int("id")) has a plan without waves") }
        let waves = try JSONDecoder().decode([RolloutMachine.WaveRecord].self, from: Data(try row.string("waves").utf8))
        let machine = RolloutMachine(
            id: UInt64(try row.int("id")), service: try row.string("service"), from: try row.optionalString("from_digest"),
            to: try row.string("to_digest"), plan: plan, state: RolloutMachine.State(rawValue: try row.string("state")) ?? .paused,
            wave: try row.int("wave"), waves: waves, reason: try row.string("reason"),
            holdingSince: try row.optionalInt("holding_since").map(Int64.init), waveVersion: UInt64(try row.int("wave_version")))
        return StoredRollout(machine: machine, setBy: try row.string("set_by"), actor: try row.optionalString("actor"),
                             createdAt: Int64(try row.int("created_us")), updatedAt: Int64(try row.int("updated_us")),
                             failures: (try? JSONDecoder().decode([FailedMachine].self, from: Data(try row.string("failures").utf8))) ?? [],
                             lastRequestID: try row.optionalString("last_request_id"))
    }

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

extension StoredRollout {
    /// Of the regions' failing and silent machines, those failing on `digest` (failed on it or
    /// rolled back from it), and the silent ones.
    static func failing(_ digest: String, _ failures: [Slipway_V1_AgentStatus], _ missing: [Slipway_V1_AgentStatus]) -> [Slipway_V1_AgentStatus] {
        failures.filter {
            ($0.state == .failed && $0.artifactDigest == digest) || ($0.state == .rolledBack && $0.failedDigest == digest)
        } + missing
    }

    /// The rollout on the wire; with `views`, each region's latest progress and the failing machines.
    func status(views: [String: RegionView] = [:], failures: [Slipway_V1_AgentStatus] = [], missing: [Slipway_V1_AgentStatus] = [])
        -> Slipway_V1_RolloutStatus {
        var status = Slipway_V1_RolloutStatus()
        status.id = machine.id
        status.service = machine.service
        status.fromDigest = machine.from ?? ""
        status.toDigest = machine.to
        status.plan = machine.plan.name
        status.state = machine.state.wire
        status.wave = UInt32(machine.wave)
        status.reason = machine.reason
        status.setBy = setBy
        status.actor = actor ?? ""
        status.createdAtUnixMicros = createdAt
        status.updatedAtUnixMicros = updatedAt
        status.pauseOnFailure = machine.plan.pauseOnFailure
        status.prefetch = machine.plan.prefetch
        status.waveDeadlineSeconds = UInt32(clamping: machine.plan.waveDeadlineSeconds)
        status.waves = zip(machine.plan.waves, machine.waves).map { wave, record in
            var wire = Slipway_V1_RolloutWave()
            wire.shares = wave.shares.map(\.wire)
            wire.bakeSeconds = UInt32(clamping: wave.bakeSeconds)
            wire.minHealthyPerMille = UInt32(clamping: wave.minHealthyPerMille)
            wire.maxFailed = UInt32(clamping: wave.maxFailed)
            wire.result = record.result
            wire.startedAtUnixMicros = record.startedAt ?? 0
            wire.endedAtUnixMicros = record.endedAt ?? 0
            wire.detail = record.detail
            return wire
        }
        status.progress = views.keys.sorted().compactMap { region in
            guard var progress = views[region]?.progress, progress.rolloutID == machine.id else { return nil }
            progress.region = region
            progress.receivedAtUnixMicros = views[region]?.receivedAtMicros ?? 0
            return progress
        }
        // The machines that failed the gate when it halted; while it goes on, those failing now.
        status.failures = self.failures.isEmpty ? Self.failing(machine.to, failures, missing) : self.failures.map(\.wire)
        return status
    }
}
