import SlipwayProto
import SlipwayStore
import SlipwayWire

/// A message waiting to leave the coordinator once its batch has committed.
struct Outgoing {
    enum Destination: Equatable {
        /// A reply on the intake ROUTER.
        case intake([UInt8])
        /// A message to a worker on the dispatch ROUTER.
        case worker([UInt8])
    }

    let destination: Destination
    let message: WireMessage
    /// Set for an assignment: if its worker is not connected at send time the
    /// job goes back to the queue without using an attempt.
    let assignment: (job: JobAttempt, workerID: String)?
}

/// One turn of the coordinator's loop, as a value: the transaction's
/// connection, the worker registry as this turn changed it, and everything to
/// send and publish once the transaction commits. Nothing leaves before the
/// state it describes is durable; if the transaction fails, the loop throws
/// the value away and the registry is as it was.
struct Batch {
    let db: PGConnection
    /// The registry as of this turn; becomes the loop's when the batch commits.
    var registry: WorkerRegistry
    /// Replies and worker messages, in order.
    private(set) var outgoing: [Outgoing] = []
    /// Worker messages refused for their object (not the attempt's worker), to log once committed.
    var refusals: [String] = []
    /// Audit rows, written in the batch's transaction.
    var audits: [AuditRecord] = []
    /// Events written to the outbox in this transaction, to publish after COMMIT.
    private(set) var published: [OutboxEvent] = []
    /// Log chunks handled in this transaction (stored, or refused for an ended
    /// attempt), by worker and attempt, to acknowledge after COMMIT.
    private(set) var storedLogs: [StoredLogKey: [UInt64]] = [:]
    /// Requeues that need a database write of their own (an assignment found
    /// undeliverable while sending): the loop runs them in the next batch.
    var followUp: [DispatchAction] = []
    /// New work or new credit arrived in this batch: work is offered to waiting
    /// workers once, after every request (one claim per worker per batch, not per message).
    var dispatchDue = false
    let sender: String

    init(db: PGConnection, registry: WorkerRegistry, sender: String) {
        self.db = db
        self.registry = registry
        self.sender = sender
    }

    /// Queues a reply to the intake request `requestID` from `peer`.
    mutating func reply(_ peer: [UInt8], to requestID: String, _ body: some WireBody, payload: [UInt8]? = nil) {
        let message = WireMessage(body, sender: sender, inReplyTo: requestID, payload: payload)
        outgoing.append(Outgoing(destination: .intake(peer), message: message, assignment: nil))
    }

    /// Queues an `ErrorReply` to the intake request `requestID` from `peer`.
    mutating func reply(_ peer: [UInt8], to requestID: String, _ rejection: Rejection) {
        reply(peer, to: requestID, Slipway_V1_ErrorReply(rejection.code, rejection.message))
    }

    /// Queues a message to a worker.
    mutating func send(toWorker routingID: [UInt8], _ body: some WireBody, assignment: (job: JobAttempt, workerID: String)? = nil) {
        outgoing.append(Outgoing(destination: .worker(routingID), message: WireMessage(body, sender: sender), assignment: assignment))
    }

    /// Queues an `AbortJob` for `job` on the worker at `routingID`.
    mutating func abort(_ job: JobAttempt, on routingID: [UInt8], _ reason: Slipway_V1_AbortReason, _ detail: String) {
        var abort = Slipway_V1_AbortJob()
        abort.jobID = job.jobID
        abort.attempt = UInt32(job.attempt)
        abort.reason = reason
        abort.detail = detail
        send(toWorker: routingID, abort)
    }

    /// Records events of this transaction's state changes, to write before COMMIT and publish after.
    mutating func publish(_ events: [OutboxEvent]) {
        published += events
    }

    /// Writes the batch's events to the outbox (one statement), gives each its
    /// sequence number, and commits in the same round trip: the last step of a
    /// batch's transaction. A batch without events commits as usual.
    mutating func writeEventsAndCommit() throws {
        guard !published.isEmpty else { return }
        let first = try Outbox.append(db, published.map { ($0.typeName, $0.topic, $0.stored) }, commit: true)
        for index in published.indices {
            published[index].sequence = first + Int64(index)
            published[index].event.sequence = UInt64(first) + UInt64(index)
        }
    }

    /// Records a log chunk to acknowledge: stored, or refused because its attempt ended.
    mutating func storedLog(_ job: JobAttempt, sequence: UInt64, worker: [UInt8]) {
        storedLogs[StoredLogKey(worker: worker, job: job), default: []].append(sequence)
    }

    /// The worker and attempt a stored log chunk came from.
    struct StoredLogKey: Hashable {
        let worker: [UInt8]
        let job: JobAttempt
    }
}
