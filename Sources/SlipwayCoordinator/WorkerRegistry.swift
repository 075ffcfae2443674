/// One (job, attempt) pair: the fence every write about a running job carries.
public struct JobAttempt: Hashable, Sendable, Comparable {
    /// The job's id.
    public let jobID: String
    /// The attempt number (fence) the worker was given.
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
    /// Assignments it has received since it started (informational).
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
    /// against the job's retries: false when the worker provably never had it
    /// (the job never ran), true when it may have run.
    case requeue([JobAttempt], reason: String, used: Bool)
    /// A worker says it runs attempts this coordinator did not know of: ask the
    /// database which are current, and stop the others.
    case verify(workerID: String, routingID: [UInt8], [JobAttempt])
}

/// The coordinator's view of its workers: credit, liveness and what each runs.
///
/// A pure state machine: no sockets, no clock of its own (callers pass `now`),
/// so dispatch and lease logic is tested without I/O.
///
/// **What each worker holds.** An assignment is *sent* until the worker shows
/// it has it (lists it in a heartbeat, or sends a log chunk for it); then it is
/// *confirmed*. A heartbeat that no longer lists a confirmed attempt means the
/// worker lost it: it goes back to the queue and counts. An assignment still
/// unconfirmed a liveness period after it was sent, while the worker keeps
/// reporting, never arrived (its connection dropped with it queued): it goes
/// back without counting. A worker that lists attempts this coordinator did not
/// know (a new leader, a worker that was declared lost and came back) has them
/// checked against the database.
///
/// **Credit.** Free slots, minus assignments sent and not yet confirmed: a
/// worker is never handed more jobs than it can start, also when a request
/// crosses an assignment on the wire. Heartbeats carry the same numbers, so
/// credit is reconciled every beat.
///
/// **Liveness.** A worker that has not been heard from for `liveness`
/// intervals is lost (Paranoid Pirate): its confirmed attempts go back and
/// count, the ones it never confirmed do not. `heard` is separate from the rest
/// so the shell can record it even when the database is down.
public struct WorkerRegistry: Sendable {
    /// How far along an assignment is.
    public enum Holding: Sendable, Equatable {
        /// Sent at this time; the worker has not shown it has it yet.
        case sent(ContinuousClock.Instant)
        /// The worker has it.
        case confirmed
    }

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
        /// When it was last heard from.
        public var lastSeen: ContinuousClock.Instant
        /// When it last asked for work; the longest-waiting worker is served first.
        public var waitingSince: ContinuousClock.Instant
        /// Attempts it runs.
        public var running: [JobAttempt: Holding]
        /// False until the worker itself reported its labels and credit (an
        /// adopted worker is known only from the database).
        public var registered: Bool
        /// A send to it failed: no work goes to it until it is heard again.
        public var unreachable: Bool

        /// Assignments on their way.
        var inFlight: Int { running.values.filter { if case .sent = $0 { true } else { false } }.count }
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

    /// How long a worker may stay silent, and an assignment unconfirmed.
    public var livenessPeriod: Duration { heartbeatInterval * liveness }

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

    /// The shell could not listen for `gap` (a long transaction, a paused
    /// process): nobody's silence during it counts, and an assignment sent
    /// before it may have left only now, so it gets its full time to show up.
    public mutating func stalled(for gap: Duration, now: ContinuousClock.Instant) {
        for id in workers.keys {
            workers[id]!.lastSeen = min(now, workers[id]!.lastSeen + gap)
            for (job, holding) in workers[id]!.running {
                if case .sent(let at) = holding { workers[id]!.running[job] = .sent(min(now, at + gap)) }
            }
        }
    }

    /// Takes in a work request or heartbeat: registers the worker (again, after
    /// a restart of this coordinator), refreshes its credit and, for a
    /// heartbeat, reconciles what it runs.
    public mutating func report(_ report: WorkerReport, now: ContinuousClock.Instant) -> [DispatchAction] {
        var actions: [DispatchAction] = []
        let known = workers[report.workerID]
        var worker = known ?? Worker(id: report.workerID, routingID: report.routingID, labels: report.labels, region: report.region,
                                     credit: 0, lastSeen: now, waitingSince: now, running: [:], registered: true, unreachable: false)
        if let listed = report.running {
            var dropped: [JobAttempt] = [], neverArrived: [JobAttempt] = []
            for (job, holding) in worker.running {
                if listed.contains(job) {
                    worker.running[job] = .confirmed
                } else if case .sent(let at) = holding {
                    if now - at > livenessPeriod { neverArrived.append(job) }
                } else {
                    dropped.append(job)
                }
            }
            for job in dropped + neverArrived { worker.running[job] = nil }
            if !dropped.isEmpty {
                actions.append(.requeue(dropped.sorted(), reason: "worker \(report.workerID) no longer holds the attempt", used: true))
            }
            if !neverArrived.isEmpty {
                actions.append(.requeue(neverArrived.sorted(), reason: "the assignment never reached worker \(report.workerID)", used: false))
            }
            let unknown = listed.filter { worker.running[$0] == nil }.sorted()
            if !unknown.isEmpty {
                for job in unknown { worker.running[job] = .confirmed }
                actions.append(.verify(workerID: report.workerID, routingID: report.routingID, unknown))
            }
        }
        let credit = max(0, report.freeSlots - worker.inFlight)
        if credit > 0 && (known?.credit ?? 0) == 0 { worker.waitingSince = now }
        worker.routingID = report.routingID
        worker.labels = report.labels
        worker.region = report.region
        worker.credit = credit
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

    /// Records that `job` was handed to the worker at `now`: one credit spent.
    public mutating func assigned(_ job: JobAttempt, to workerID: String, now: ContinuousClock.Instant) {
        guard var worker = workers[workerID] else { return }
        worker.credit = max(0, worker.credit - 1)
        worker.running[job] = .sent(now)
        workers[workerID] = worker
    }

    /// The database says `job` runs on `workerID`, but this registry had lost
    /// track of it (a transaction whose outcome was unknown): track it as sent
    /// now, so the worker's next heartbeats confirm it or send it back.
    public mutating func track(_ job: JobAttempt, on workerID: String, now: ContinuousClock.Instant) {
        guard holder(of: job) == nil else { return }
        if workers[workerID] == nil {
            adopt(workerID: workerID, running: [job], lastSeen: now)
        } else {
            workers[workerID]!.running[job] = .sent(now)
        }
    }

    /// Something the worker sent for `job` (a log chunk) proves it has it.
    public mutating func confirmed(_ job: JobAttempt) {
        for (id, var worker) in workers where worker.running[job] != nil && worker.running[job] != .confirmed {
            worker.running[job] = .confirmed
            workers[id] = worker
        }
    }

    /// An assignment could not be handed to its worker (it is not connected):
    /// the job goes back without using an attempt, and the worker gets no more
    /// work until it is heard from again.
    public mutating func undeliverable(_ job: JobAttempt, to workerID: String) -> [DispatchAction] {
        if var worker = workers[workerID] {
            worker.running[job] = nil
            worker.credit = 0
            worker.unreachable = true
            workers[workerID] = worker
        }
        return [.requeue([job], reason: "worker \(workerID) unreachable at dispatch", used: false)]
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
            for job in running where worker.running[job] == nil { worker.running[job] = .confirmed }
            workers[workerID] = worker
        } else {
            workers[workerID] = Worker(id: workerID, routingID: Array(workerID.utf8), labels: [:], region: "", credit: 0,
                                       lastSeen: lastSeen, waitingSince: lastSeen,
                                       running: Dictionary(uniqueKeysWithValues: running.map { ($0, .confirmed) }),
                                       registered: false, unreachable: false)
        }
    }

    /// The worker running exactly this attempt, if any.
    public func holder(of job: JobAttempt) -> Worker? {
        workers.values.first { $0.running[job] != nil }
    }

    /// Every attempt some worker runs.
    public var attempts: Set<JobAttempt> { Set(workers.values.flatMap { $0.running.keys }) }

    /// Removes workers not heard from for `liveness` intervals.
    /// - Returns: the lost workers' ids and what to do with their attempts.
    public mutating func expire(now: ContinuousClock.Instant) -> (lost: [String], actions: [DispatchAction]) {
        let lost = workers.values.filter { now - $0.lastSeen > livenessPeriod }.sorted { $0.id < $1.id }
        var actions: [DispatchAction] = []
        let limit = livenessPeriod.components
        let seconds = (limit.seconds * 1_000 + limit.attoseconds / 1_000_000_000_000_000) / 1_000
        for worker in lost {
            workers[worker.id] = nil
            let confirmed = worker.running.filter { $0.value == .confirmed }.keys.sorted()
            let unconfirmed = worker.running.filter { $0.value != .confirmed }.keys.sorted()
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
