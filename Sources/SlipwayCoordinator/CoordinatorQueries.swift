import SlipwayAuth
import Foundation
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayWire

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
    /// Signs every target change (nil: the coordinator runs `--insecure`, and changes go unsigned).
    var signer: Certificate.SigningKey?

    // MARK: submission

    func submit(_ db: PGConnection, _ request: Slipway_V1_SubmitBuild, by submitter: String?) throws -> (Slipway_V1_SubmitBuildAck, [OutboxEvent]) {
        try db.transaction { db in
            let job = NewJob(
                idempotencyKey: request.idempotencyKey, repoURL: request.repoURL, commitSHA: request.commit,
                artifactName: request.artifactName, recipe: request.recipe, artifactPath: request.artifactPath,
                labels: request.labels,
                maxAttempts: request.maxAttempts == 0 ? defaultMaxAttempts : Int(request.maxAttempts),
                timeoutSeconds: request.timeoutSeconds == 0 ? defaultTimeoutSeconds : Int(request.timeoutSeconds),
                fresh: request.fresh)
            // The new job's JobInfo comes back from the insert itself: one round trip, not two.
            let inserted = try db.query("""
                INSERT INTO jobs (idempotency_key, repo_url, commit_sha, artifact_name, recipe, artifact_path,
                                  labels, max_attempts, timeout_seconds, fresh, submitted_by, resolved_sha)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING \(Self.infoColumns)
                """, [.text(job.idempotencyKey), .text(job.repoURL), .text(job.commitSHA), .text(job.artifactName),
                      .text(job.recipe), .text(job.artifactPath), .text(try JobQueue.encodeLabels(job.labels)), .int(job.maxAttempts),
                      .int(job.timeoutSeconds), .bool(job.fresh), .optional(submitter),
                      .optional(SubmissionValidator.isFullSHA(job.commitSHA) ? job.commitSHA : nil)]).first.map(Self.info)
            var ack = Slipway_V1_SubmitBuildAck()
            guard let info = inserted else {
                let existing = try existingJob(db, job)
                ack.jobID = existing.jobID
                ack.duplicate = true
                ack.status = existing.status
                ack.cacheHit = existing.cacheHit
                return (ack, [])
            }
            let record = (id: info.jobID, status: JobStatus.queued)
            ack.jobID = record.id
            ack.status = record.status.wire
            if !request.fresh, let cached = try cachedArtifact(db, request) {
                try db.query("""
                    UPDATE jobs SET status = 'succeeded', cache_hit = true, artifact_digest = $2, resolved_sha = $3,
                                    started_at = now(), finished_at = now()
                    WHERE id = $1
                    """, [.text(record.id), .text(cached.digest), .text(cached.commit)])
                ack.status = .succeeded
                ack.cacheHit = true
                let info = try jobInfo(db, id: record.id)!
                return (ack, [try OutboxEvent.make(.jobSucceeded, jobID: record.id, digest: cached.digest, payload: info)])
            }
            return (ack, [try OutboxEvent.make(.jobQueued, jobID: record.id, payload: info)])
        }
    }

    /// The job an idempotency key already names. A retry must ask for the same
    /// build: a key reused for a different one is refused, naming what differs,
    /// rather than answered with the old job as if it were the new one.
    private func existingJob(_ db: PGConnection, _ job: NewJob) throws -> Slipway_V1_JobInfo {
        let row = try db.query("""
            SELECT \(Self.infoColumns),
                   array_to_string(ARRAY[
                       CASE WHEN repo_url <> $2 THEN 'repo' END,
                       CASE WHEN commit_sha <> $3 THEN 'commit' END,
                       CASE WHEN artifact_name <> $4 THEN 'artifact name' END,
                       CASE WHEN recipe <> $5 THEN 'recipe' END,
                       CASE WHEN artifact_path <> $6 THEN 'artifact path' END,
                       CASE WHEN labels <> $7::jsonb THEN 'labels' END], ', ') AS differs
            FROM jobs WHERE idempotency_key = $1
            """, [.text(job.idempotencyKey), .text(job.repoURL), .text(job.commitSHA), .text(job.artifactName), .text(job.recipe),
                  .text(job.artifactPath), .text(try JobQueue.encodeLabels(job.labels))]).first
        guard let row else { throw PGError(.badResult, message: "the job with idempotency key \(job.idempotencyKey) vanished") }
        let info = try Self.info(row)
        let differs = try row.string("differs")
        guard differs.isEmpty else {
            throw Rejection(.failedPrecondition, "idempotency key '\(SafeText.printable(job.idempotencyKey))' already names job \(info.jobID), "
                            + "which has a different \(differs); use a new key for a different build")
        }
        return info
    }

    /// The newest artifact built from the same repository, commit, recipe and
    /// artifact, and the full SHA it was built at. A full SHA matches itself; a
    /// short one matches only when it names one built commit and is long
    /// enough (``SubmissionValidator/minimumCachedPrefix``) that the repository
    /// is unlikely to hold another commit it could mean. Refs never match: they move.
    private func cachedArtifact(_ db: PGConnection, _ request: Slipway_V1_SubmitBuild) throws -> (commit: String, digest: String)? {
        guard SubmissionValidator.isSHAPrefix(request.commit, minimum: SubmissionValidator.minimumCachedPrefix) else { return nil }
        let row = try db.query("""
            WITH matches AS (
                SELECT j.resolved_sha, j.artifact_digest, j.finished_at
                FROM jobs j JOIN artifacts a ON a.digest = j.artifact_digest
                WHERE j.status = 'succeeded' AND j.repo_url = $1 AND j.resolved_sha LIKE $2 || '%' AND j.recipe = $3
                  AND j.artifact_path = $4 AND j.artifact_name = $5
            )
            SELECT resolved_sha, artifact_digest FROM matches
            WHERE (SELECT count(DISTINCT resolved_sha) FROM matches) = 1
            ORDER BY finished_at DESC LIMIT 1
            """, [.text(request.repoURL), .text(request.commit), .text(request.recipe),
                  .text(request.artifactPath), .text(request.artifactName)]).first
        guard let row else { return nil }
        return (try row.string("resolved_sha"), try row.string("artifact_digest"))
    }

    // MARK: dispatch

    /// Claims for workers that carry `labels`, one slot per entry of `slots` (a worker id), in one statement.
    func claim(_ db: PGConnection, slots: [String], labels: [String: String]) throws -> ([ClaimedJob], [OutboxEvent]) {
        try db.transaction { db in
            let claimed = try JobQueue.claim(db, slots: slots, workerLabels: labels)
            let events = try claimed.map { job in
                try OutboxEvent.make(.jobStarted, jobID: job.id, payload: startedInfo(job, worker: job.workerID))
            }
            return (claimed, events)
        }
    }

    /// Whether any job could be claimed now (by a worker with the right labels).
    func hasClaimableJobs(_ db: PGConnection) throws -> Bool {
        try db.query("""
            SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND NOT cancel_requested AND not_before <= now()) AS any
            """).first?.bool("any") ?? false
    }

    /// Applies a worker's result, fenced by (job, attempt). Workers resend a
    /// result until it is acknowledged, so the same result may come twice: a
    /// copy of one already applied is accepted again and changes nothing.
    /// - Returns: whether it was accepted (applied now or before), and the events.
    func finish(_ db: PGConnection, _ result: Slipway_V1_BuildResult) throws -> (accepted: Bool, events: [OutboxEvent]) {
        let (accepted, events) = try apply(db, result)
        if accepted { return (true, events) }
        // Fenced out: either stale, or the attempt already ended (an earlier copy was applied).
        let row = try db.query("SELECT attempt, status::text AS status FROM jobs WHERE id = $1::uuid", [.text(result.jobID)]).first
        let applied = try row.map { try $0.int("attempt") == Int(result.attempt) && $0.string("status") != JobStatus.running.rawValue } ?? false
        return (applied, [])
    }

    private func apply(_ db: PGConnection, _ result: Slipway_V1_BuildResult) throws -> (accepted: Bool, events: [OutboxEvent]) {
        try db.transaction { db in
            let attempt = Int(result.attempt)
            if result.outcome != .succeeded, SubmissionValidator.isFullSHA(result.commit) || !result.environment.isEmpty {
                // What a failed attempt checked out, and with what, is provenance too (and pins the ref for its retries).
                try db.query("""
                    UPDATE jobs SET resolved_sha = coalesce($3, resolved_sha), build_env = coalesce($4::jsonb, build_env)
                    WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
                    """, [.text(result.jobID), .int(attempt), .optional(SubmissionValidator.isFullSHA(result.commit) ? result.commit : nil),
                          .optional(Self.environmentJSON(result))])
            }
            switch result.outcome {
            case .succeeded:
                let manifest = result.manifest
                guard (try? Manifest.validate(manifest)) != nil, manifest.digest == result.artifactDigest else {
                    return try fail(db, result, error: "worker reported an invalid artifact manifest", retryable: true)
                }
                return try succeed(db, result, manifest)
            case .cancelled:
                guard try JobQueue.finishCancelled(db, jobID: result.jobID, attempt: attempt) else { return (false, []) }
                let info = try jobInfo(db, id: result.jobID)!
                return (true, [try OutboxEvent.make(.jobCancelled, jobID: result.jobID, payload: info)])
            case .retryable:
                return try fail(db, result, error: result.error, retryable: true)
            case .timedOut, .failed, .unspecified, .UNRECOGNIZED:
                return try fail(db, result, error: result.error.isEmpty ? "build failed" : result.error, retryable: false)
            }
        }
    }

    /// A result's build environment as stored: at most 256 entries of at most
    /// 8 KiB each (a worker's report is trusted only so far); nil when it has none.
    static func environmentJSON(_ result: Slipway_V1_BuildResult) -> String? {
        guard !result.environment.isEmpty else { return nil }
        let bounded = result.environment.prefix(256).map { String(decoding: Array($0.utf8.prefix(8_192)), as: UTF8.self) }
        return (try? JSONEncoder().encode(bounded)).map { String(decoding: $0, as: UTF8.self) }
    }

    private func fail(_ db: PGConnection, _ result: Slipway_V1_BuildResult, error: String, retryable: Bool) throws -> (accepted: Bool, events: [OutboxEvent]) {
        guard let status = try JobQueue.fail(db, jobID: result.jobID, attempt: Int(result.attempt), error: error,
                                             retryable: retryable, backoff: retryBackoff) else {
            return (false, [])
        }
        return (true, [try statusEvent(db, jobID: result.jobID, status: status)])
    }

    /// Puts attempts back in the queue. `used` attempts count against the job's
    /// retries (the job fails past its last one); unused ones never reached
    /// their worker and are undone as if never claimed.
    func requeue(_ db: PGConnection, _ attempts: [JobAttempt], reason: String, used: Bool) throws -> [OutboxEvent] {
        try db.transaction { db in
            var events: [OutboxEvent] = []
            for job in attempts {
                let status = used
                    ? try JobQueue.fail(db, jobID: job.jobID, attempt: job.attempt, error: reason, retryable: true,
                                        backoff: retryBackoff)
                    : try JobQueue.unclaim(db, jobID: job.jobID, attempt: job.attempt, reason: reason)
                if let status { events.append(try statusEvent(db, jobID: job.jobID, status: status)) }
            }
            return events
        }
    }

    /// The authenticated identity that submitted the job (nil: unknown, or submitted without authentication);
    /// `exists` is false when there is no such job.
    func submitter(_ db: PGConnection, jobID: String) throws -> (exists: Bool, submitter: String?) {
        guard let row = try db.query("SELECT submitted_by FROM jobs WHERE id = $1::uuid", [.text(jobID)]).first else { return (false, nil) }
        return (true, try row.optionalString("submitted_by"))
    }

    /// The worker that holds (or last held) `attempt` of the job; nil when no worker took it.
    func holder(_ db: PGConnection, _ attempt: JobAttempt) throws -> String? {
        try db.query("SELECT worker_id FROM jobs WHERE id::text = $1 AND attempt = $2", [.text(attempt.jobID), .int(attempt.attempt)])
            .first.flatMap { try $0.optionalString("worker_id") }
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

}
