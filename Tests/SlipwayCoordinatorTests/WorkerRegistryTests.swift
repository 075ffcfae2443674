@testable import SlipwayCoordinator
import Testing

@Suite("Worker registry: credit, reconciliation, liveness, adoption")
struct WorkerRegistryTests {
    let start = ContinuousClock.now

    func job(_ n: Int, attempt: Int = 1) -> JobAttempt { JobAttempt(jobID: "job-\(n)", attempt: attempt) }

    func report(_ id: String = "w", free: Int, running: Set<JobAttempt>? = nil) -> WorkerReport {
        WorkerReport(workerID: id, routingID: Array(id.utf8), labels: [:], region: "r", freeSlots: free,
                     assignmentsReceived: 0, running: running)
    }

    @Test("credit is free slots minus assignments on their way")
    func creditCountsInFlight() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        #expect(registry.report(report(free: 2), now: start).isEmpty)
        #expect(registry.worker("w")?.credit == 2)
        registry.assigned(job(1), to: "w", now: start)
        registry.assigned(job(2), to: "w", now: start)
        #expect(registry.worker("w")?.credit == 0)
        #expect(registry.waiting().isEmpty)
        // The worker got the first (it says so) and has one slot left; the second is still on the wire.
        _ = registry.report(report(free: 1, running: [job(1)]), now: start)
        #expect(registry.worker("w")?.credit == 0, "assignment 2 is still on its way and takes the free slot")
        _ = registry.report(report(free: 0, running: [job(1), job(2)]), now: start)
        #expect(registry.worker("w")?.credit == 0)
        registry.finished(job(1))
        _ = registry.report(report(free: 1, running: [job(2)]), now: start)
        #expect(registry.worker("w")?.credit == 1)
    }

    @Test("the longest-waiting worker is served first; unreachable ones not at all")
    func fairness() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        _ = registry.report(report("late", free: 1), now: start + .milliseconds(5))
        _ = registry.report(report("early", free: 1), now: start)
        #expect(registry.waiting().map(\.id) == ["early", "late"])
        registry.assigned(job(1), to: "early", now: start)
        let actions = registry.undeliverable(job(1), to: "early")
        #expect(actions == [.requeue([job(1)], reason: "worker early unreachable at dispatch", used: false)])
        #expect(registry.waiting().map(\.id) == ["late"])
        registry.heard("early", routingID: Array("early".utf8), now: start + .seconds(1))
        _ = registry.report(report("early", free: 1), now: start + .seconds(1))
        #expect(registry.waiting().map(\.id) == ["late", "early"], "heard again it may get work, behind the one that waited longer")
    }

    @Test("a heartbeat reconciles: a confirmed attempt the worker dropped counts; one that never arrived does not")
    func heartbeatReconciles() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        _ = registry.report(report(free: 3), now: start)
        registry.assigned(job(1), to: "w", now: start)
        registry.assigned(job(2), to: "w", now: start)
        registry.assigned(job(3), to: "w", now: start)
        // Job 1 confirmed; 2 and 3 not yet listed, but young: still on their way.
        #expect(registry.report(report(free: 2, running: [job(1)]), now: start + .seconds(1)).isEmpty)
        registry.confirmed(job(3))  // a log chunk for it arrived
        // The worker lost job 1; job 2 has been unconfirmed for longer than a liveness period.
        let actions = registry.report(report(free: 2, running: [job(3)]), now: start + .seconds(4))
        #expect(actions == [.requeue([job(1)], reason: "worker w no longer holds the attempt", used: true),
                            .requeue([job(2)], reason: "the assignment never reached worker w", used: false)])
        #expect(registry.holder(of: job(3))?.id == "w")
        #expect(registry.holder(of: job(1)) == nil && registry.holder(of: job(2)) == nil)
        #expect(registry.worker("w")?.credit == 2, "nothing is in flight any more")
    }

    @Test("attempts a worker lists that the registry does not know are checked against the database")
    func unknownAttemptsAreVerified() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        _ = registry.report(report(free: 1), now: start)
        let actions = registry.report(report(free: 0, running: [job(9, attempt: 2)]), now: start)
        #expect(actions == [.verify(workerID: "w", routingID: Array("w".utf8), [job(9, attempt: 2)])])
        #expect(registry.holder(of: job(9, attempt: 2))?.id == "w")
        #expect(registry.holder(of: job(9, attempt: 3)) == nil, "holders match the exact attempt")
    }

    @Test("a lost worker's confirmed attempts count; those it never confirmed do not")
    func lossSplitsConfirmed() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        _ = registry.report(report("a", free: 2), now: start)
        _ = registry.report(report("b", free: 1), now: start)
        registry.assigned(job(7), to: "a", now: start)
        _ = registry.report(report("a", free: 1, running: [job(7)]), now: start)
        registry.assigned(job(8), to: "a", now: start)  // sent; the worker died before it showed it had it
        registry.heard("b", routingID: Array("b".utf8), now: start + .seconds(2))
        #expect(registry.expire(now: start + .seconds(3)).lost.isEmpty)
        let (lost, actions) = registry.expire(now: start + .milliseconds(3_001))
        #expect(lost == ["a"])
        #expect(actions == [.requeue([job(7)], reason: "worker lost: no heartbeat for 3 s", used: true),
                            .requeue([job(8)], reason: "worker lost before it received the assignment", used: false)])
        #expect(registry.worker("a") == nil)
        #expect(registry.expire(now: start + .milliseconds(5_001)).lost == ["b"])
    }

    @Test("a stall of the coordinator's loop does not count as the workers' silence")
    func stallIsForgiven() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        _ = registry.report(report(free: 1), now: start)
        registry.stalled(for: .seconds(10), now: start + .seconds(10))
        #expect(registry.expire(now: start + .seconds(12)).lost.isEmpty)
        #expect(registry.expire(now: start + .milliseconds(13_001)).lost == ["w"])
    }

    @Test("an assignment sent just before a stall is not taken for lost by the heartbeats that were waiting behind it")
    func stallKeepsAssignments() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        _ = registry.report(report(free: 1), now: start)
        registry.assigned(job(1), to: "w", now: start)
        registry.stalled(for: .seconds(10), now: start + .seconds(10))
        // Heartbeats queued during the stall, read on waking, predate the assignment's arrival.
        #expect(registry.report(report(free: 1, running: []), now: start + .milliseconds(10_500)).isEmpty)
        #expect(registry.holder(of: job(1))?.id == "w")
        #expect(registry.report(report(free: 1, running: []), now: start + .milliseconds(13_001))
                == [.requeue([job(1)], reason: "the assignment never reached worker w", used: false)])
    }

    @Test("adopted and tracked attempts: silence kept from the database, lost track of attempts come back as sent")
    func adoption() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        registry.heard("ghost", routingID: [9], now: start)
        #expect(registry.worker("ghost") == nil, "hearing an unknown worker registers nothing")
        // Silent for 2.5 s when this coordinator took over: lost half a second later, not 3 s later.
        registry.adopt(workerID: "w", running: [job(1, attempt: 2)], lastSeen: start - .milliseconds(2_500))
        #expect(registry.holder(of: job(1, attempt: 2))?.id == "w")
        #expect(registry.worker("w")?.credit == 0 && registry.waiting().isEmpty, "no work before it reports its labels")
        #expect(registry.expire(now: start + .milliseconds(600)).lost == ["w"])

        _ = registry.report(report("v", free: 1), now: start)
        registry.track(job(3), on: "v", now: start)
        #expect(registry.worker("v")?.credit == 1 && registry.worker("v")?.inFlight == 1)
        let actions = registry.report(report("v", free: 1), now: start + .seconds(5))
        #expect(actions.isEmpty, "a work request lists nothing, so decides nothing")
        let later = registry.report(report("v", free: 1, running: []), now: start + .seconds(5))
        #expect(later == [.requeue([job(3)], reason: "the assignment never reached worker v", used: false)])
    }
}
