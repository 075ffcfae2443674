@testable import SlipwayCoordinator
import Testing

@Suite("Worker registry: credit, reconciliation, liveness, adoption")
struct WorkerRegistryTests {
    let start = ContinuousClock.now

    func job(_ n: Int, attempt: Int = 1) -> JobAttempt { JobAttempt(jobID: "job-\(n)", attempt: attempt) }

    func report(_ id: String = "w", free: Int, received: UInt64, running: Set<JobAttempt>? = nil) -> WorkerReport {
        WorkerReport(workerID: id, routingID: Array(id.utf8), labels: [:], region: "r", freeSlots: free,
                     assignmentsReceived: received, running: running)
    }

    @Test("credit is free slots minus assignments still in flight")
    func creditCountsInFlight() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        #expect(registry.report(report(free: 2, received: 0), now: start).isEmpty)
        #expect(registry.worker("w")?.credit == 2)
        registry.assigned(job(1), to: "w")
        registry.assigned(job(2), to: "w")
        #expect(registry.worker("w")?.credit == 0)
        #expect(registry.waiting().isEmpty)
        _ = registry.report(report(free: 1, received: 1), now: start)
        #expect(registry.worker("w")?.credit == 0, "assignment 2 is still in flight and uses the free slot")
        _ = registry.report(report(free: 1, received: 2), now: start)
        #expect(registry.worker("w")?.credit == 1)
    }

    @Test("a coordinator that starts after the worker counts from the worker's tally")
    func lateCoordinator() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        _ = registry.report(report(free: 3, received: 40), now: start)
        #expect(registry.worker("w")?.credit == 3)
    }

    @Test("the longest-waiting worker is served first; unreachable ones not at all")
    func fairness() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        _ = registry.report(report("late", free: 1, received: 0), now: start + .milliseconds(5))
        _ = registry.report(report("early", free: 1, received: 0), now: start)
        #expect(registry.waiting().map(\.id) == ["early", "late"])
        registry.assigned(job(1), to: "early")
        _ = registry.report(report("early", free: 1, received: 0), now: start)
        let actions = registry.undeliverable(job(1), to: "early")
        #expect(actions == [.requeue([job(1)], reason: "worker early unreachable at dispatch", used: false)])
        #expect(registry.waiting().map(\.id) == ["late"])
        registry.heard("early", routingID: Array("early".utf8), now: start + .seconds(1))
        _ = registry.report(report("early", free: 1, received: 0), now: start + .seconds(1))
        #expect(registry.waiting().map(\.id) == ["late", "early"], "heard again it may get work, behind the one that waited longer")
    }

    @Test("a heartbeat reconciles: a received assignment the worker does not hold goes back; one in flight does not")
    func heartbeatReconciles() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        _ = registry.report(report(free: 2, received: 0), now: start)
        registry.assigned(job(1), to: "w")
        registry.assigned(job(2), to: "w")
        // Received the first only, and lost it; the second is still on the wire.
        let actions = registry.report(report(free: 2, received: 1, running: []), now: start)
        #expect(actions == [.requeue([job(1)], reason: "worker w no longer holds the attempt", used: true)])
        #expect(registry.holder(of: "job-2")?.worker.id == "w")
        #expect(registry.holder(of: "job-1") == nil)
        #expect(registry.report(report(free: 1, received: 2, running: [job(2)]), now: start).isEmpty)
    }

    @Test("a lost worker's confirmed attempts count; those it never confirmed receiving do not")
    func lossSplitsConfirmed() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        _ = registry.report(report("a", free: 2, received: 0), now: start)
        _ = registry.report(report("b", free: 1, received: 0), now: start)
        registry.assigned(job(7), to: "a")
        _ = registry.report(report("a", free: 1, received: 1, running: [job(7)]), now: start)
        registry.assigned(job(8), to: "a")  // sent; the worker died before saying it got it
        registry.heard("b", routingID: Array("b".utf8), now: start + .seconds(2))
        #expect(registry.expire(now: start + .seconds(3)).lost.isEmpty)
        let (lost, actions) = registry.expire(now: start + .milliseconds(3_001))
        #expect(lost == ["a"])
        #expect(actions == [.requeue([job(7)], reason: "worker lost: no heartbeat for 3 s", used: true),
                            .requeue([job(8)], reason: "worker lost before it received the assignment", used: false)])
        #expect(registry.worker("a") == nil)
        #expect(registry.expire(now: start + .milliseconds(5_001)).lost == ["b"])
    }

    @Test("adopted workers keep how long they were silent, and register with their first report")
    func adoption() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        registry.heard("ghost", routingID: [9], now: start)
        #expect(registry.worker("ghost") == nil, "hearing an unknown worker registers nothing")
        // Silent for 2.5 s when this coordinator took over: lost half a second later, not 3 s later.
        registry.adopt(workerID: "w", running: [job(1, attempt: 2)], lastSeen: start - .milliseconds(2_500))
        #expect(registry.holder(of: "job-1")?.job.attempt == 2)
        #expect(registry.worker("w")?.credit == 0 && registry.waiting().isEmpty, "no work before it reports its labels")
        #expect(registry.expire(now: start + .milliseconds(600)).lost == ["w"])

        registry.adopt(workerID: "v", running: [job(3)], lastSeen: start)
        let actions = registry.report(report("v", free: 1, received: 5, running: [job(3), job(4)]), now: start)
        #expect(actions.isEmpty)
        #expect(registry.holder(of: "job-4")?.worker.id == "v", "a new leader trusts what a worker runs; fencing checks it")
        #expect(registry.waiting().map(\.id) == ["v"])
        registry.finished(job(3))
        #expect(registry.holder(of: "job-3") == nil)
    }
}
