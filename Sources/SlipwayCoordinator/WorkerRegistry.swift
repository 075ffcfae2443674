/// One (job, attempt) pair: the fence every write about a running job carries.
public struct JobAttempt: Hashable, Sendable {
    /// The job's id.
    public let jobID: String
    /// The attempt number the worker was given.
    public let attempt: Int

    /// Creates a pair.
    public init(jobID: String, attempt: Int) {
        self.jobID = jobID
        self.attempt = attempt
    }
}

/// The coordinator's view of its workers: credit, liveness and what each runs.
///
/// A pure state machine: no sockets, no clock of its own (callers pass `now`),
/// so dispatch and lease logic is tested without I/O.
///
/// **Credit.** A worker says how many slots it has free and how many
/// assignments it has received so far. Assignments still in flight are
/// `sent - received`, so the credit is exact even when a request crosses an
/// assignment on the wire: a worker is never handed more jobs than it can start.
///
/// **Liveness.** A worker that has not been heard from for `liveness` intervals
/// is lost; its jobs go back to the queue (Paranoid Pirate).
public struct WorkerRegistry: Sendable {
    /// What the registry knows about one worker process.
    public struct Worker: Sendable, Equatable {
        /// The worker's id (one per process start).
        public let id: String
        /// Its ROUTER routing id: where to send to it.
        public var routingID: [UInt8]
        /// Labels a job must be a subset of.
        public var labels: [String: String]
        /// The region whose store receives its artifacts.
        public var region: String
        /// Jobs it may be handed now.
        public var credit: Int
        /// Assignments sent to it by this coordinator, counted from its first request.
        public var assignmentsSent: UInt64
        /// When it was last heard from.
        public var lastSeen: ContinuousClock.Instant
        /// When it last asked for work; the longest-waiting worker is served first.
        public var waitingSince: ContinuousClock.Instant
        /// Attempts it runs.
        public var running: Set<JobAttempt>
    }

    /// Time between heartbeats.
    public let heartbeatInterval: Duration
    /// Missed heartbeats before a worker counts as lost.
    public let liveness: Int
    private(set) var workers: [String: Worker] = [:]

    /// An empty registry.
    public init(heartbeatInterval: Duration, liveness: Int = 3) {
        self.heartbeatInterval = heartbeatInterval
        self.liveness = liveness
    }

    /// A worker by id.
    public func worker(_ id: String) -> Worker? { workers[id] }

    /// All known workers.
    public var all: [Worker] { Array(workers.values) }

    /// Records a work request (credit) from a worker.
    public mutating func workRequest(workerID: String, routingID: [UInt8], labels: [String: String], region: String,
                                     freeSlots: Int, assignmentsReceived: UInt64, now: ContinuousClock.Instant) {
        var worker = workers[workerID] ?? Worker(
            id: workerID, routingID: routingID, labels: labels, region: region, credit: 0,
            assignmentsSent: assignmentsReceived, lastSeen: now, waitingSince: now, running: [])
        // A coordinator that started after the worker counts from the worker's tally.
        if worker.assignmentsSent < assignmentsReceived { worker.assignmentsSent = assignmentsReceived }
        let inFlight = Int(worker.assignmentsSent - assignmentsReceived)
        worker.routingID = routingID
        worker.labels = labels
        worker.region = region
        worker.credit = max(0, freeSlots - inFlight)
        worker.lastSeen = now
        if worker.credit > 0 && workers[workerID]?.credit ?? 0 == 0 { worker.waitingSince = now }
        workers[workerID] = worker
    }

    /// Records a heartbeat.
    /// - Returns: false if the worker is unknown (it should send a work request first).
    @discardableResult
    public mutating func heartbeat(workerID: String, routingID: [UInt8], now: ContinuousClock.Instant) -> Bool {
        guard var worker = workers[workerID] else { return false }
        worker.lastSeen = now
        worker.routingID = routingID
        workers[workerID] = worker
        return true
    }

    /// Workers with credit, longest-waiting first: the order dispatch serves them in.
    public func waiting() -> [Worker] {
        workers.values.filter { $0.credit > 0 }.sorted { ($0.waitingSince, $0.id) < ($1.waitingSince, $1.id) }
    }

    /// Records that `job` was handed to the worker: one credit spent.
    public mutating func assigned(_ job: JobAttempt, to workerID: String) {
        guard var worker = workers[workerID] else { return }
        worker.credit = max(0, worker.credit - 1)
        worker.assignmentsSent += 1
        worker.running.insert(job)
        workers[workerID] = worker
    }

    /// Records that an attempt ended (result, abort or requeue).
    public mutating func finished(_ job: JobAttempt) {
        for (id, var worker) in workers where worker.running.remove(job) != nil {
            workers[id] = worker
        }
    }

    /// Adopts a worker that the database says runs jobs, after a coordinator
    /// (re)start: it gets `liveness` intervals from `now` to show up.
    public mutating func adopt(workerID: String, running: Set<JobAttempt>, now: ContinuousClock.Instant) {
        if var worker = workers[workerID] {
            worker.running.formUnion(running)
            workers[workerID] = worker
        } else {
            workers[workerID] = Worker(id: workerID, routingID: Array(workerID.utf8), labels: [:], region: "",
                                       credit: 0, assignmentsSent: 0, lastSeen: now, waitingSince: now, running: running)
        }
    }

    /// The worker running `jobID`, if any.
    public func holder(of jobID: String) -> (worker: Worker, job: JobAttempt)? {
        for worker in workers.values {
            if let job = worker.running.first(where: { $0.jobID == jobID }) { return (worker, job) }
        }
        return nil
    }

    /// Removes workers not heard from for `liveness` intervals.
    /// - Returns: the lost workers, with the attempts they were running.
    public mutating func expire(now: ContinuousClock.Instant) -> [Worker] {
        let limit = heartbeatInterval * liveness
        let lost = workers.values.filter { now - $0.lastSeen > limit }
        for worker in lost { workers[worker.id] = nil }
        return lost.sorted { $0.id < $1.id }
    }
}
