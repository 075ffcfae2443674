import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire

/// A turn's work as one transaction, and what a committed batch sends.
extension CoordinatorLoop {
    /// Runs `work` in one transaction, then sends what it produced. Requests are
    /// checked before they get here, so one failing in the database is rare: then
    /// the whole batch rolls back and each request runs again alone (no savepoint
    /// per request in the common case: two round trips each). If the transaction
    /// cannot commit, intake requests are answered `unavailable` and nothing else
    /// leaves: workers resend what matters.
    /// - Returns: whether the transaction committed.
    @discardableResult
    func run(_ work: [CoordinatorWork]) throws -> Bool {
        var batch = Batch(db: db, registry: registry, sender: config.id)
        let refusals = pendingAudit.take()
        // Spent only if the transaction commits, like the registry.
        var budget = auditBudget
        do {
            try db.transaction { db in
                try leadership.confirm(db)
                for item in work { try run(item, in: &batch) }
                if batch.dispatchDue { try dispatch.assignWaiting(in: &batch, lookFirst: false) }
                try intake.queries.writeAudit(db, budget.admit(refusals + batch.audits, now: .now))
                try batch.writeEventsAndCommit()
            }
        } catch let error as PGError where !error.isConnectionTrouble && work.count > 1 {
            // One request failed in the database: the others must not fail with it.
            for record in refusals { pendingAudit.append(record) }
            var committed = false
            for item in work { committed = try run([item]) || committed }
            return committed
        } catch let error as PGError {
            for record in refusals { pendingAudit.append(record) }
            if !error.isConnectionTrouble {
                // The request itself failed in the database, alone: not an outage.
                logger.error("request failed in the database", metadata: ["error": "\(error.oneLine)"])
                if case .intake(let peer, let id, _, _) = work[0] {
                    let reply = Slipway_V1_ErrorReply(.internal, "the coordinator's database refused this request: \(error.message)")
                    send(.intake(peer), WireMessage(reply, sender: config.id, inReplyTo: id))
                }
                return false
            }
            // With the connection gone during COMMIT the outcome is unknown: check the registry against the database.
            reconcileSoon = true
            noteDatabase(error)
            for case .intake(let peer, let id, _, _) in work {
                send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(.unavailable, Self.unavailable), sender: config.id, inReplyTo: id))
            }
            database.deferred += work.filter { if case .dispatch = $0 { true } else { false } }.count
            return false
        }
        if let outage = database.succeeded(logger: logger) {
            couldNotRecordReports(for: outage, now: .now, cause: "the database was unavailable")
        }
        registry = batch.registry
        auditBudget = budget
        try deliver(batch)
        return true
    }

    func run(_ item: CoordinatorWork, in batch: inout Batch) throws {
        switch item {
        case .intake(let peer, let id, let request, let sender): try intake.handle(request, from: peer, sender: sender, id: id, in: &batch)
        case .dispatch(let routingID, let request): try dispatch.handle(request, from: routingID, in: &batch)
        case .task(_, let body): try body(&batch)
        }
        if db.isTransactionFailed { throw PGError(.queryFailed, message: "a statement failed inside the request") }
    }

    /// Sends a committed batch's replies, assignments, events and log acknowledgements.
    func deliver(_ batch: Batch) throws {
        for refusal in batch.refusals { dispatchRejections.record(reason: "permission_denied", detail: refusal, logger: logger) }
        var undeliverable: [DispatchAction] = []
        for item in batch.outgoing where !send(item.destination, item.message) {
            if let (job, workerID) = item.assignment { undeliverable += registry.undeliverable(job, to: workerID) }
        }
        for item in batch.published {
            _ = try? sockets?.events.send(codec.encode(WireMessage(item.event, sender: config.id, topic: item.topic)), wait: .never)
            lastEventSequence = max(lastEventSequence, UInt64(item.sequence))
        }
        for (key, sequences) in batch.storedLogs {
            var ack = Slipway_V1_LogAck()
            ack.jobID = key.job.jobID
            ack.attempt = UInt32(key.job.attempt)
            ack.sequences = sequences
            send(.worker(key.worker), WireMessage(ack, sender: config.id))
        }
        if !undeliverable.isEmpty {
            pendingActions += undeliverable
            try runPendingActions()
        }
    }

    /// Runs the requeues that need a transaction of their own; they stay pending until one commits.
    func runPendingActions() throws {
        guard !pendingActions.isEmpty else { return }
        let actions = pendingActions
        if try run([.task("pending requeues") { [dispatch] batch in try dispatch.apply(actions, in: &batch) }]) {
            pendingActions.removeFirst(actions.count)
        }
    }

    /// Sends one message now. - Returns: false if its peer is not connected (or its queue is full).
    @discardableResult
    func send(_ destination: Outgoing.Destination, _ message: WireMessage) -> Bool {
        guard let sockets else { return false }
        switch destination {
        case .intake(let peer): return (try? sockets.intake.send(codec.encode(message, to: peer), wait: .never)) == true
        case .worker(let peer): return (try? sockets.dispatch.send(codec.encode(message, to: peer), wait: .never)) == true
        }
    }

    func noteDatabase(_ error: any Error) {
        guard let error = error as? PGError else { return }
        database.failed(error, logger: logger)
    }
}
