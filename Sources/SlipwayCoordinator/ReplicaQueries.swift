import Foundation
import SlipwayArtifact
import SlipwayProto
import SlipwayStore

/// Replica bookkeeping, deployability and garbage collection: the SQL the
/// coordinator runs for the replication half of the system.
extension CoordinatorQueries {
    /// Applies a successful result in one statement: the job ends `succeeded`
    /// (fenced like `JobQueue.complete`: this attempt, still running), its
    /// artifact is recorded, with a replica row per configured region (complete
    /// in the origin, pending elsewhere), deployable at once when no other region
    /// needs it. A fenced-out result changes nothing. Runs inside the caller's
    /// transaction; one round trip instead of one per table (and per region).
    /// - Returns: whether it was applied, and the events.
    func succeed(_ db: PGConnection, _ result: Slipway_V1_BuildResult,
                 _ manifest: Slipway_V1_ArtifactManifest) throws -> (accepted: Bool, events: [OutboxEvent]) {
        let origin = result.region
        // Each region once: two rows with one key in one ON CONFLICT DO UPDATE would fail the statement.
        let everywhere = regions.reduce(into: [origin]) { list, region in if !list.contains(region) { list.append(region) } }
        let deployableAtOnce = regions.allSatisfy { $0 == origin }
        let rows = try db.query("""
            WITH done AS (
                UPDATE jobs SET status = 'succeeded', finished_at = now(), artifact_digest = $3, error = NULL,
                                resolved_sha = coalesce($12::text, resolved_sha), build_env = coalesce($13::jsonb, build_env)
                WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
                RETURNING \(Self.infoColumns)
            ),
            stored AS (
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, piece_lengths, block_size, piece_roots, job_id,
                                       origin_region, deployable_at)
                SELECT $3::text, $4::text, $5::bigint, $6::integer, $7::bytea, $14::bytea, $15::integer, $16::bytea, $1::uuid,
                       $8::text, CASE WHEN $9::boolean THEN now() END
                FROM done
                ON CONFLICT (digest) DO NOTHING
                RETURNING deployable_at IS NOT NULL AS deployable
            ),
            copies AS (
                INSERT INTO replicas (artifact_digest, region, status, pieces_done)
                SELECT $3::text, r.region, CASE WHEN r.region = $8::text THEN 'complete' ELSE 'pending' END::replica_status,
                       CASE WHEN r.region = $8::text THEN $10::integer ELSE 0 END
                FROM done, unnest($11::text[]) AS r(region)
                ON CONFLICT (artifact_digest, region) DO UPDATE
                    SET status = 'complete', pieces_done = EXCLUDED.pieces_done, error = NULL, updated_at = now()
                    WHERE EXCLUDED.status = 'complete'
                RETURNING region
            )
            SELECT done.*, (SELECT count(*) FROM stored) AS inserted,
                   coalesce((SELECT bool_or(deployable) FROM stored), false) AS deployable_now,
                   (SELECT count(*) FROM copies) AS copies
            FROM done
            """, [.text(result.jobID), .int(Int(result.attempt)), .text(manifest.digest), .text(manifest.name), .int(manifest.size),
                  .int(manifest.pieceSize), .bytes(Self.packed(manifest.pieceSha256)), .text(origin),
                  .bool(deployableAtOnce), .int(manifest.pieceSha256.count), PGBind.textArray(everywhere),
                  .optional(SubmissionValidator.isFullSHA(result.commit) ? result.commit : nil), .optional(Self.environmentJSON(result)),
                  Self.packedLengths(manifest), .int(manifest.blockSize), Self.packedRoots(manifest)])
        guard let row = rows.first else { return (false, []) }
        var published = manifest
        if try row.int("inserted") == 0, let recorded = try self.manifest(db, digest: manifest.digest) {
            // Built before (perhaps cut otherwise, by an older worker): regions copy the pieces as recorded.
            published.pieceSize = recorded.pieceSize
            published.pieceSha256 = recorded.pieceSha256
            published.pieceLength = recorded.pieceLength
            published.blockSize = recorded.blockSize
            published.pieceRoot = recorded.pieceRoot
        }
        published.jobID = result.jobID
        published.originRegion = origin
        var events = [
            try OutboxEvent.make(.jobSucceeded, jobID: result.jobID, digest: manifest.digest, payload: try Self.info(row)),
            try OutboxEvent.make(.artifactPublished, jobID: result.jobID, digest: manifest.digest, region: origin, payload: published),
        ]
        if try row.bool("deployable_now") {
            events.append(try OutboxEvent.make(.artifactDeployable, digest: manifest.digest, region: origin, payload: published))
        } else if try row.int("inserted") == 0 {
            // Built before: its other replicas may all be complete already.
            events += try markDeployableIfReplicated(db, digest: manifest.digest)
        }
        return (true, events)
    }

    /// Applies a region's replication report.
    /// - Returns: the replica as now recorded (nil if the artifact is unknown, e.g.
    ///   collected), and the events: `artifact.replica` when it became complete,
    ///   `artifact.deployable` when that made every region complete.
    func recordReplica(_ db: PGConnection, _ report: Slipway_V1_ReplicationStatus) throws -> (Slipway_V1_ReplicationStatus?, [OutboxEvent]) {
        try db.transaction { db in
            guard let pieceCount = try db.query("SELECT length(piece_sha256) / 32 AS pieces FROM artifacts WHERE digest = $1 FOR SHARE",
                                                [.text(report.digest)]).first.map({ try $0.int("pieces") }) else { return (nil, []) }
            let state = report.state.sqlValue
            let done = report.state == .complete ? pieceCount : min(Int(report.piecesDone), pieceCount)
            // A complete replica only goes back on an explicit failure report (a region lost its copy).
            let previous = try db.query("""
                SELECT status::text AS status FROM replicas WHERE artifact_digest = $1 AND region = $2 FOR UPDATE
                """, [.text(report.digest), .text(report.region)]).first.map { try $0.string("status") }
            guard previous != "complete" || report.state == .failed else {
                var recorded = report
                recorded.state = .complete
                recorded.piecesDone = UInt32(pieceCount)
                recorded.piecesTotal = UInt32(pieceCount)
                recorded.error = ""
                return (recorded, [])
            }
            try db.query("""
                INSERT INTO replicas (artifact_digest, region, status, pieces_done, error)
                VALUES ($1, $2, $3::replica_status, $4, nullif($5, ''))
                ON CONFLICT (artifact_digest, region)
                DO UPDATE SET status = $3::replica_status, pieces_done = $4, error = nullif($5, ''), updated_at = now()
                """, [.text(report.digest), .text(report.region), .text(state), .int(done), .text(String(report.error.prefix(1_000)))])
            var recorded = report
            recorded.piecesDone = UInt32(done)
            recorded.piecesTotal = UInt32(pieceCount)
            guard report.state == .complete else { return (recorded, []) }
            var events = [try OutboxEvent.make(.replicaComplete, digest: report.digest, region: report.region, payload: recorded)]
            events += try markDeployableIfReplicated(db, digest: report.digest)
            return (recorded, events)
        }
    }

    /// Sets `deployable_at` once every configured region (or, with none configured,
    /// the origin) holds a complete replica, and writes `artifact.deployable`.
    func markDeployableIfReplicated(_ db: PGConnection, digest: String) throws -> [OutboxEvent] {
        let updated = try db.query("""
            UPDATE artifacts a SET deployable_at = now()
            WHERE a.digest = $1 AND a.deployable_at IS NULL
              AND NOT EXISTS (
                SELECT 1 FROM unnest(CASE WHEN $2 = '' THEN ARRAY[a.origin_region] ELSE string_to_array($2, ',') END) AS r(region)
                WHERE NOT EXISTS (SELECT 1 FROM replicas p WHERE p.artifact_digest = a.digest AND p.region = r.region AND p.status = 'complete'))
            RETURNING a.digest, a.name, a.size, a.piece_size, a.piece_sha256, a.piece_lengths, a.block_size, a.piece_roots,
                      coalesce(a.job_id::text, '') AS job_id, a.origin_region
            """, [.text(digest), .text(regions.joined(separator: ","))])
        guard let row = updated.first else { return [] }
        let manifest = try Self.manifest(row)
        return [try OutboxEvent.make(.artifactDeployable, digest: digest, region: manifest.originRegion, payload: manifest)]
    }

    /// The manifest of a recorded artifact, rebuilt from its row.
    func manifest(_ db: PGConnection, digest: String) throws -> Slipway_V1_ArtifactManifest? {
        guard let row = try db.query("""
            SELECT digest, name, size, piece_size, piece_sha256, piece_lengths, block_size, piece_roots,
                   coalesce(job_id::text, '') AS job_id, origin_region
            FROM artifacts WHERE digest = $1
            """, [.text(digest)]).first else { return nil }
        return try Self.manifest(row)
    }

    /// A manifest from an `artifacts` row (digest, name, size, piece_size, piece_sha256, piece_lengths, block_size,
    /// piece_roots, job_id, origin_region).
    static func manifest(_ row: PGRow) throws -> Slipway_V1_ArtifactManifest {
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = try row.string("digest")
        manifest.name = try row.string("name")
        manifest.size = UInt64(try row.int("size"))
        manifest.pieceSize = UInt32(try row.int("piece_size"))
        manifest.pieceSha256 = Self.digests(try row.bytes("piece_sha256"))
        let lengths = try row.optionalBytes("piece_lengths") ?? []
        manifest.pieceLength = stride(from: 0, to: lengths.count - 3, by: 4).map { at in
            lengths[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        manifest.blockSize = UInt32(try row.int("block_size"))
        manifest.pieceRoot = Self.digests(try row.optionalBytes("piece_roots") ?? [])
        manifest.jobID = try row.string("job_id")
        manifest.originRegion = try row.string("origin_region")
        return manifest
    }

    /// The `piece_lengths` column for a manifest: 4 bytes big-endian per piece, or
    /// NULL for fixed-size pieces.
    static func packedLengths(_ manifest: Slipway_V1_ArtifactManifest) -> PGBind {
        guard !manifest.pieceLength.isEmpty else { return .null }
        return .bytes(manifest.pieceLength.flatMap { length in (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) } })
    }

    /// The `piece_roots` column for a manifest: its pieces' roots end to end, or NULL without blocks.
    static func packedRoots(_ manifest: Slipway_V1_ArtifactManifest) -> PGBind {
        manifest.blockSize == 0 ? .null : .bytes(packed(manifest.pieceRoot))
    }

    /// 32-byte digests end to end, as `piece_sha256` and `piece_roots` hold them.
    static func packed(_ digests: [Data]) -> [UInt8] { digests.flatMap { Array($0) } }

    /// The 32-byte digests of a `piece_sha256` or `piece_roots` column, in order.
    static func digests(_ bytes: [UInt8]) -> [Data] {
        stride(from: 0, to: bytes.count, by: 32).map { Data(bytes[$0..<min($0 + 32, bytes.count)]) }
    }

    /// Deletes up to `limit` artifacts older than `retentionSeconds` that are neither
    /// a current target (either build of a rollout's) nor the target a rollback
    /// would return to, and writes one
    /// `artifact.deleted` per artifact so every region drops its copy.
    func collectGarbage(_ db: PGConnection, retentionSeconds: Int, limit: Int) throws -> [OutboxEvent] {
        try db.transaction { db in
            let deleted = try db.query("""
                WITH protected AS (
                    SELECT artifact_digest AS digest FROM targets WHERE artifact_digest IS NOT NULL
                    UNION
                    SELECT stable_digest FROM targets WHERE stable_digest IS NOT NULL
                    UNION
                    -- What `rollback` returns to: the start of the rollout that brought a current target.
                    SELECT r.from_digest FROM rollouts r JOIN targets t ON t.service = r.service AND t.region = '' AND t.artifact_digest = r.to_digest
                    WHERE r.state = 'succeeded' AND r.from_digest IS NOT NULL
                    UNION
                    SELECT latest.from_digest FROM (
                        SELECT DISTINCT ON (service, region) from_digest FROM deployments ORDER BY service, region, id DESC
                    ) latest WHERE latest.from_digest IS NOT NULL
                ), doomed AS (
                    SELECT digest FROM artifacts
                    WHERE created_at < now() - make_interval(secs => $1)
                      AND digest NOT IN (SELECT digest FROM protected)
                    ORDER BY created_at LIMIT $2
                    FOR UPDATE SKIP LOCKED
                )
                DELETE FROM artifacts a USING doomed d WHERE a.digest = d.digest
                RETURNING a.digest, a.name, a.size, a.origin_region
                """, [.int(retentionSeconds), .int(limit)])
            let events = try deleted.rows.map { row in
                var manifest = Slipway_V1_ArtifactManifest()
                manifest.digest = try row.string("digest")
                manifest.name = try row.string("name")
                manifest.size = UInt64(try row.int("size"))
                manifest.originRegion = try row.string("origin_region")
                return try OutboxEvent.make(.artifactDeleted, digest: manifest.digest, payload: manifest)
            }
            return events
        }
    }
}

/// The `replica_status` enum in SQL, both ways, in one place.
extension Slipway_V1_ReplicaState {
    init(sqlValue: String) {
        self = switch sqlValue {
        case "complete": .complete
        case "copying": .copying
        case "failed": .failed
        default: .pending
        }
    }

    var sqlValue: String {
        switch self {
        case .complete: "complete"
        case .copying: "copying"
        case .failed: "failed"
        default: "pending"
        }
    }
}
