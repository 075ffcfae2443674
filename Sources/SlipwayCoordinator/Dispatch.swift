import Logging
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// The worker half of the coordinator: credit and registration, assignments,
/// log chunks, results, and the sweep that finds lost workers and overdue
/// builds. The decisions sit in ``WorkerRegistry``; this runs its actions
/// against the turn's ``Batch``.
struct Dispatch {
    let queries: CoordinatorQueries
    let logger: Logger

    func handle(_ request: DispatchRequest, from routingID: [UInt8], in batch: inout Batch) throws {
        switch request {
        case .work(let report):
            try apply(batch.registry.report(report, now: .now), in: &batch)
            batch.dispatchDue = true
        case .heartbeat(let report):
            try apply(batch.registry.report(report, now: .now), in: &batch)
            try queries.recordHeartbeat(batch.db, report)
            batch.dispatchDue = true
        case .log(let chunk, let bytes):
            let job = JobAttempt(jobID: chunk.jobID, attempt: Int(chunk.attempt))
            if try queries.appendLog(batch.db, chunk, bytes: bytes, from: String(decoding: routingID, as: UTF8.self)) {
                batch.registry.confirmed(job)
                batch.storedLog(job, sequence: chunk.sequence, worker: routingID)
            } else {
                batch.abort(job, on: routingID, .superseded, "attempt \(job.attempt) is no longer the job's current one")
                // Acknowledged all the same: nothing more is stored for an ended attempt, and a
                // worker that already finished it holds the attempt's result until its log is
                // acknowledged (unacknowledged, it resent the chunk forever and stopped only when killed).
                batch.storedLog(job, sequence: chunk.sequence, worker: routingID)
            }
        case .result(let result):
            let job = JobAttempt(jobID: result.jobID, attempt: Int(result.attempt))
            // Only the worker the attempt was assigned to may end it. The registry knows who holds each
            // running attempt (adopted from the database on taking over): the database is asked only
            // about attempts it does not know, so the check costs no round trip in the common case.
            let holder = try batch.registry.holder(of: job).map { $0.id } ?? queries.holder(batch.db, job)
            if let holder, !holder.utf8.elementsEqual(routingID) {
                Authorization.count(.buildResult, from: nil)
                batch.send(toWorker: routingID, Slipway_V1_ErrorReply(.permissionDenied,
                                                                      "attempt \(job.attempt) of job \(job.jobID) was assigned to another worker"))
                batch.refusals.append("a result for attempt \(job.attempt) of job \(job.jobID) from \(String(decoding: routingID, as: UTF8.self)); it is held by \(holder)")
                return
            }
            batch.registry.finished(job)
            let (accepted, events) = try queries.finish(batch.db, result)
            batch.publish(events)
            var ack = Slipway_V1_ResultAck()
            ack.jobID = result.jobID
            ack.attempt = result.attempt
            ack.accepted = accepted
            batch.send(toWorker: routingID, ack)
            logger.info("build result", metadata: ["job_id": "\(result.jobID)", "attempt": "\(result.attempt)",
                                                   "outcome": "\(result.outcome)", "accepted": "\(accepted)"])
        }
    }

    /// Claims work for `workers` (all carrying the same labels) in one statement,
    /// a slot per unit of credit taken in turns, so a short queue is spread over
    /// the longest-waiting workers, and queues the assignments.
    /// - Returns: whether the queue ran short (fewer jobs than the credit).
    func assign(to workers: [WorkerRegistry.Worker], in batch: inout Batch) throws -> Bool {
        guard let labels = workers.first?.labels else { return false }
        var slots: [String] = []
        for round in 0..<(workers.map(\.credit).max() ?? 0) {
            slots += workers.filter { $0.credit > round }.map(\.id)
        }
        let started = ContinuousClock.now
        let (claimed, events) = try queries.claim(batch.db, slots: slots, labels: labels)
        SlipwayMetrics.claimLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        batch.publish(events)
        let routes = Dictionary(workers.map { ($0.id, $0.routingID) }, uniquingKeysWith: { first, _ in first })
        for job in claimed {
            guard let routingID = routes[job.workerID] else { continue }
            var assignment = Slipway_V1_WorkAssignment()
            assignment.jobID = job.id
            assignment.attempt = UInt32(job.attempt)
            assignment.repoURL = job.repoURL
            assignment.commit = job.commitSHA
            assignment.artifactName = job.artifactName
            assignment.recipe = job.recipe
            assignment.artifactPath = job.artifactPath
            assignment.timeoutSeconds = UInt32(job.timeoutSeconds)
            assignment.leaseExpiresAtUnixMicros = job.leaseExpiresAtUnixMicros
            let attempt = JobAttempt(jobID: job.id, attempt: job.attempt)
            batch.send(toWorker: routingID, assignment, assignment: (attempt, job.workerID))
            batch.registry.assigned(attempt, to: job.workerID, now: .now)
            logger.debug("job assigned", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)", "worker": "\(job.workerID)"])
        }
        return claimed.count < slots.count
    }

    /// Offers queued work to every worker with credit, longest-waiting first,
    /// one claim per set of labels. Once a claim comes back short, the queue
    /// holds nothing more those workers could run, so workers whose labels are
    /// a subset of theirs are not asked about (a job a worker can run, every
    /// worker with more labels can run too). `lookFirst` adds one cheap look
    /// before any claim, for the timer, so idle workers cost nothing when
    /// nothing waits.
    func assignWaiting(in batch: inout Batch, lookFirst: Bool) throws {
        let waiting = batch.registry.waiting()
        guard !waiting.isEmpty else { return }
        if lookFirst, try !queries.hasClaimableJobs(batch.db) { return }
        var groups: [(labels: [String: String], workers: [WorkerRegistry.Worker])] = []
        for worker in waiting {
            if let index = groups.firstIndex(where: { $0.labels == worker.labels }) {
                groups[index].workers.append(worker)
            } else {
                groups.append((worker.labels, [worker]))
            }
        }
        var ranShort: [[String: String]] = []
        for group in groups {
            if ranShort.contains(where: { short in group.labels.allSatisfy { short[$0.key] == $0.value } }) { continue }
            if try assign(to: group.workers, in: &batch) { ranShort.append(group.labels) }
        }
    }

    /// Finds lost workers (their attempts go back to the queue) and builds past
    /// their deadline (failed, and their workers told to stop).
    func sweep(now: ContinuousClock.Instant, in batch: inout Batch) throws {
        let (lost, actions) = batch.registry.expire(now: now)
        for worker in lost {
            SlipwayMetrics.workersLost.increment()
            logger.warning("worker lost", metadata: ["worker": "\(worker)"])
        }
        try queries.recordLost(batch.db, lost)
        try apply(actions, in: &batch)
        let (overdue, events) = try queries.expireOverdue(batch.db)
        batch.publish(events)
        for job in overdue {
            if let worker = batch.registry.holder(of: job) {
                batch.abort(job, on: worker.routingID, .timedOut, "the build ran past its timeout")
            }
            batch.registry.finished(job)
        }
    }

    /// Brings the registry in line with what the database says runs where: an
    /// attempt the registry lost track of (a transaction whose outcome was
    /// unknown) is tracked as sent, so its worker's heartbeats confirm it or
    /// send it back; one the database no longer runs is forgotten.
    func reconcile(now: ContinuousClock.Instant, in batch: inout Batch) throws {
        let running = try queries.runningByWorker(batch.db)
        var current: Set<JobAttempt> = []
        for (worker, held) in running {
            current.formUnion(held.attempts)
            for job in held.attempts where batch.registry.holder(of: job) == nil {
                batch.registry.track(job, on: worker, now: now)
                logger.warning("tracking an attempt the registry had lost", metadata: ["job_id": "\(job.jobID)", "worker": "\(worker)"])
            }
        }
        for job in batch.registry.attempts.subtracting(current) { batch.registry.finished(job) }
    }

    /// Carries out what the registry decided.
    func apply(_ actions: [DispatchAction], in batch: inout Batch) throws {
        for action in actions {
            switch action {
            case .requeue(let jobs, let reason, let used):
                for job in jobs { batch.registry.finished(job) }
                batch.publish(try queries.requeue(batch.db, jobs, reason: reason, used: used))
                logger.warning("attempts requeued", metadata: ["jobs": "\(jobs.map(\.jobID).joined(separator: ","))",
                                                              "reason": "\(reason)", "attempt_used": "\(used)"])
            case .verify(let workerID, let routingID, let jobs):
                let current = try queries.current(batch.db, jobs, on: workerID)
                for job in jobs where !current.contains(job) {
                    batch.registry.finished(job)
                    batch.abort(job, on: routingID, .superseded, "attempt \(job.attempt) is no longer the job's current one")
                    logger.info("stale attempt stopped", metadata: ["job_id": "\(job.jobID)", "attempt": "\(job.attempt)", "worker": "\(workerID)"])
                }
            }
        }
    }
}
