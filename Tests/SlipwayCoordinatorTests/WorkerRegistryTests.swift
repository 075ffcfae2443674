@testable import SlipwayCoordinator
import Testing

@Suite("Worker registry: credit, liveness, adoption")
struct WorkerRegistryTests {
    let start = ContinuousClock.now
    func job(_ n: Int, attempt: Int = 1) -> JobAttempt { JobAttempt(jobID: "job-\(n)", attempt: attempt) }

    @Test("credit is the free slots minus assignments still in flight")
    func creditSubtractsInFlight() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        registry.workRequest(workerID: "w", routingID: [1], labels: [:], region: "r", freeSlots: 2, assignmentsReceived: 0, now: start)
        #expect(registry.worker("w")?.credit == 2)
        registry.assigned(job(1), to: "w")
        registry.assigned(job(2), to: "w")
        #expect(registry.worker("w")?.credit == 0)
        #expect(registry.waiting().isEmpty)
        // The worker finished job 1 and asks again before it saw assignment 2.
        registry.workRequest(workerID: "w", routingID: [1], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 1, now: start)
        #expect(registry.worker("w")?.credit == 0, "assignment 2 is still in flight and uses the free slot")
        registry.workRequest(workerID: "w", routingID: [1], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 2, now: start)
        #expect(registry.worker("w")?.credit == 1)
    }

    @Test("a worker that started before this coordinator is counted from its own tally")
    func restartedCoordinator() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        registry.workRequest(workerID: "w", routingID: [1], labels: [:], region: "r", freeSlots: 3, assignmentsReceived: 40, now: start)
        #expect(registry.worker("w")?.credit == 3)
    }

    @Test("the longest-waiting worker is served first")
    func waitingOrder() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1))
        registry.workRequest(workerID: "late", routingID: [2], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 0, now: start + .milliseconds(5))
        registry.workRequest(workerID: "early", routingID: [1], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 0, now: start)
        #expect(registry.waiting().map(\.id) == ["early", "late"])
    }

    @Test("a worker silent for more than liveness intervals is lost with its jobs")
    func expiry() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        registry.workRequest(workerID: "a", routingID: [1], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 0, now: start)
        registry.workRequest(workerID: "b", routingID: [2], labels: [:], region: "r", freeSlots: 1, assignmentsReceived: 0, now: start)
        registry.assigned(job(7), to: "a")
        registry.heartbeat(workerID: "b", routingID: [2], now: start + .seconds(2))
        #expect(registry.expire(now: start + .seconds(3)).isEmpty)
        let lost = registry.expire(now: start + .milliseconds(3_001))
        #expect(lost.map(\.id) == ["a"])
        #expect(lost.first?.running == [job(7)])
        #expect(registry.worker("a") == nil)
        #expect(registry.holder(of: "job-7") == nil)
        #expect(registry.expire(now: start + .milliseconds(5_001)).map(\.id) == ["b"])
    }

    @Test("adopted workers get a grace period; unknown heartbeats are refused")
    func adoption() {
        var registry = WorkerRegistry(heartbeatInterval: .seconds(1), liveness: 3)
        #expect(registry.heartbeat(workerID: "ghost", routingID: [9], now: start) == false)
        registry.adopt(workerID: "w", running: [job(1, attempt: 2)], now: start)
        #expect(registry.holder(of: "job-1")?.job.attempt == 2)
        #expect(registry.worker("w")?.credit == 0)
        registry.finished(job(1, attempt: 2))
        #expect(registry.holder(of: "job-1") == nil)
        #expect(registry.expire(now: start + .seconds(4)).map(\.id) == ["w"])
    }
}
