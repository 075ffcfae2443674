import Foundation
import SlipwayCore
import SlipwayProto
import SlipwayStore

/// Worker liveness in the database: heartbeats, which attempts a worker still
/// holds, and the attempts past their deadline, so a new leader knows how long
/// each worker has been silent.
extension CoordinatorQueries {
    /// Records a worker's heartbeat: one row per worker process, so a new
    /// leader knows how long each has been silent.
    func recordHeartbeat(_ db: PGConnection, _ report: WorkerReport) throws {
        try db.query("""
            INSERT INTO workers (id, labels, slots, region, last_heartbeat)
            VALUES ($1, $2::jsonb, $3, $4, now())
            ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, slots = excluded.slots, region = excluded.region,
                                           last_heartbeat = now(), lost_at = NULL
            """, [.text(report.workerID), .text(try JobQueue.encodeLabels(report.labels)),
                  .int(report.freeSlots + (report.running?.count ?? 0)), .text(report.region)])
    }

    /// Which of `attempts` are the current running attempts of their jobs on `workerID`.
    func current(_ db: PGConnection, _ attempts: [JobAttempt], on workerID: String) throws -> Set<JobAttempt> {
        guard !attempts.isEmpty else { return [] }
        let rows = try db.query("""
            SELECT id::text AS id, attempt FROM jobs
            WHERE status = 'running' AND worker_id = $1 AND id::text = ANY($2::text[])
            """, [.text(workerID), PGBind.textArray(attempts.map(\.jobID))]).rows
        let running = Set(try rows.map { JobAttempt(jobID: try $0.string("id"), attempt: try $0.int("attempt")) })
        return running.intersection(attempts)
    }

    /// The attempt a running job is on, or nil.
    func currentAttempt(_ db: PGConnection, _ jobID: String) throws -> JobAttempt? {
        try db.query("SELECT attempt FROM jobs WHERE id = $1::uuid AND status = 'running'", [.text(jobID)]).first
            .map { JobAttempt(jobID: jobID, attempt: try $0.int("attempt")) }
    }

    /// How long ago any worker's heartbeat was last recorded, or nil if none ever was.
    func freshestHeartbeat(_ db: PGConnection) throws -> Duration? {
        try db.query("""
            SELECT (extract(epoch FROM now() - max(last_heartbeat)) * 1000)::bigint AS ms FROM workers WHERE lost_at IS NULL
            """).first.flatMap { try $0.optionalString("ms") }.flatMap(Int64.init).map { .milliseconds(max(0, $0)) }
    }

    /// Marks workers lost.
    func recordLost(_ db: PGConnection, _ workerIDs: [String]) throws {
        guard !workerIDs.isEmpty else { return }
        try db.query("UPDATE workers SET lost_at = now() WHERE id = ANY($1::text[])", [PGBind.textArray(workerIDs)])
    }

    /// Running attempts per worker, and how long ago each worker was last
    /// heard of by any coordinator: what a new leader adopts.
    func runningByWorker(_ db: PGConnection) throws -> [String: (attempts: Set<JobAttempt>, silent: Duration)] {
        var result: [String: (attempts: Set<JobAttempt>, silent: Duration)] = [:]
        for row in try db.query("""
            SELECT j.id, j.attempt, j.worker_id,
                   coalesce((extract(epoch FROM now() - coalesce(w.last_heartbeat, j.started_at)) * 1000)::bigint, 0) AS silent_ms
            FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id
            WHERE j.status = 'running'
            """).rows {
            let worker = try row.string("worker_id")
            let job = JobAttempt(jobID: try row.string("id"), attempt: try row.int("attempt"))
            result[worker, default: ([], .zero)].attempts.insert(job)
            result[worker]!.silent = .milliseconds(max(0, try row.int("silent_ms")))
        }
        return result
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
}
