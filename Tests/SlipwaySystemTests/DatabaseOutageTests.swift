import Foundation
import SlipwayCore
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Nothing accepted is lost when the database or a worker goes away at the
/// worst moment. Real processes; the outage test stops its own PostgreSQL
/// server (`SLIPWAY_TEST_OUTAGE_PG`, set by ops/test), so other suites are not disturbed.
@Suite("Database outages and lost assignments", .serialized, .enabled(if: Cluster.isConfigured))
struct DatabaseOutageTests {
    static let outageServer = TestDatabase.environment["SLIPWAY_TEST_OUTAGE_DATABASE_URL"]
    static let outageControl = TestDatabase.environment["SLIPWAY_TEST_OUTAGE_PG"]

    static func waitForStatus(_ client: SlipwayClient, _ id: String, _ status: Slipway_V1_JobStatus,
                              timeout: Duration = .seconds(30)) async throws -> Slipway_V1_JobInfo {
        var info = try await client.job(id)
        try await ReplicationTests.waitFor("job \(id) to be \(status)", timeout: timeout) {
            info = try await client.job(id)
            return info.status == status
        }
        return info
    }

    @Test("PostgreSQL stopped while a worker finishes a build, started 20 s later: the job succeeds on its first attempt, and the worker gets new work at once",
          .enabled(if: outageServer != nil && outageControl != nil))
    func buildFinishesDuringOutage() async throws {
        let control = try require_(Self.outageControl)
        let (_, statuses) = try await Cluster.with(server: Self.outageServer) { cluster in
            defer { _ = try? runShell("\(control) up > /dev/null") }
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let marker = cluster.directory.appendingPathComponent("go").path
            let recipe = "#!/bin/sh\necho waiting\nwhile [ ! -e '\(marker)' ]; do sleep 0.1; done\nmkdir -p out\necho done > out/app\n"
            let (repo, commit) = try TestRepository.make(in: cluster.directory, recipe: recipe)
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(), requestTimeout: .seconds(2), retries: 3)
            defer { Task { await client.close() } }
            let ack = try await client.submit(BuildPipelineTests.submission(repo, commit))
            _ = try await Self.waitForStatus(client, ack.jobID, .running)
            // The build has started and its first log line is stored: the assignment arrived. (Before that,
            // a worker starved of CPU past its 1.2 s liveness may have its assignment handed out again, uncharged.)
            try await ReplicationTests.waitFor("the build's first log line", timeout: .seconds(30)) {
                String(decoding: try await client.log(ack.jobID, from: 0).bytes, as: UTF8.self).contains("waiting")
            }
            let running = try await client.job(ack.jobID)
            #expect(running.status == .running && running.attempt == 1)

            #expect(try await runShell("\(control) down > /dev/null") == 0)
            // The build ends while the database is down: its result cannot be recorded yet.
            _ = FileManager.default.createFile(atPath: marker, contents: nil)
            try await cluster.waitForLog("w1", "build finished")
            try await Task.sleep(for: .seconds(20))
            let unavailable = await #expect(throws: ProducerError.self) { _ = try await client.job(ack.jobID) }
            #expect(unavailable?.serverCode == .unavailable, "intake answers 'unavailable' while the database is down")
            #expect(try await runShell("\(control) up > /dev/null") == 0)

            let done = try await client.wait(for: ack.jobID, timeout: .seconds(30))
            #expect(done.status == .succeeded, "\(done.error)")
            let requeues = cluster.logText("coordinator").split(separator: "\n").filter { $0.contains("requeued") || $0.contains("lost") }
            #expect(done.attempt == 1 && done.fence == running.fence,
                    "the result of the build that ran through the outage, resent until recorded: \(requeues.joined(separator: "\n"))")
            // The result may be recorded before the log chunks lost in the outage are resent (a result
            // waits for its log only so long); the worker resends them until they are stored.
            var log = ""
            try? await ReplicationTests.waitFor("the whole log", timeout: .seconds(20)) {
                log = String(decoding: try await client.log(ack.jobID, from: 0).bytes, as: UTF8.self)
                return log.contains("build succeeded")
            }
            #expect(log.contains("waiting") && log.contains("build succeeded"), "the log has its end: \(log)")

            // Credit came back with the worker's heartbeats: the next job starts at once.
            _ = FileManager.default.createFile(atPath: marker, contents: nil)
            let next = try await client.submit(BuildPipelineTests.submission(repo, commit, recipe: "mkdir -p out && echo two > out/app",
                                                                             path: "out/app"))
            let started = ContinuousClock.now
            let second = try await client.wait(for: next.jobID, timeout: .seconds(30))
            #expect(second.status == .succeeded)
            #expect(ContinuousClock.now - started < .seconds(10), "the idle worker got the job without waiting minutes")
            #expect(cluster.logText("coordinator").contains("database available again"))
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("SIGKILL of a worker just before it is assigned a job: the job runs later with its attempt count unchanged")
    func assignmentNeverDelivered() async throws {
        // 2 s heartbeats: the frozen worker is lost 6 s after its last beat. With 400 ms it was lost 0.8-1.2 s
        // after the freeze, a window in which a loaded machine did not always submit and dispatch the job.
        let (_, statuses) = try await Cluster.with(heartbeat: "2s") { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            let doomed = try cluster.startWorker("doomed")
            try await cluster.waitForLog("doomed", "] serving")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            // A first job proves the worker registered (half a second after "serving" was not always enough
            // on a loaded machine); it asks for more work as it reports, so it has credit a moment later
            // (given 2 s: the credit crosses two processes a loaded machine may be slow to schedule).
            let warmUp = try await client.submit(BuildPipelineTests.submission(repo, commit, recipe: "mkdir -p out && echo warm > out/app",
                                                                               path: "out/app"))
            #expect(try await client.wait(for: warmUp.jobID, timeout: .seconds(30)).status == .succeeded)
            try await Task.sleep(for: .seconds(2))

            // Frozen, the worker cannot read: the assignment is sent but never received. Then it dies.
            doomed.signal(SIGSTOP)
            let ack = try await client.submit(BuildPipelineTests.submission(repo, commit))
            // Assigned: its fence moved. (Not "running": the frozen worker never says so.)
            try await ReplicationTests.waitFor("job \(ack.jobID) to be assigned", timeout: .seconds(30)) {
                try await client.job(ack.jobID).fence >= 1
            }
            doomed.signal(SIGKILL)
            await doomed.exited()

            try cluster.startWorker("healthy")
            let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
            #expect(done.status == .succeeded, "\(done.error)")
            #expect(done.attempt == 1, "the lost assignment is not charged: attempt \(done.attempt) of \(done.maxAttempts)")
            #expect(done.fence == 2, "but its fence is never handed out again")
            #expect(cluster.logText("coordinator").contains("worker lost before it received the assignment"))
        }
        #expect(statuses.filter { $0.key != "doomed" }.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
