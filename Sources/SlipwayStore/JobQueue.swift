import Foundation
public import SlipwayCore

/// A submission to store.
public struct NewJob: Sendable, Hashable {
    public var idempotencyKey: String
    public var repoURL: String
    public var commitSHA: String
    public var artifactName: String
    public var recipe: String
    public var artifactPath: String
    /// A worker must carry all of these to claim the job.
    public var labels: [String: String]
    public var maxAttempts: Int
    public var timeoutSeconds: Int
    public var fresh: Bool

    /// Creates a submission; defaults: 3 attempts, 1 hour timeout.
    public init(idempotencyKey: String, repoURL: String, commitSHA: String, artifactName: String,
                recipe: String = "", artifactPath: String = "", labels: [String: String] = [:],
                maxAttempts: Int = 3, timeoutSeconds: Int = 3_600, fresh: Bool = false) {
        self.idempotencyKey = idempotencyKey
        self.repoURL = repoURL
        self.commitSHA = commitSHA
        self.artifactName = artifactName
        self.recipe = recipe
        self.artifactPath = artifactPath
        self.labels = labels
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.fresh = fresh
    }
}

/// A job as stored.
public struct JobRecord: Sendable, Hashable {
    public let id: String
    public let status: JobStatus
    public let attempt: Int
    public let maxAttempts: Int
    public let workerID: String?
    public let repoURL: String
    public let commitSHA: String
    public let artifactName: String
    public let artifactDigest: String?
    public let error: String?
}

/// A job a worker has just claimed; (id, attempt) fences every later write.
public struct ClaimedJob: Sendable, Hashable {
    public let id: String
    /// The worker it was claimed for.
    public let workerID: String
    /// The fence: every later write about this attempt carries it.
    public let attempt: Int
    /// Attempts charged so far, this one included (assignments that never
    /// reached a worker are not).
    public let attemptsUsed: Int
    public let repoURL: String
    /// What to check out: the full SHA once an earlier attempt resolved the
    /// submitted ref (so every retry builds the same commit), else as submitted.
    public let commitSHA: String
    /// The commit as submitted: a full SHA, a short SHA or a ref.
    public let requestedCommit: String
    public let artifactName: String
    public let recipe: String
    public let artifactPath: String
    public let timeoutSeconds: Int
    /// The attempt's absolute deadline, microseconds since the Unix epoch.
    public let leaseExpiresAtUnixMicros: Int64
}

/// The job queue's statements: submission, the one-statement claim, and the
/// fenced writes that end an attempt. Each function is one round trip and can be
/// composed with others (an outbox event, say) inside `PGConnection.transaction`.
public enum JobQueue {
    /// Stores a job unless one with the same idempotency key exists.
    /// - Returns: the stored job, and whether it already existed.
    public static func enqueue(_ db: PGConnection, _ job: NewJob) throws -> (job: JobRecord, duplicate: Bool) {
        let labels = try encodeLabels(job.labels)
        let inserted = try db.query("""
            INSERT INTO jobs (idempotency_key, repo_url, commit_sha, artifact_name, recipe, artifact_path,
                              labels, max_attempts, timeout_seconds, fresh)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING \(recordColumns)
            """, [.text(job.idempotencyKey), .text(job.repoURL), .text(job.commitSHA), .text(job.artifactName),
                  .text(job.recipe), .text(job.artifactPath), .text(labels), .int(job.maxAttempts),
                  .int(job.timeoutSeconds), .bool(job.fresh)])
        if let row = inserted.first {
            return (try record(row), false)
        }
        let existing = try db.query("SELECT \(recordColumns) FROM jobs WHERE idempotency_key = $1", [.text(job.idempotencyKey)])
        guard let row = existing.first else {
            throw PGError(.badResult, message: "job with idempotency key vanished between insert and select")
        }
        return (try record(row), true)
    }

    /// Claims up to `limit` queued jobs whose labels the worker carries, oldest
    /// first, in one statement. Rows locked by a concurrent claim are skipped, so
    /// claimers never wait on each other and no job is claimed twice.
    public static func claim(_ db: PGConnection, workerID: String, workerLabels: [String: String], limit: Int) throws -> [ClaimedJob] {
        try claim(db, slots: Array(repeating: workerID, count: max(0, limit)), workerLabels: workerLabels)
    }

    /// Claims for several workers that carry the same labels, in one statement:
    /// `slots` names a worker for each free slot, in the order they are served
    /// (the oldest claimable job goes to the first slot, the next to the
    /// second…), so a short queue reaches the first slots, not one worker's.
    public static func claim(_ db: PGConnection, slots: [String], workerLabels: [String: String]) throws -> [ClaimedJob] {
        guard !slots.isEmpty else { return [] }
        let result = try db.query("""
            WITH picked AS (
                SELECT id, created_at FROM jobs
                WHERE status = 'queued' AND NOT cancel_requested AND not_before <= now() AND labels <@ $2::jsonb
                ORDER BY created_at, id
                LIMIT cardinality($1::text[])
                FOR UPDATE SKIP LOCKED
            ),
            next AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM picked),
            slot AS (SELECT worker, n FROM unnest($1::text[]) WITH ORDINALITY AS s(worker, n))
            UPDATE jobs AS j
            SET status = 'running', attempt = j.attempt + 1, worker_id = slot.worker,
                lease_expires_at = now() + make_interval(secs => j.timeout_seconds),
                started_at = now(), error = NULL
            FROM next JOIN slot ON slot.n = next.n
            WHERE j.id = next.id
            RETURNING j.id, j.worker_id, j.attempt, j.attempt - j.attempts_unused AS attempts_used, j.repo_url,
                      coalesce(j.resolved_sha, j.commit_sha) AS commit_sha, j.commit_sha AS requested_commit, j.artifact_name,
                      j.recipe, j.artifact_path, j.timeout_seconds,
                      (extract(epoch FROM j.lease_expires_at) * 1000000)::bigint AS lease_us
            """, [PGBind.textArray(slots), .text(try encodeLabels(workerLabels))])
        return try result.rows.map { row in
            ClaimedJob(id: try row.string("id"), workerID: try row.string("worker_id"), attempt: try row.int("attempt"),
                       attemptsUsed: try row.int("attempts_used"),
                       repoURL: try row.string("repo_url"), commitSHA: try row.string("commit_sha"),
                       requestedCommit: try row.string("requested_commit"), artifactName: try row.string("artifact_name"),
                       recipe: try row.string("recipe"),
                       artifactPath: try row.string("artifact_path"), timeoutSeconds: try row.int("timeout_seconds"),
                       leaseExpiresAtUnixMicros: Int64(try row.int("lease_us")))
        }
    }

    /// Marks an attempt succeeded, if it is still the job's current running attempt.
    /// - Returns: false when fencing rejected the write: the worker lost the job and must stop.
    public static func complete(_ db: PGConnection, jobID: String, attempt: Int, artifactDigest: String) throws -> Bool {
        guard isJobID(jobID) else { return false }
        let result = try db.query("""
            UPDATE jobs SET status = 'succeeded', finished_at = now(), artifact_digest = $3, error = NULL
            WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
            """, [.text(jobID), .int(attempt), .text(artifactDigest)])
        return result.affectedRows == 1
    }

    /// Ends an attempt that failed. A retryable failure with attempts left goes
    /// back to the queue after `backoff` × 2^(attempts used − 1), at most 5
    /// minutes; anything else fails the job. A job whose cancellation was
    /// requested ends cancelled instead.
    /// - Returns: the job's new status, or nil when fencing rejected the write.
    public static func fail(_ db: PGConnection, jobID: String, attempt: Int, error: String,
                            retryable: Bool, backoff: Duration = .zero) throws -> JobStatus? {
        guard isJobID(jobID) else { return nil }
        let result = try db.query("""
            UPDATE jobs SET
                status = CASE WHEN cancel_requested THEN 'cancelled'::job_status
                              WHEN $4 AND attempt - attempts_unused < max_attempts THEN 'queued'::job_status
                              ELSE 'failed'::job_status END,
                not_before = CASE WHEN $4 AND attempt - attempts_unused < max_attempts THEN now() + make_interval(secs => least(300, $5::float8 * power(2, greatest(attempt - attempts_unused - 1, 0)))) ELSE not_before END,
                finished_at = CASE WHEN $4 AND attempt - attempts_unused < max_attempts AND NOT cancel_requested THEN NULL ELSE now() END,
                error = CASE WHEN cancel_requested THEN error ELSE $3 END
            WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
            RETURNING status
            """, [.text(jobID), .int(attempt), .text(error), .bool(retryable), .text(seconds(backoff))])
        return try result.first.map { try status($0) }
    }

    /// Puts an attempt back in the queue without charging it: its worker
    /// provably never received the assignment. The fence (`attempt`) is kept,
    /// so a late message for it is still refused; `attempts_unused` makes the
    /// retry cap ignore it. A job whose cancellation was requested ends
    /// cancelled instead.
    /// - Returns: the job's new status, or nil when fencing rejected the write.
    public static func unclaim(_ db: PGConnection, jobID: String, attempt: Int, reason: String) throws -> JobStatus? {
        guard isJobID(jobID) else { return nil }
        let result = try db.query("""
            UPDATE jobs SET
                status = CASE WHEN cancel_requested THEN 'cancelled'::job_status ELSE 'queued'::job_status END,
                attempts_unused = attempts_unused + 1,
                worker_id = CASE WHEN cancel_requested THEN worker_id ELSE NULL END,
                lease_expires_at = NULL,
                started_at = CASE WHEN cancel_requested THEN started_at ELSE NULL END,
                finished_at = CASE WHEN cancel_requested THEN now() ELSE NULL END,
                error = CASE WHEN cancel_requested THEN error ELSE $3 END
            WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
            RETURNING status
            """, [.text(jobID), .int(attempt), .text(reason)])
        return try result.first.map { try status($0) }
    }

    /// Cancels a job: a queued one at once; a running one is flagged so the
    /// coordinator aborts the worker's attempt.
    /// - Returns: the job's status after the call, or nil if there is no such job.
    public static func cancel(_ db: PGConnection, jobID: String, reason: String) throws -> JobStatus? {
        guard isJobID(jobID) else { return nil }
        let result = try db.query("""
            UPDATE jobs SET
                status = CASE WHEN status = 'queued' THEN 'cancelled'::job_status ELSE status END,
                finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                cancel_requested = cancel_requested OR status = 'running',
                error = CASE WHEN status IN ('queued', 'running') THEN $2 ELSE error END
            WHERE id = $1::uuid
            RETURNING status
            """, [.text(jobID), .text(reason)])
        return try result.first.map { try status($0) }
    }

    /// Ends a running attempt as cancelled (the worker confirmed it stopped).
    /// - Returns: false when fencing rejected the write.
    public static func finishCancelled(_ db: PGConnection, jobID: String, attempt: Int) throws -> Bool {
        guard isJobID(jobID) else { return false }
        return try db.query("""
            UPDATE jobs SET status = 'cancelled', finished_at = now(), error = coalesce(error, 'cancelled')
            WHERE id = $1::uuid AND attempt = $2 AND status = 'running'
            """, [.text(jobID), .int(attempt)]).affectedRows == 1
    }

    /// Reads one job; nil if there is none with that id.
    public static func job(_ db: PGConnection, id: String) throws -> JobRecord? {
        guard isJobID(id) else { return nil }
        return try db.query("SELECT \(recordColumns) FROM jobs WHERE id = $1::uuid", [.text(id)]).first.map(record)
    }

    /// Whether `text` is a job id (a UUID); anything else names no job.
    public static func isJobID(_ text: String) -> Bool {
        UUID(uuidString: text) != nil
    }

    static let recordColumns = "id, status, attempt, max_attempts, worker_id, repo_url, commit_sha, artifact_name, artifact_digest, error"

    static func record(_ row: PGRow) throws -> JobRecord {
        JobRecord(id: try row.string("id"), status: try status(row), attempt: try row.int("attempt"),
                  maxAttempts: try row.int("max_attempts"), workerID: try row.optionalString("worker_id"),
                  repoURL: try row.string("repo_url"), commitSHA: try row.string("commit_sha"),
                  artifactName: try row.string("artifact_name"), artifactDigest: try row.optionalString("artifact_digest"),
                  error: try row.optionalString("error"))
    }

    static func status(_ row: PGRow) throws -> JobStatus {
        let text = try row.string("status")
        guard let status = JobStatus(rawValue: text) else {
            throw PGError(.badResult, message: "unknown job status \(text)")
        }
        return status
    }

    public static func encodeLabels(_ labels: [String: String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(labels), as: UTF8.self)
    }

    static func seconds(_ duration: Duration) -> String {
        String(duration.inSeconds)
    }
}
