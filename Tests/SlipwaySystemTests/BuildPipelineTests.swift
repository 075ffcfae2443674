import SlipwayCore
import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import SlipwayThreads
import SlipwayWire
import Testing

/// Real processes on loopback: coordinator, workers and a region store built
/// from this package, a real PostgreSQL, real git repositories.
@Suite("Build pipeline end to end", .serialized, .enabled(if: Cluster.isConfigured))
struct BuildPipelineTests {
    @Test("coordinator + 2 workers + region build a real repo; the stored digest matches the file the recipe produced")
    func endToEnd() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.endToEnd($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "SIGTERM should drain every daemon to exit 0: \(statuses)")
    }

    @Test("kill -9 a worker mid-build: the job is requeued and succeeds on the other; the late result is fenced")
    func killedWorker() async throws {
        _ = try await Cluster.with { try await Self.killedWorker($0) }
    }

    @Test("coordinator killed mid-run: the standby takes over; no job is lost or run twice")
    func coordinatorFailover() async throws {
        _ = try await Cluster.with { try await Self.coordinatorFailover($0) }
    }

    @Test("bad input ends in a clear terminal state and every daemon stays up")
    func badInput() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.badInput($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func submission(_ repo: URL, _ commit: String, key: String = UUID().uuidString, recipe: String = "",
                           path: String = "", attempts: UInt32 = 0, timeout: UInt32 = 0) -> Slipway_V1_SubmitBuild {
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = key
        request.repoURL = repo.path
        request.commit = commit
        request.artifactName = "app"
        request.recipe = recipe
        request.artifactPath = path
        request.maxAttempts = attempts
        request.timeoutSeconds = timeout
        return request
    }

    static func endToEnd(_ cluster: Cluster) async throws {
        try cluster.startCoordinator()
        try cluster.startRegion()
        try cluster.startWorker("w1")
        try cluster.startWorker("w2")
        let (repo, commit) = try TestRepository.make(in: cluster.directory)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        let ack = try await client.submit(submission(repo, commit, key: "ci-run-1"))
        let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
        #expect(done.status == .succeeded, "\(done.error)")
        #expect(done.attempt == 1)

        // What the recipe wrote, hashed independently of Slipway.
        let expected = cluster.directory.appendingPathComponent("expected")
        try "hello \(commit)\n".write(to: expected, atomically: true, encoding: .utf8)
        let digest = try await shellOutput("sha256sum '\(expected.path)' | cut -d' ' -f1")
        #expect(done.artifactDigest == digest)
        let stored = cluster.directory.appendingPathComponent("region/artifacts/\(digest)/pieces/0")
        #expect(try Data(contentsOf: stored) == Data(contentsOf: expected))

        // The log streamed from the build, and the same key returns the same job.
        let (_, log) = try await client.log(ack.jobID, from: 0)
        #expect(String(decoding: log, as: UTF8.self).contains("building \(commit)"))
        let again = try await client.submit(submission(repo, commit, key: "ci-run-1"))
        #expect(again.jobID == ack.jobID && again.duplicate)
        #expect(again.status == .succeeded)
        // The same key for a different build is refused, naming what differs; nothing is stored.
        var other = submission(repo, commit, key: "ci-run-1")
        other.recipe = "echo other > out"
        other.artifactName = "other"
        let reused = await #expect(throws: ProducerError.self) { _ = try await client.submit(other) }
        #expect(reused?.serverCode.name == "failed_precondition")
        #expect(reused.map { "\($0)" }?.contains("different artifact name, recipe") == true, "\(String(describing: reused))")

        // A different key for the same commit and recipe is a cache hit.
        let cached = try await client.submit(submission(repo, commit, key: "ci-run-2"))
        #expect(cached.cacheHit && cached.status == .succeeded)
        #expect(try await client.job(cached.jobID).artifactDigest == digest)

        // Provenance: where the artifact came from and where it is.
        var query = Slipway_V1_ArtifactQuery()
        query.digest = digest
        let artifact = try #require(try await client.artifacts(query).first)
        #expect(artifact.jobID == ack.jobID && artifact.commit == commit && artifact.repoURL == repo.path)
        #expect(artifact.size == UInt64("hello \(commit)\n".utf8.count) && artifact.originRegion == "local")
        #expect(artifact.replicas.map(\.region) == ["local"] && artifact.replicas.first?.state == .complete)
        #expect(artifact.deployableAtUnixMicros > 0, "with no --regions, the build's own region is all it needs")
        query.digest = String(repeating: "0", count: 64)
        let unknown = await #expect(throws: ProducerError.self) { _ = try await client.artifacts(query) }
        #expect(unknown?.serverCode.name == "not_found")

        // A subscriber that starts after all of it still gets every event, gap-free, in order.
        // On a loaded machine an assignment may be handed back unstarted and given out again
        // (uncharged: the attempt stays 1, checked above); such pairs are the only extras allowed.
        let database = PGClient(url: cluster.databaseURL, logger: TestDatabase.logger)
        let eventCount = try await database.query("SELECT count(*) AS n FROM events").first!.int("n")
        // The worker's manifest carries a root per piece, and the coordinator keeps them.
        let recorded = try #require(try await database.query("""
            SELECT block_size, length(piece_roots) AS roots, length(piece_sha256) AS hashes FROM artifacts WHERE digest = $1
            """, [.text(digest)]).first)
        #expect(try recorded.int("block_size") == 64 << 10)
        #expect(try recorded.int("roots") == recorded.int("hashes"))
        await database.close()
        let events = try await lateSubscriber(cluster, count: eventCount)
        #expect(events.map(\.sequence) == Array(1...UInt64(max(eventCount, 1))))
        var types = events.map(\.type)
        while let requeued = types.firstIndex(of: .jobRequeued), types.indices.contains(requeued + 1), types[requeued + 1] == .jobStarted {
            types.removeSubrange(requeued...requeued + 1)
        }
        #expect(types == [.jobQueued, .jobStarted, .jobSucceeded, .artifactPublished, .artifactDeployable, .jobSucceeded], "\(events.map(\.type))")
        #expect(events.first { $0.type == .artifactPublished }?.artifactDigest == digest)
    }

    static func lateSubscriber(_ cluster: Cluster, count: Int) async throws -> [Slipway_V1_Event] {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "late-subscriber")
        defer { thread.shutdown() }
        let (publisher, snapshot) = (cluster.events, cluster.snapshot)
        let security = try cluster.security(.operator, "tester")
        return try await thread.run {
            let subscriber = try EventSubscriber(context: context, publisher: Endpoint(parsing: publisher), snapshot: Endpoint(parsing: snapshot), sender: "test",
                                                 security: security)
            defer { subscriber.close() }
            var events: [Slipway_V1_Event] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while events.count < count, ContinuousClock.now < deadline {
                if let event = try subscriber.next(wait: .timeout(.milliseconds(200))) { events.append(event) }
            }
            return events
        }
    }

    static func killedWorker(_ cluster: Cluster) async throws {
        try cluster.startCoordinator()
        try cluster.startRegion()
        let w1 = try cluster.startWorker("w1")
        let w2 = try cluster.startWorker("w2")
        // Attempt 1 outlives any scheduling delay before the kill; attempt 2 finishes at once.
        let marker = cluster.directory.appendingPathComponent("first-attempt").path
        // The marker exists before the first log line, so the kill (which waits for that line) cannot
        // land before it and leave attempt 2 sleeping too (seen once under a loaded machine).
        let slow = "#!/bin/sh\nif [ ! -e '\(marker)' ]; then touch '\(marker)'; echo started; sleep 60; fi\necho again\nmkdir -p out\necho slow > out/app\n"
        let (repo, commit) = try TestRepository.make(in: cluster.directory, recipe: slow)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let ack = try await client.submit(submission(repo, commit))

        var running = try await client.job(ack.jobID)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let started = try await client.log(ack.jobID, from: 0).bytes.count > 0
            if running.status == .running && started { break }
            try await Task.sleep(for: .milliseconds(50))
            running = try await client.job(ack.jobID)
        }
        let victim = running.workerID.contains("-\(w1.pid)-") ? w1 : w2
        let lostWorkerID = running.workerID
        victim.signal(SIGKILL)
        await victim.exited()

        let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
        #expect(done.status == .succeeded, "\(done.error)")
        #expect(done.attempt == 2)
        #expect(done.workerID != lostWorkerID)

        // The dead worker's attempt-1 result, arriving late, changes nothing.
        let accepted = try await lateResult(to: cluster.dispatch, from: lostWorkerID, jobID: ack.jobID,
                                            security: try cluster.security(.worker, "builder"))
        #expect(accepted == false)
        let after = try await client.job(ack.jobID)
        #expect(after.status == .succeeded && after.attempt == 2 && after.error.isEmpty)
        let database = PGClient(url: cluster.databaseURL, logger: TestDatabase.logger)
        let successes = try await database.query("SELECT count(*) AS n FROM events WHERE type = 'job_succeeded'").first!.int("n")
        await database.close()
        #expect(successes == 1)
    }

    /// Plays a dead worker whose attempt-1 result arrives after the job moved on.
    /// - Returns: whether the coordinator accepted it (nil: no answer).
    static func lateResult(to dispatch: String, from workerID: String, jobID: String, security: ClientSecurity) async throws -> Bool? {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "late-worker")
        defer { thread.shutdown() }
        return try await thread.run { () throws -> Bool? in
            let socket = try ZMQSocket(context: context, type: .dealer)
            defer { socket.close() }
            try socket.set(.routingID(Array(workerID.utf8)))
            for option in security.options { try socket.set(option) }
            try socket.connect(dispatch)
            var late = Slipway_V1_BuildResult()
            late.jobID = jobID
            late.attempt = 1
            late.outcome = .failed
            late.error = "late result from a dead worker"
            try socket.send(WireCodec().encode(WireMessage(late, sender: workerID)))
            while let frames = try socket.receive(wait: .timeout(.seconds(5))) {
                if let message = try? WireCodec().decode(frames), message.type == .resultAck {
                    return try message.body(as: Slipway_V1_ResultAck.self).accepted
                }
            }
            return nil
        }
    }

    static func coordinatorFailover(_ cluster: Cluster) async throws {
        let primary = try cluster.startCoordinator("primary")
        try await cluster.waitForLog("primary", "coordinator active")
        try cluster.startCoordinator("standby")
        try await cluster.waitForLog("standby", "standby")
        try cluster.startRegion()
        try cluster.startWorker("w1")
        let slow = "#!/bin/sh\nsleep 2\nmkdir -p out\necho slow > out/app\n"
        let (repo, commit) = try TestRepository.make(in: cluster.directory, recipe: slow)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(), requestTimeout: .seconds(2), retries: 8)
        defer { Task { await client.close() } }
        let first = try await client.submit(submission(repo, commit))
        var info = try await client.job(first.jobID)
        while info.status == .queued {
            try await Task.sleep(for: .milliseconds(50))
            info = try await client.job(first.jobID)
        }

        primary.signal(SIGKILL)
        await primary.exited()
        try await cluster.waitForLog("standby", "coordinator active")

        // Submitted to the new leader through the same endpoint (the client retries).
        let second = try await client.submit(submission(repo, commit, recipe: "mkdir -p out && echo two > out/app", path: "out/app"))
        let firstDone = try await client.wait(for: first.jobID, timeout: .seconds(60))
        let secondDone = try await client.wait(for: second.jobID, timeout: .seconds(60))
        #expect(firstDone.status == .succeeded, "\(firstDone.error)")
        #expect(firstDone.attempt == 1, "the worker kept running the job through the switch")
        #expect(secondDone.status == .succeeded, "\(secondDone.error)")
    }

    /// Sends malformed messages to every ROUTER the daemons expose.
    static func sendGarbage(to targets: [String], security: ClientSecurity = .plain) async throws {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "garbage")
        defer { thread.shutdown() }
        try await thread.run {
            for target in targets {
                let socket = try ZMQSocket(context: context, type: .dealer)
                for option in security.options { try socket.set(option) }
                try socket.connect(target)
                let samples: [[[UInt8]]] = [
                    [[0x0F, 0xFF]],
                    [[], [0x0F, 0xFF, 0x00]],
                    Array(repeating: [1, 2, 3], count: 20),
                    [[], Array(repeating: 0xAB, count: 4_096)],
                    [[], [0x08, 0x02, 0x10, 0x01]],
                ]
                for frames in samples { try socket.send(frames) }
                socket.close()
            }
        }
    }

    static func finished(_ client: SlipwayClient, _ request: Slipway_V1_SubmitBuild) async throws -> Slipway_V1_JobInfo {
        try await client.wait(for: try await client.submit(request).jobID, timeout: .seconds(30))
    }

    static func badInput(_ cluster: Cluster) async throws {
        try cluster.startCoordinator()
        try cluster.startRegion()
        try cluster.startWorker("w1", slots: 2)
        let (repo, commit) = try TestRepository.make(in: cluster.directory)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        try await cluster.waitForLog("coordinator", "coordinator active")
        // From a peer with a trusted key: what a compromised key can send, past the handshake.
        try await sendGarbage(to: [cluster.intake, cluster.dispatch], security: try cluster.security(.worker, "builder"))
        try await sendGarbage(to: [cluster.store], security: try cluster.security(.worker, "builder", region: "local"))

        let unknown = try await finished(client, submission(repo, String(repeating: "0", count: 40)))
        #expect(unknown.status == .failed && unknown.error.contains("not found in repo"), "\(unknown.error)")

        let failing = try await finished(client, submission(repo, commit, recipe: "echo boom >&2; exit 3", path: "x"))
        #expect(failing.status == .failed && failing.error == "recipe exited with status 3")

        let escape = try await finished(client, submission(repo, commit, recipe: "ln -s /etc/passwd leak", path: "leak"))
        #expect(escape.status == .failed && escape.error.contains("outside the workspace"), "\(escape.error)")
        let dotdot = try await finished(client, submission(repo, commit, recipe: "true", path: "../../etc/passwd"))
        #expect(dotdot.status == .failed && dotdot.error.contains("outside the workspace"), "\(dotdot.error)")

        let slow = try await finished(client, submission(repo, commit, recipe: "sleep 30", path: "x", attempts: 1, timeout: 1))
        #expect(slow.status == .failed && slow.error.contains("timed out"), "\(slow.error)")
        // The worker's own result for the timed-out attempt still gets through: its last log
        // chunk, refused for the ended attempt, is acknowledged all the same.
        try await cluster.waitForLog("coordinator", "job_id=\(slow.jobID) outcome=", timeout: .seconds(15))

        // Cancel kills the build's whole process group, grandchildren included.
        let marker = cluster.directory.appendingPathComponent("sleeper.pid").path
        let cancelled = try await client.submit(submission(repo, commit, recipe: "sleep 60 & echo $! > '\(marker)'; wait", path: "x"))
        while !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(100))
        let sleeper = try String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await client.cancel(cancelled.jobID).status == .running)
        let end = try await client.wait(for: cancelled.jobID, timeout: .seconds(30))
        #expect(end.status == .cancelled)
        // Dead means gone or a zombie (this container's PID 1 may not reap orphans).
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await runShell("test ! -e /proc/\(sleeper) || grep -q '^State:.*Z' /proc/\(sleeper)/status") == 0,
                "the recipe's background sleep must die with its group")

        // Refused before anything is stored.
        let invalid = await #expect(throws: ProducerError.self) {
            _ = try await client.submit(submission(repo, "--upload-pack=touch /tmp/x"))
        }
        #expect(invalid?.serverCode.name == "invalid_argument")
        // A command-running transport is refused at submit, naming why; nothing ran.
        let pwned = cluster.directory.appendingPathComponent("pwned").path
        var helper = submission(repo, commit, key: "ext-transport")
        helper.repoURL = "ext::sh -c touch% \(pwned)"
        let refusedHelper = await #expect(throws: ProducerError.self) { _ = try await client.submit(helper) }
        #expect(refusedHelper?.serverCode.name == "invalid_argument")
        #expect(refusedHelper.map { "\($0)" }?.contains("remote helper") == true, "\(String(describing: refusedHelper))")
        #expect(!FileManager.default.fileExists(atPath: pwned))
        let missing = await #expect(throws: ProducerError.self) { _ = try await client.job("not-a-job") }
        #expect(missing?.serverCode.name == "not_found")

        // Still serving after all of it.
        let fine = try await finished(client, submission(repo, commit, key: "after-garbage"))
        #expect(fine.status == .succeeded)
    }
}
