import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// Requests on the intake ROUTER: jobs and logs here; replication reports to
/// ``Replicas``, deploys and region reports to ``Targets``. Each works on the
/// turn's ``Batch`` and queues its reply there.
struct Intake {
    let queries: CoordinatorQueries
    let replicas: Replicas
    let targets: Targets
    let rollouts: Rollouts
    let logger: Logger

    /// Runs `request` from `sender` (nil: the coordinator runs `--insecure`, or
    /// the request came without an identity and the role check already let it through).
    func handle(_ request: IntakeRequest, from peer: [UInt8], sender: Identity?, id: String, in batch: inout Batch) throws {
        do {
            // What was done, as the audit log should name it: a digest prefix resolved to the digest.
            let done = try route(request, from: peer, sender: sender, id: id, in: &batch)
            if let (action, object) = done.audited { batch.audits.append(AuditRecord(sender, action: action, object: object, outcome: .ok)) }
        } catch let rejection as Rejection {
            if let (action, object) = request.audited {
                batch.audits.append(AuditRecord(sender, action: action, object: object,
                                                outcome: rejection.code == .permissionDenied ? .refused : .failed,
                                                detail: "\(rejection.code.name): \(rejection.message)"))
            }
            batch.reply(peer, to: id, rejection)
        }
    }

    /// - Returns: the request as carried out (a deploy's digest prefix resolved).
    private func route(_ request: IntakeRequest, from peer: [UInt8], sender: Identity?, id: String, in batch: inout Batch) throws -> IntakeRequest {
        let db = batch.db
        switch request {
        case .submit(let submission):
            let (ack, events) = try queries.submit(db, submission, by: sender?.userID)
            batch.publish(events)
            batch.reply(peer, to: id, ack)
            logger.info("job submitted", metadata: ["job_id": "\(ack.jobID)", "duplicate": "\(ack.duplicate)", "cache_hit": "\(ack.cacheHit)"])
            if !ack.duplicate, ack.status == .queued { batch.dispatchDue = true }
        case .cancel(let job, let reason):
            if let sender, sender.role == .ci {
                // A CI key cancels only what it submitted itself; an operator cancels anything.
                let (exists, submitter) = try queries.submitter(db, jobID: job.rawValue)
                guard exists else { throw Rejection(.notFound, "no job \(job)") }
                guard submitter == sender.userID else {
                    throw Rejection(.permissionDenied, "\(sender) may cancel only the jobs it submitted; job \(job) was submitted by \(submitter ?? "an unauthenticated client")")
                }
            }
            let (status, events) = try queries.cancel(db, jobID: job.rawValue, reason: reason)
            guard let status else { throw Rejection(.notFound, "no job \(job)") }
            batch.publish(events)
            if status == .running, let attempt = try queries.currentAttempt(db, job.rawValue),
               let worker = batch.registry.holder(of: attempt) {
                batch.abort(attempt, on: worker.routingID, .cancelled, reason)
            }
            var ack = Slipway_V1_CancelBuildAck()
            ack.jobID = job.rawValue
            ack.status = status.wire
            batch.reply(peer, to: id, ack)
        case .job(let job):
            guard let info = try queries.jobInfo(db, id: job.rawValue) else { throw Rejection(.notFound, "no job \(job)") }
            batch.reply(peer, to: id, info)
        case .listJobs(let status, let artifactName, let limit):
            batch.reply(peer, to: id, try queries.listJobs(db, status: status, artifactName: artifactName, limit: limit))
        case .artifacts(let digest, let name, let limit):
            let list = try queries.artifacts(db, digest: digest, name: name, limit: limit)
            if let digest, list.artifacts.isEmpty { throw Rejection(.notFound, "no artifact sha256:\(digest)") }
            batch.reply(peer, to: id, list)
        case .log(let job, let offset, let maxBytes):
            guard let (header, bytes) = try queries.readLog(db, jobID: job.rawValue, offset: offset, maxBytes: maxBytes) else {
                throw Rejection(.notFound, "no job \(job)")
            }
            batch.reply(peer, to: id, header, payload: bytes)
        case .replication(let report, _):
            try replicas.record(report, from: peer, id: id, in: &batch)
        case .regionReport(let report, let region):
            try targets.record(report, region: region, from: peer, id: id, in: &batch)
        case .deploy(let service, let typed, let regions, let plan, let setBy, let newService):
            let digest = try queries.resolve(db, typed)
            guard try newService || queries.isKnown(db, service: service.rawValue) else {
                throw Rejection(.notFound, "no machine has reported service \(service) and it has no target: check the name, "
                                + "or deploy with --new-service for a service whose machines come later")
            }
            if regions.isEmpty {
                batch.reply(peer, to: id, try rollouts.deploy(service, digest, plan: plan, setBy: setBy, actor: sender, requestID: id, in: &batch))
            } else {
                try targets.deploy(service, digest, regions: regions, setBy: setBy, actor: sender, from: peer, id: id, in: &batch)
            }
            return .deploy(service, DigestPrefix(unchecked: digest.rawValue), regions: regions, plan: plan, setBy: setBy, newService: newService)
        case .clearOverrides(let service, let regions, let setBy):
            try targets.clear(service, regions: regions, setBy: setBy, actor: sender, from: peer, id: id, in: &batch)
        case .rollback(let service, let regions, let setBy):
            if regions.isEmpty {
                batch.reply(peer, to: id, try rollouts.rollback(service, setBy: setBy, actor: sender, requestID: id, in: &batch))
            } else {
                try targets.rollback(service, regions: regions, setBy: setBy, actor: sender, from: peer, id: id, in: &batch)
            }
        case .rollout(let service, let rolloutID):
            batch.reply(peer, to: id, try rollouts.status(service, id: rolloutID, db: db))
        case .rolloutControl(let service, let command, let setBy):
            batch.reply(peer, to: id, try rollouts.control(service, command, setBy: setBy, requestID: id, in: &batch))
        case .audit(let since, let limit):
            batch.reply(peer, to: id, try queries.audit(db, since: since, limit: limit))
        case .serviceStatus(let service, let limit):
            batch.reply(peer, to: id, try queries.serviceStatus(db, service: service.rawValue, limit: limit))
        case .services:
            batch.reply(peer, to: id, try queries.services(db))
        }
        return request
    }
}

extension IntakeRequest {
    /// The privileged actions the audit log records, with what they are about; nil for the rest.
    var audited: (action: String, object: String)? {
        switch self {
        case .cancel(let job, _): ("cancel", job.rawValue)
        case .deploy(let service, let digest, let regions, let plan, _, _):
            ("deploy", "\(service)@\(regions.isEmpty ? "global" : regions.map(\.rawValue).joined(separator: ",")) sha256:\(digest)"
                + (plan.isEmpty ? "" : " plan \(plan)"))
        case .clearOverrides(let service, let regions, _): ("clear", "\(service)@\(regions.map(\.rawValue).joined(separator: ","))")
        case .rolloutControl(let service, let command, _): ("rollout \(command)", "\(service)")
        case .rollback(let service, let regions, _): ("rollback", "\(service)@\(regions.isEmpty ? "global" : regions.map(\.rawValue).joined(separator: ","))")
        default: nil
        }
    }
}

