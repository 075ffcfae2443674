import Foundation
import SlipwayArtifact
import SlipwayProto
import SlipwayStore

/// The coordinator's transactions. Each runs in one PostgreSQL transaction that
/// writes the state change and its outbox events together, and returns the events
/// to publish once it has committed.
struct CoordinatorQueries {
    let defaultMaxAttempts: Int
    let defaultTimeoutSeconds: Int
    /// Back-off before attempt n+1 is `retryBackoff * 2^(n-1)`, capped at 5 minutes.
    let retryBackoff: Duration
    /// Every region an artifact must reach before it is deployable; empty means
    /// its origin region alone.
    var regions: [String] = []

    // MARK: submission

    func submit(_ db: PGConnection, _ request: Slipway_V1_SubmitBuild) throws -> (Slipway_V1_SubmitBuildAck, [OutboxEvent]) {
        try db.transaction { db in
            let job = NewJob(
                idempotencyKey: request.idempotencyKey, repoURL: request.repoURL, commitSHA: request.commit,
                artifactName: request.artifactName, recipe: request.recipe, artifactPath: request.artifactPath,
                labels: request.labels,
                maxAttempts: request.maxAttempts == 0 ? defaultMaxAttempts : Int(request.maxAttempts),
                timeoutSeconds: request.timeoutSeconds == 0 ? defaultTimeoutSeconds : Int(request.timeoutSeconds),
                fresh: request.fresh)
            let (record, duplicate) = try JobQueue.enqueue(db, job)
            var ack = Slipway_V1_SubmitBuildAck()
            ack.jobID = record.id
            ack.duplicate = duplicate
            ack.status = record.status.proto
            if duplicate {
                ack.cacheHit = try jobInfo(db, id: record.id)?.cacheHit ?? false
                return (ack, [])
            }
            if !request.fresh, SubmissionValidator.isFullSHA(request.commit),
               let digest = try cachedArtifact(db, request) {
                try db.query("""
                    UPDATE jobs SET status = 'succeeded', cache_hit = true, artifact_digest = $2,
                                    started_at = now(), finished_at = now()
                    WHERE id = $1
                    """, [.text(record.id), .text(digest)])
                ack.status = .succeeded
                ack.cacheHit = true
                let info = try jobInfo(db, id: record.id)!
                return (ack, [try OutboxEvent.append(db, .jobSucceeded, jobID: record.id, digest: digest, payload: info)])
            }
            let info = try jobInfo(db, id: record.id)!
            return (ack, [try OutboxEvent.append(db, .jobQueued, jobID: record.id, payload: info)])
        }
    }

    private func cachedArtifact(_ db: PGConnection, _ request: Slipway_V1_SubmitBuild) throws -> String? {
        try db.query("""
            SELECT j.artifact_digest FROM jobs j JOIN artifacts a ON a.digest = j.artifact_digest
            WHERE j.status = 'succeeded' AND j.repo_url = $1 AND j.commit_sha = $2 AND j.recipe = $3
              AND j.artifact_path = $4 AND j.artifact_name = $5
            ORDER BY j.finished_at DESC LIMIT 1
            """, [.text(request.repoURL), .text(request.commit), .text(request.recipe),
                  .text(request.artifactPath), .text(request.artifactName)]).first?.optionalString("artifact_digest")
    }

    // MARK: dispatch

    func claim(_ db: PGConnection, worker: WorkerRegistry.Worker, limit: Int) throws -> ([ClaimedJob], [OutboxEvent]) {
        try db.transaction { db in
            let claimed = try JobQueue.claim(db, workerID: worker.id, workerLabels: worker.labels, limit: limit)
            guard !claimed.isEmpty else { return ([], []) }
            var events: [OutboxEvent] = []
            for job in claimed {
                events.append(try OutboxEvent.append(db, .jobStarted, jobID: job.id, payload: startedInfo(job, worker: worker.id)))
            }
            return (claimed, events)
        }
    }

    /// Applies a worker's result, fenced by (job, attempt).
    /// - Returns: whether fencing accepted it, and the events.
    func finish(_ db: PGConnection, _ result: Slipway_V1_BuildResult) throws -> (accepted: Bool, events: [OutboxEvent]) {
        try db.transaction { db in
            let attempt = Int(result.attempt)
            switch result.outcome {
            case .succeeded:
                let manifest = result.manifest
                guard (try? Manifest.validate(manifest)) != nil, manifest.digest == result.artifactDigest else {
                    return try fail(db, result, error: "worker reported an invalid artifact manifest", retryable: true)
                }
                guard try JobQueue.complete(db, jobID: result.jobID, attempt: attempt, artifactDigest: manifest.digest) else {
                    return (false, [])
                }
                try db.query("""
                    INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, job_id, origin_region)
                    VALUES ($1, $2, $3, $4, $5, $6::uuid, $7)
                    ON CONFLICT (digest) DO NOTHING
                    """, [.text(manifest.digest), .text(manifest.name), .int(manifest.size), .int(manifest.pieceSize),
                          .bytes(manifest.pieceSha256.flatMap { Array($0) }), .text(result.jobID), .text(result.region)])
                let info = try jobInfo(db, id: result.jobID)!
                var published = manifest
                published.jobID = result.jobID
                published.originRegion = result.region
                return (true, [
                    try OutboxEvent.append(db, .jobSucceeded, jobID: result.jobID, digest: manifest.digest, payload: info),
                    try OutboxEvent.append(db, .artifactPublished, jobID: result.jobID, digest: manifest.digest,
                                           region: result.region, payload: published),
                ] + (try recordPublished(db, published, origin: result.region)))
            case .cancelled:
                guard try JobQueue.finishCancelled(db, jobID: result.jobID, attempt: attempt) else { return (false, []) }
                let info = try jobInfo(db, id: result.jobID)!
                return (true, [try OutboxEvent.append(db, .jobCancelled, jobID: result.jobID, payload: info)])
            case .retryable:
                return try fail(db, result, error: result.error, retryable: true)
            case .timedOut, .failed, .unspecified, .UNRECOGNIZED:
                return try fail(db, result, error: result.error.isEmpty ? "build failed" : result.error, retryable: false)
            }
        }
    }

    private func fail(_ db: PGConnection, _ result: Slipway_V1_BuildResult, error: String, retryable: Bool) throws -> (accepted: Bool, events: [OutboxEvent]) {
        guard let status = try JobQueue.fail(db, jobID: result.jobID, attempt: Int(result.attempt), error: error,
                                             retryable: retryable, backoff: backoff(after: Int(result.attempt))) else {
            return (false, [])
        }
        return (true, [try statusEvent(db, jobID: result.jobID, status: status)])
    }

    /// Requeues (or fails, past max attempts) the attempts a lost worker was running.
    func requeue(_ db: PGConnection, lost attempts: [JobAttempt], reason: String) throws -> [OutboxEvent] {
        try db.transaction { db in
            var events: [OutboxEvent] = []
            for job in attempts {
                if let status = try JobQueue.fail(db, jobID: job.jobID, attempt: job.attempt, error: reason,
                                                  retryable: true, backoff: backoff(after: job.attempt)) {
                    events.append(try statusEvent(db, jobID: job.jobID, status: status))
                }
            }
            return events
        }
    }

    /// Fails running attempts past their absolute deadline.
    /// - Returns: the attempts to abort on their workers, and the events.
    func expireOverdue(_ db: PGConnection) throws -> ([JobAttempt], [OutboxEvent]) {
        try db.transaction { db in
            let overdue = try db.query("""
                SELECT id, attempt, timeout_seconds FROM jobs
                WHERE status = 'running' AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT 100
                """).rows
            var aborted: [JobAttempt] = [], events: [OutboxEvent] = []
            for row in overdue {
                let job = JobAttempt(jobID: try row.string("id"), attempt: try row.int("attempt"))
                let error = "timed out: build exceeded \(try row.int("timeout_seconds")) s"
                if let status = try JobQueue.fail(db, jobID: job.jobID, attempt: job.attempt, error: error, retryable: false) {
                    aborted.append(job)
                    events.append(try statusEvent(db, jobID: job.jobID, status: status))
                }
            }
            return (aborted, events)
        }
    }

    func cancel(_ db: PGConnection, jobID: String, reason: String) throws -> (JobStatus?, [OutboxEvent]) {
        try db.transaction { db in
            guard let before = try JobQueue.job(db, id: jobID)?.status,
                  let after = try JobQueue.cancel(db, jobID: jobID, reason: reason) else { return (nil, []) }
            // A queued job ends here; a running one ends when its worker confirms.
            let events = before == .queued ? [try statusEvent(db, jobID: jobID, status: after)] : []
            return (after, events)
        }
    }

    /// Running attempts per worker, for adopting workers after a (re)start.
    func runningByWorker(_ db: PGConnection) throws -> [String: Set<JobAttempt>] {
        var result: [String: Set<JobAttempt>] = [:]
        for row in try db.query("SELECT id, attempt, worker_id FROM jobs WHERE status = 'running'").rows {
            result[try row.string("worker_id"), default: []].insert(JobAttempt(jobID: try row.string("id"), attempt: try row.int("attempt")))
        }
        return result
    }

    // MARK: logs

    /// Stores a log chunk if its attempt is still the job's running one.
    /// - Returns: false when fencing rejected it (the worker must stop).
    func appendLog(_ db: PGConnection, _ chunk: Slipway_V1_LogChunk, bytes: [UInt8]) throws -> Bool {
        let row = try db.query("""
            WITH live AS (
                SELECT id FROM jobs WHERE id::text = $1 AND attempt = $2 AND status = 'running'
            ), stored AS (
                INSERT INTO job_logs (job_id, attempt, seq, byte_offset, stream, data)
                SELECT id, $2, $3, $4, $5, $6 FROM live
                ON CONFLICT (job_id, attempt, seq) DO NOTHING
                RETURNING 1
            )
            SELECT count(*) AS live FROM live
            """, [.text(chunk.jobID), .int(chunk.attempt), .int(chunk.sequence), .int(chunk.offset),
                  .int(chunk.stream.rawValue), .bytes(bytes)]).first
        return try row?.int("live") == 1
    }

    /// Log bytes of the job's latest attempt from `offset`, at most about `maxBytes`.
    func readLog(_ db: PGConnection, jobID: String, offset: UInt64, maxBytes: Int) throws -> (Slipway_V1_LogData, [UInt8])? {
        guard UUID(uuidString: jobID) != nil, let info = try jobInfo(db, id: jobID) else { return nil }
        let rows = try db.query("""
            SELECT byte_offset, data FROM job_logs
            WHERE job_id = $1::uuid AND attempt = $2 AND byte_offset + length(data) > $3
            ORDER BY seq LIMIT 64
            """, [.text(jobID), .int(info.attempt), .int(offset)]).rows
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
        header.attempt = info.attempt
        header.offset = offset
        header.status = info.status
        let terminal = [.succeeded, .failed, .cancelled].contains(info.status)
        header.complete = terminal && rows.count == 0
        return (header, bytes)
    }

    /// The JobInfo of a job just claimed, from what the claim returned (no read-back).
    private func startedInfo(_ job: ClaimedJob, worker: String) -> Slipway_V1_JobInfo {
        var info = Slipway_V1_JobInfo()
        info.jobID = job.id
        info.status = .running
        info.repoURL = job.repoURL
        info.commit = job.commitSHA
        info.artifactName = job.artifactName
        info.attempt = UInt32(job.attempt)
        info.workerID = worker
        info.recipe = job.recipe
        return info
    }

    // MARK: queries

    func jobInfo(_ db: PGConnection, id: String) throws -> Slipway_V1_JobInfo? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try db.query("SELECT \(Self.infoColumns) FROM jobs WHERE id = $1::uuid", [.text(id)]).first.map(Self.info)
    }

    /// Artifacts with their provenance and per-region replica status: one by
    /// digest, or the newest (of one name, or of all).
    func artifacts(_ db: PGConnection, _ query: Slipway_V1_ArtifactQuery) throws -> Slipway_V1_ArtifactList {
        let limit = query.limit == 0 ? 20 : min(Int(query.limit), 500)
        let rows = try db.query("""
            SELECT a.digest, a.name, a.size, a.piece_size, coalesce(a.job_id::text, '') AS job_id, a.origin_region,
                   coalesce(j.repo_url, '') AS repo_url, coalesce(j.commit_sha, '') AS commit_sha, coalesce(j.recipe, '') AS recipe,
                   (extract(epoch FROM a.created_at) * 1000000)::bigint AS created_us,
                   coalesce((extract(epoch FROM a.deployable_at) * 1000000)::bigint, 0) AS deployable_us
            FROM artifacts a LEFT JOIN jobs j ON j.id = a.job_id
            WHERE ($1 = '' OR a.digest = $1) AND ($2 = '' OR a.name = $2)
            ORDER BY a.created_at DESC LIMIT $3
            """, [.text(query.digest), .text(query.name), .int(limit)]).rows
        var list = Slipway_V1_ArtifactList()
        for row in rows {
            var info = Slipway_V1_ArtifactInfo()
            info.digest = try row.string("digest")
            info.name = try row.string("name")
            info.size = UInt64(try row.int("size"))
            info.pieceSize = UInt32(try row.int("piece_size"))
            info.jobID = try row.string("job_id")
            info.originRegion = try row.string("origin_region")
            info.repoURL = try row.string("repo_url")
            info.commit = try row.string("commit_sha")
            info.recipe = try row.string("recipe")
            info.createdAtUnixMicros = Int64(try row.int("created_us"))
            info.deployableAtUnixMicros = Int64(try row.int("deployable_us"))
            let count = Manifest.pieceCount(size: info.size, pieceSize: info.pieceSize)
            info.replicas = try db.query("""
                SELECT region, status::text AS status, pieces_done, coalesce(error, '') AS error
                FROM replicas WHERE artifact_digest = $1 ORDER BY region
                """, [.text(info.digest)]).rows.map { replica in
                var status = Slipway_V1_ReplicationStatus()
                status.digest = info.digest
                status.region = try replica.string("region")
                status.state = Slipway_V1_ReplicaState(sqlValue: try replica.string("status"))
                status.piecesDone = UInt32(try replica.int("pieces_done"))
                status.piecesTotal = UInt32(count)
                status.error = try replica.string("error")
                return status
            }
            list.artifacts.append(info)
        }
        return list
    }

    func listJobs(_ db: PGConnection, _ query: Slipway_V1_JobListQuery) throws -> Slipway_V1_JobList {
        let status = JobStatus(query.status)
        let limit = query.limit == 0 ? 20 : min(Int(query.limit), 500)
        let rows = try db.query("""
            SELECT \(Self.infoColumns) FROM jobs
            WHERE ($1::job_status IS NULL OR status = $1::job_status) AND ($2 = '' OR artifact_name = $2)
            ORDER BY created_at DESC LIMIT $3
            """, [.optional(status?.rawValue), .text(query.artifactName), .int(limit)]).rows
        var list = Slipway_V1_JobList()
        list.jobs = try rows.map(Self.info)
        return list
    }

    func backoff(after attempt: Int) -> Duration {
        let factor = 1 << min(max(attempt - 1, 0), 16)
        return min(retryBackoff * factor, .seconds(300))
    }

    private func statusEvent(_ db: PGConnection, jobID: String, status: JobStatus) throws -> OutboxEvent {
        let info = try jobInfo(db, id: jobID)!
        let type: Slipway_V1_EventType = switch status {
        case .queued: .jobRequeued
        case .running: .jobStarted
        case .succeeded: .jobSucceeded
        case .failed: .jobFailed
        case .cancelled: .jobCancelled
        }
        return try OutboxEvent.append(db, type, jobID: jobID, payload: info)
    }

    static let infoColumns = """
        id, status, repo_url, commit_sha, artifact_name, attempt, max_attempts, worker_id, error, artifact_digest,
        cache_hit, recipe,
        (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
        coalesce((extract(epoch FROM started_at) * 1000000)::bigint, 0) AS started_us,
        coalesce((extract(epoch FROM finished_at) * 1000000)::bigint, 0) AS finished_us
        """

    static func info(_ row: PGRow) throws -> Slipway_V1_JobInfo {
        var info = Slipway_V1_JobInfo()
        info.jobID = try row.string("id")
        info.status = (JobStatus(rawValue: try row.string("status")) ?? .failed).proto
        info.repoURL = try row.string("repo_url")
        info.commit = try row.string("commit_sha")
        info.artifactName = try row.string("artifact_name")
        info.attempt = UInt32(try row.int("attempt"))
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

extension JobStatus {
    var proto: Slipway_V1_JobStatus {
        switch self {
        case .queued: .queued
        case .running: .running
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        }
    }

    init?(_ proto: Slipway_V1_JobStatus) {
        switch proto {
        case .queued: self = .queued
        case .running: self = .running
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        default: return nil
        }
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
