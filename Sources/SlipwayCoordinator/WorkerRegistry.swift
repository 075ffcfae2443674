/// One (job, attempt) pair: the fence every write about a running job carries.
public struct JobAttempt: Hashable, Sendable, Comparable {
    /// The job's id.
    public let jobID: String
    /// The attempt number the worker was given.
    public let attempt: Int

    /// Creates a pair.
    public init(jobID: String, attempt: Int) {
        self.jobID = jobID
        self.attempt = attempt
    }

    public static func < (lhs: JobAttempt, rhs: JobAttempt) -> Bool { (lhs.jobID, lhs.attempt) < (rhs.jobID, rhs.attempt) }
}

/// What a worker says about itself in a `WorkRequest` or a `WorkerHeartbeat`.
public struct WorkerReport: Sendable, Equatable {
    /// The worker's id (one per process start); also its routing id.
    public var workerID: String
    /// Where to send to it.
    public var routingID: [UInt8]
    /// Labels a job must be a subset of.
    public var labels: [String: String]
    /// The region whose store receives its artifacts.
    public var region: String
    /// Slots it has free now.
    public var freeSlots: Int
    /// Assignments it has received since it started.
    public var assignmentsReceived: UInt64
    /// Every attempt it holds (building, or finished with the result not yet
    /// acknowledged); nil in a work request, which does not list them.
    public var running: Set<JobAttempt>?

    /// A report.
    public init(workerID: String, routingID: [UInt8], labels: [String: String], region: String, freeSlots: Int,
                assignmentsReceived: UInt64, running: Set<JobAttempt>?) {
        self.workerID = workerID
        self.routingID = routingID
        self.labels = labels
        self.region = region
        self.freeSlots = freeSlots
        self.assignmentsReceived = assignmentsReceived
        self.running = running
    }
}

/// What the coordinator's I/O shell must do after the registry changed.
public enum DispatchAction: Sendable, Equatable {
    /// Put attempts back in the queue. `used` says whether the attempt counts
    /// against the job's retries: false when the worker provably never received
    /// the assignment (the job never ran), true when it may have run.
    case requeue([JobAttempt], reason: String, used: Bool)
}

/// The coordinator's view of its workers: credit, liveness and what each runs.
///
/// A pure state machine: no sockets, no clock of its own (callers pass `now`),
/// so dispatch and lease logic is tested without I/O.
///
/// **Credit.** A worker says how many slots it has free and how many
/// assignments it has received so far. Assignments still in flight are
/// `sent - received`, so the credit is exact even when a request crosses an
/// assignment on the wire: a worker is never handed more jobs than it can
/// start. Heartbeats carry the same numbers, so credit is reconciled every beat
/// (a work request lost with a rolled-back batch costs one heartbeat, not the
/// worker's work).
///
/// **What each worker runs.** Every assignment gets the worker's next sequence
/// number. Heartbeats list what the worker holds: an assignment it has received
/// (sequence ≤ received) but does not list was lost on the worker's side and
/// goes back to the queue. When a worker is lost, the assignments it never
/// confirmed receiving go back without using an attempt; the rest count.
///
/// **Liveness.** A worker that has not been heard from for `liveness`
/// intervals is lost (Paranoid Pirate). `heard` is separate from the rest so
/// the shell can record it even when the database is down.
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
        /// Assignments sent to it, counted like the worker counts what it received.
        public var assignmentsSent: UInt64
        /// Assignments it last said it had received.
        public var assignmentsConfirmed: UInt64
        /// When it was last heard from.
        public var lastSeen: ContinuousClock.Instant
        /// When it last asked for work; the longest-waiting worker is served first.
        public var waitingSince: ContinuousClock.Instant
        /// Attempts it runs, each with the sequence number of its assignment
        /// (0: adopted after a restart, so known to have been received).
        public var running: [JobAttempt: UInt64]
        /// False until the worker itself reported its labels and credit (an
        /// adopted worker is known only from the database).
        public var registered: Bool
        /// A send to it failed: no work goes to it until it is heard again.
        public var unreachable: Bool
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
    public var all: [Worker] { workers.values.sorted { $0.id < $1.id } }

    /// Records that something arrived from the worker: it is alive. Unknown
    /// workers are ignored (they register through ``report(_:now:)``).
    public mutating func heard(_ workerID: String, routingID: [UInt8], now: ContinuousClock.Instant) {
        guard var worker = workers[workerID] else { return }
        worker.lastSeen = now
        worker.routingID = routingID
        worker.unreachable = false
        workers[workerID] = worker
    }

    /// Takes in a work request or heartbeat: registers the worker (again, after
    /// a restart of this coordinator), refreshes its credit and, for a
    /// heartbeat, reconciles what it runs.
    public mutating func report(_ report: WorkerReport, now: ContinuousClock.Instant) -> [DispatchAction] {
        var actions: [DispatchAction] = []
        let known = workers[report.workerID]
        var worker = known ?? Worker(
            id: report.workerID, routingID: report.routingID, labels: report.labels, region: report.region, credit: 0,
            assignmentsSent: report.assignmentsReceived, assignmentsConfirmed: report.assignmentsReceived,
            lastSeen: now, waitingSince: now, running: [:],
            registered: true, unreachable: false)
        // A coordinator that started after the worker counts from the worker's tally.
        if !worker.registered || worker.assignmentsSent < report.assignmentsReceived {
            worker.assignmentsSent = max(worker.assignmentsSent, report.assignmentsReceived)
        }
        if let listed = report.running {
            // Received (sequence ≤ received) but not held: lost on the worker's side.
            let dropped = worker.running.filter { job, sequence in
                sequence <= report.assignmentsReceived && !listed.contains(job)
            }.keys.sorted()
            if !dropped.isEmpty {
                for job in dropped { worker.running[job] = nil }
                actions.append(.requeue(dropped, reason: "worker \(report.workerID) no longer holds the attempt", used: true))
            }
            // A worker this coordinator did not know (a new leader): trust what it runs; fencing checks it.
            if known == nil || known?.registered == false {
                for job in listed where worker.running[job] == nil { worker.running[job] = 0 }
            }
        }
        let inFlight = Int(worker.assignmentsSent - report.assignmentsReceived)
        let credit = max(0, report.freeSlots - inFlight)
        if credit > 0 && (known?.credit ?? 0) == 0 { worker.waitingSince = now }
        worker.routingID = report.routingID
        worker.labels = report.labels
        worker.region = report.region
        worker.credit = credit
        worker.assignmentsConfirmed = max(worker.assignmentsConfirmed, report.assignmentsReceived)
        worker.lastSeen = now
        worker.registered = true
        worker.unreachable = false
        workers[report.workerID] = worker
        return actions
    }

    /// Workers that may be handed work now, longest-waiting first: the order dispatch serves them in.
    public func waiting() -> [Worker] {
        workers.values.filter { $0.credit > 0 && $0.registered && !$0.unreachable }
            .sorted { ($0.waitingSince, $0.id) < ($1.waitingSince, $1.id) }
    }

    /// Records that `job` was handed to the worker: one credit spent, the next sequence number.
    public mutating func assigned(_ job: JobAttempt, to workerID: String) {
        guard var worker = workers[workerID] else { return }
        worker.credit = max(0, worker.credit - 1)
        worker.assignmentsSent += 1
        worker.running[job] = worker.assignmentsSent
        workers[workerID] = worker
    }

    /// An assignment could not be handed to its worker (it is not connected):
    /// the job goes back without using an attempt, and the worker gets no more
    /// work until it is heard from again.
    public mutating func undeliverable(_ job: JobAttempt, to workerID: String) -> [DispatchAction] {
        guard var worker = workers[workerID] else { return [.requeue([job], reason: "worker unreachable at dispatch", used: false)] }
        worker.running[job] = nil
        worker.assignmentsSent -= 1
        worker.credit = 0
        worker.unreachable = true
        workers[workerID] = worker
        return [.requeue([job], reason: "worker \(workerID) unreachable at dispatch", used: false)]
    }

    /// Something the worker sent for `job` (a log chunk) proves it received the assignment.
    public mutating func confirmed(_ job: JobAttempt) {
        for (id, var worker) in workers where worker.running[job] != nil && worker.running[job] != 0 {
            worker.running[job] = 0
            workers[id] = worker
        }
    }

    /// Records that an attempt ended (result, abort or requeue).
    public mutating func finished(_ job: JobAttempt) {
        for (id, var worker) in workers where worker.running.removeValue(forKey: job) != nil {
            workers[id] = worker
        }
    }

    /// Adopts a worker that the database says runs jobs, after a coordinator
    /// (re)start. `lastSeen` is when the worker was last heard of by any
    /// coordinator, so a dead worker is declared lost at the usual time, not a
    /// full liveness period after every change of leader.
    public mutating func adopt(workerID: String, running: Set<JobAttempt>, lastSeen: ContinuousClock.Instant) {
        if var worker = workers[workerID] {
            for job in running where worker.running[job] == nil { worker.running[job] = 0 }
            workers[workerID] = worker
        } else {
            workers[workerID] = Worker(id: workerID, routingID: Array(workerID.utf8), labels: [:], region: "",
                                       credit: 0, assignmentsSent: 0, assignmentsConfirmed: 0, lastSeen: lastSeen, waitingSince: lastSeen,
                                       running: Dictionary(uniqueKeysWithValues: running.map { ($0, 0) }),
                                       registered: false, unreachable: false)
        }
    }

    /// The worker running `jobID`, if any.
    public func holder(of jobID: String) -> (worker: Worker, job: JobAttempt)? {
        for worker in workers.values {
            if let job = worker.running.keys.first(where: { $0.jobID == jobID }) { return (worker, job) }
        }
        return nil
    }

    /// Removes workers not heard from for `liveness` intervals.
    /// - Returns: the lost workers' ids and what to do with their attempts.
    public mutating func expire(now: ContinuousClock.Instant) -> (lost: [String], actions: [DispatchAction]) {
        let limit = heartbeatInterval * liveness
        let lost = workers.values.filter { now - $0.lastSeen > limit }.sorted { $0.id < $1.id }
        var actions: [DispatchAction] = []
        let seconds = (limit.components.seconds * 1_000 + limit.components.attoseconds / 1_000_000_000_000_000) / 1_000
        for worker in lost {
            workers[worker.id] = nil
            // Assignments with a sequence above what the worker last confirmed may never have arrived.
            let confirmed = worker.running.filter { $0.value <= worker.assignmentsConfirmed }.keys.sorted()
            let unconfirmed = worker.running.filter { $0.value > worker.assignmentsConfirmed }.keys.sorted()
            if !confirmed.isEmpty {
                actions.append(.requeue(confirmed, reason: "worker lost: no heartbeat for \(seconds) s", used: true))
            }
            if !unconfirmed.isEmpty {
                actions.append(.requeue(unconfirmed, reason: "worker lost before it received the assignment", used: false))
            }
        }
        return (lost.map(\.id), actions)
    }
}
