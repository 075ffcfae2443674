import Foundation
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// What the coordinator reads for its clients: jobs, logs, artifacts, counts.
extension CoordinatorQueries {
    // MARK: logs

    /// Stores a log chunk of an attempt this worker was given (the job's current
    /// attempt number on this worker), also when the attempt has just ended: a
    /// result recorded before the chunks lost with the database were resent
    /// must not cost the log its end.
    /// - Returns: false unless the attempt is still running there (the worker must stop it).
    func appendLog(_ db: PGConnection, _ chunk: Slipway_V1_LogChunk, bytes: [UInt8], from workerID: String) throws -> Bool {
        let row = try db.query("""
            WITH attempt AS (
                SELECT id, status = 'running' AS running FROM jobs WHERE id::text = $1 AND attempt = $2 AND worker_id = $7
            ), stored AS (
                INSERT INTO job_logs (job_id, attempt, seq, byte_offset, stream, data)
                SELECT id, $2, $3, $4, $5, $6 FROM attempt
                ON CONFLICT (job_id, attempt, seq) DO NOTHING
                RETURNING 1
            )
            SELECT count(*) FILTER (WHERE running) AS live FROM attempt
            """, [.text(chunk.jobID), .int(chunk.attempt), .int(chunk.sequence), .int(chunk.offset),
                  .int(chunk.stream.rawValue), .bytes(bytes), .text(workerID)]).first
        return try row?.int("live") == 1
    }

    /// Log bytes of the job's latest attempt from `offset`, at most about `maxBytes`.
    func readLog(_ db: PGConnection, jobID: String, offset: UInt64, maxBytes: Int) throws -> (Slipway_V1_LogData, [UInt8])? {
        guard UUID(uuidString: jobID) != nil, let info = try jobInfo(db, id: jobID) else { return nil }
        let rows = try db.query("""
            SELECT byte_offset, data FROM job_logs
            WHERE job_id = $1::uuid AND attempt = $2 AND byte_offset + length(data) > $3
            ORDER BY seq LIMIT 64
            """, [.text(jobID), .int(info.fence), .int(offset)]).rows
        var bytes: [UInt8] = []
        var position = offset
        for row in rows {
            let start = UInt64(try row.int("byte_offset"))
            let data = try row.bytes("data")
            guard start <= position else { break }
            let skip = Int(position - start)
            if skip < data.count {
                bytes += data[skip...]
                position = start + UInt64(data.count)
            }
            if bytes.count >= maxBytes { break }
        }
        var header = Slipway_V1_LogData()
        header.jobID = jobID
        header.attempt = info.fence
        header.offset = offset
        header.status = info.status
        let terminal = [.succeeded, .failed, .cancelled].contains(info.status)
        header.complete = terminal && rows.count == 0
        return (header, bytes)
    }

    /// The JobInfo of a job just claimed, from what the claim returned (no read-back).
    func startedInfo(_ job: ClaimedJob, worker: String) -> Slipway_V1_JobInfo {
        var info = Slipway_V1_JobInfo()
        info.jobID = job.id
        info.status = .running
        info.repoURL = job.repoURL
        info.commit = job.commitSHA
        info.requestedCommit = job.requestedCommit
        info.artifactName = job.artifactName
        info.attempt = UInt32(job.attemptsUsed)
        info.fence = UInt32(job.attempt)
        info.workerID = worker
        info.recipe = job.recipe
        return info
    }

    // MARK: queries

    func jobInfo(_ db: PGConnection, id: String) throws -> Slipway_V1_JobInfo? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try db.query("SELECT \(Self.infoColumns) FROM jobs WHERE id = $1::uuid", [.text(id)]).first.map(Self.info)
    }

    /// The one artifact whose digest starts with `prefix` (a full digest is
    /// itself, stored or not: what uses it says what is missing).
    func resolve(_ db: PGConnection, _ prefix: DigestPrefix) throws -> Digest {
        if let full = prefix.full { return full }
        let rows = try db.query("SELECT digest FROM artifacts WHERE left(digest, length($1)) = $1 ORDER BY digest LIMIT 3",
                                [.text(prefix.rawValue)]).rows
        let matches = try rows.map { Digest(unchecked: try $0.string("digest")) }
        guard let only = matches.first else { throw Rejection(.notFound, "no artifact's digest starts with \(prefix)") }
        guard matches.count == 1 else {
            throw Rejection(.invalidArgument, "\(prefix) is the start of more than one digest (\(matches.map { "sha256:\($0.rawValue.prefix(16))" }.joined(separator: ", "))"
                            + "\(matches.count > 2 ? ", …" : "")); give more of it")
        }
        return only
    }

    /// Artifacts with their provenance and per-region replica status: one by
    /// digest, or the newest (of one name, or of all).
    func artifacts(_ db: PGConnection, digest: DigestPrefix?, name: String, limit: Int) throws -> Slipway_V1_ArtifactList {
        let rows = try db.query("""
            SELECT a.digest, a.name, a.size, a.piece_size, length(a.piece_sha256) / 32 AS pieces, a.piece_lengths IS NOT NULL AS by_content,
                   coalesce(a.job_id::text, '') AS job_id, a.origin_region,
                   coalesce(j.repo_url, '') AS repo_url, coalesce(j.resolved_sha, j.commit_sha, '') AS commit_sha, coalesce(j.recipe, '') AS recipe,
                   (extract(epoch FROM a.created_at) * 1000000)::bigint AS created_us,
                   coalesce((extract(epoch FROM a.deployable_at) * 1000000)::bigint, 0) AS deployable_us
            FROM artifacts a LEFT JOIN jobs j ON j.id = a.job_id
            WHERE ($1 = '' OR a.digest = $1 OR (length($1) < 64 AND left(a.digest, length($1)) = $1)) AND ($2 = '' OR a.name = $2)
            ORDER BY a.created_at DESC LIMIT $3
            """, [.text(digest?.rawValue ?? ""), .text(name), .int(limit)]).rows
        var list = Slipway_V1_ArtifactList()
        for row in rows {
            var info = Slipway_V1_ArtifactInfo()
            info.digest = try row.string("digest")
            info.name = try row.string("name")
            info.size = UInt64(try row.int("size"))
            info.pieceSize = UInt32(try row.int("piece_size"))
            info.pieceCount = UInt32(try row.int("pieces"))
            info.piecesByContent = try row.bool("by_content")
            info.jobID = try row.string("job_id")
            info.originRegion = try row.string("origin_region")
            info.repoURL = try row.string("repo_url")
            info.commit = try row.string("commit_sha")
            info.recipe = try row.string("recipe")
            info.createdAtUnixMicros = Int64(try row.int("created_us"))
            info.deployableAtUnixMicros = Int64(try row.int("deployable_us"))
            let count = info.pieceCount
            info.replicas = try db.query("""
                SELECT region, status::text AS status, pieces_done, coalesce(error, '') AS error
                FROM replicas WHERE artifact_digest = $1 ORDER BY region
                """, [.text(info.digest)]).rows.map { replica in
                var status = Slipway_V1_ReplicationStatus()
                status.digest = info.digest
                status.region = try replica.string("region")
                status.state = Slipway_V1_ReplicaState(sqlValue: try replica.string("status"))
                status.piecesDone = UInt32(try replica.int("pieces_done"))
                status.piecesTotal = count
                status.error = try replica.string("error")
                return status
            }
            list.artifacts.append(info)
        }
        return list
    }

    func listJobs(_ db: PGConnection, status: JobStatus?, artifactName: String, limit: Int) throws -> Slipway_V1_JobList {
        let rows = try db.query("""
            SELECT \(Self.infoColumns) FROM jobs
            WHERE ($1::job_status IS NULL OR status = $1::job_status) AND ($2 = '' OR artifact_name = $2)
            ORDER BY created_at DESC LIMIT $3
            """, [.optional(status?.rawValue), .text(artifactName), .int(limit)]).rows
        var list = Slipway_V1_JobList()
        // A build environment is up to 2 MiB; 500 of them would outgrow a reply. `job ID` shows it.
        list.jobs = try rows.map { row in
            var info = try Self.info(row)
            info.environment = []
            return info
        }
        return list
    }


    func statusEvent(_ db: PGConnection, jobID: String, status: JobStatus) throws -> OutboxEvent {
        let info = try jobInfo(db, id: jobID)!
        let type: Slipway_V1_EventType = switch status {
        case .queued: .jobRequeued
        case .running: .jobStarted
        case .succeeded: .jobSucceeded
        case .failed: .jobFailed
        case .cancelled: .jobCancelled
        }
        return try OutboxEvent.make(type, jobID: jobID, payload: info)
    }

    static let infoColumns = """
        id, status, repo_url, coalesce(resolved_sha, commit_sha) AS commit_sha, commit_sha AS requested_commit, artifact_name,
        coalesce(build_env, '[]')::text AS build_env, coalesce(submitted_by, '') AS submitted_by, labels::text AS labels,
        attempt, attempt - attempts_unused AS attempts_used, max_attempts,
        worker_id, error, artifact_digest,
        cache_hit, recipe,
        (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
        coalesce((extract(epoch FROM started_at) * 1000000)::bigint, 0) AS started_us,
        coalesce((extract(epoch FROM finished_at) * 1000000)::bigint, 0) AS finished_us
        """

    static func info(_ row: PGRow) throws -> Slipway_V1_JobInfo {
        var info = Slipway_V1_JobInfo()
        info.jobID = try row.string("id")
        info.status = (JobStatus(rawValue: try row.string("status")) ?? .failed).wire
        info.repoURL = try row.string("repo_url")
        info.commit = try row.string("commit_sha")
        info.requestedCommit = try row.string("requested_commit")
        // Most jobs have neither labels nor a recorded environment yet, and a JSONDecoder costs more than the rest of the row.
        let environment = try row.string("build_env")
        info.environment = environment == "[]" ? [] : (try? JSONDecoder().decode([String].self, from: Data(environment.utf8))) ?? []
        info.submittedBy = try row.string("submitted_by")
        let labelsText = try row.string("labels")
        let labels = labelsText == "{}" ? [:] : (try? JSONDecoder().decode([String: String].self, from: Data(labelsText.utf8))) ?? [:]
        info.labels = labels.keys.sorted().map { "\($0)=\(labels[$0]!)" }
        info.artifactName = try row.string("artifact_name")
        info.attempt = UInt32(try row.int("attempts_used"))
        info.fence = UInt32(try row.int("attempt"))
        info.maxAttempts = UInt32(try row.int("max_attempts"))
        info.workerID = try row.optionalString("worker_id") ?? ""
        info.error = try row.optionalString("error") ?? ""
        info.artifactDigest = try row.optionalString("artifact_digest") ?? ""
        info.cacheHit = try row.bool("cache_hit")
        info.recipe = try row.string("recipe")
        info.createdAtUnixMicros = Int64(try row.int("created_us"))
        info.startedAtUnixMicros = Int64(try row.int("started_us"))
        info.finishedAtUnixMicros = Int64(try row.int("finished_us"))
        return info
    }
}

extension CoordinatorQueries {
    /// Queued and running jobs (0 when none): the metrics' gauges. Finished
    /// states are left out: counting them scans all history, every few seconds.
    func jobCounts(_ db: PGConnection) throws -> [(String, Int)] {
        try db.query("""
            SELECT (SELECT count(*) FROM jobs WHERE status = 'queued') AS queued,
                   (SELECT count(*) FROM jobs WHERE status = 'running') AS running
            """).rows.flatMap { [("queued", try $0.int("queued")), ("running", try $0.int("running"))] }
    }
}
