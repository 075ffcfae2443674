import ArgumentParser
import Foundation
import Logging
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire
import Synchronization

/// No-op jobs per second through the real coordinator (submit → claim → fenced
/// complete, over real sockets and PostgreSQL) vs two baselines on the same
/// server, in the same run: pgbench running the same claim + complete SQL
/// directly, and pgqueuer (a PostgreSQL job queue from PyPI) moving the same
/// number of no-op jobs; and submit → worker-start latency on an idle system.
struct PipelineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "No-op jobs/s end to end vs pgbench on the same SQL; submit→start latency.")

    @Option(name: .customLong("database-url"), help: "A database on the server to use; the bench creates and drops its own databases there.")
    var databaseURL: String
    @Option(help: "Jobs in the throughput run.") var jobs = 2_000
    @Option(help: "No-op workers.") var workers = 4
    @Option(help: "Slots per no-op worker: assignments it takes at once (pgqueuer's default batch is 10).") var slots = 1
    @Option(help: "Concurrent producers submitting.") var producers = 4
    @Option(help: "Samples for the latency run.") var samples = 200
    @Option(help: "A Python with pgqueuer and asyncpg (default: a venv made under .local/bench-venv from PyPI).")
    var peerPython: String?
    @Option(help: "Rounds of the pipeline without and with a webhook whose receiver is down (0: skip).")
    var webhookRounds = 0
    @Flag(help: "Only the webhook rounds (no pgbench, pgqueuer or CURVE runs).") var webhookOnly = false

    func run() async throws {
        let logger = Logger(label: "bench")
        if webhookRounds > 0 { try await measureDeadWebhook(logger: logger) }
        if webhookOnly { return }
        let ours = try await measurePipeline(curve: nil, logger: logger)
        let keys = try CurveBenchKeys(clientRole: .worker, clientName: "bench")
        defer { keys.remove() }
        let curve = try await measurePipeline(curve: keys, logger: logger)
        let baseline = try await measurePgbench(logger: logger)
        let peer = try await measurePeer(logger: logger)
        print(String(format: "pipeline: %d no-op jobs, %d workers with %d slots, %d producers: %.0f jobs/s end to end",
                     jobs, workers, slots, producers, ours.rate))
        print(String(format: "baseline: pgbench claim+complete SQL, %d clients: %.0f jobs/s", workers, baseline))
        print(String(format: "peer: pgqueuer, %d workers (its defaults: batches of 10, run concurrently), %d producers: %.0f jobs/s",
                     workers, producers, peer))
        print(String(format: "ratio end-to-end/pgqueuer = %.3f (goal >= 1.0)", ours.rate / peer))
        print(String(format: "ratio end-to-end/pgbench = %.3f (goal >= 0.6)", ours.rate / baseline))
        print(String(format: "submit -> worker start on an idle system (%d samples): p50 %.2f ms, p99 %.2f ms (goal p99 <= 5 ms)",
                     samples, ours.p50, ours.p99))
        print(String(format: "pipeline with CURVE (every socket encrypted, ZAP, permission checks): %.0f jobs/s; submit -> start p50 %.2f ms, p99 %.2f ms",
                     curve.rate, curve.p50, curve.p99))
        print(String(format: "ratio CURVE/plain = %.3f (goal >= 0.8)", curve.rate / ours.rate))
    }

    // MARK: a webhook that never answers

    /// The pipeline with and without a coordinator whose webhook receiver is down (every
    /// build outcome queued for it, retried with back-off), in alternating rounds.
    private func measureDeadWebhook(logger: Logger) async throws {
        let dead = "http://127.0.0.1:\(freeLoopbackPort())/hook"
        var ratios: [Double] = []
        for round in 1...webhookRounds {
            let without = try await measurePipeline(curve: nil, logger: logger)
            let with = try await measurePipeline(curve: nil, logger: logger,
                                                 coordinatorFlags: ["--webhook", dead, "--webhook-events", "job_queued,job_started,job_succeeded,job_failed"])
            ratios.append(with.rate / without.rate)
            print(String(format: "round %d: without a webhook %.0f jobs/s (p99 %.2f ms); with a dead webhook %.0f jobs/s (p99 %.2f ms); ratio %.3f",
                         round, without.rate, without.p99, with.rate, with.p99, with.rate / without.rate))
        }
        ratios.sort()
        print(String(format: "ratio dead-webhook/none: median %.3f over %d rounds (min %.3f, max %.3f) (goal >= 0.95)",
                     ratios[ratios.count / 2], ratios.count, ratios.first!, ratios.last!))
    }

    // MARK: pgqueuer

    /// Runs Benchmarks/peers/pgqueuer_bench.py against a fresh database on the same server.
    private func measurePeer(logger: Logger) async throws -> Double {
        let python = try peerPython ?? preparePeerEnvironment()
        let database = try await createDatabase(suffix: "pgqueuer", logger: logger, migrate: false)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("peers/pgqueuer_bench.py").path
        let text = try runTool(python, [script, database, String(jobs), String(workers), String(producers)])
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("pgqueuer: ") }),
              let rate = Double(line.dropFirst("pgqueuer: ".count).prefix { $0 != " " }) else {
            throw ValidationError("pgqueuer bench failed:\n\(text)")
        }
        return rate
    }

    /// A venv with pgqueuer from PyPI, made once.
    private func preparePeerEnvironment() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = root.appendingPathComponent(".local/bench-venv").path
        let python = venv + "/bin/python"
        if !FileManager.default.fileExists(atPath: python) {
            _ = try runTool("/usr/bin/python3", ["-m", "venv", venv])
        }
        _ = try runTool(python, ["-m", "pip", "install", "-q", "pgqueuer==1.6.0", "asyncpg"])
        return python
    }

    private func runTool(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("\(tool) \(arguments.first ?? "") failed:\n\(text)") }
        return text
    }

    // MARK: Slipway

    /// Jobs/s and submit → start latency; with `curve`, the coordinator runs with its key and
    /// trust folder, the workers and producers with theirs (as `--insecure` otherwise).
    private func measurePipeline(curve: CurveBenchKeys?, logger: Logger,
                                 coordinatorFlags: [String] = []) async throws -> (rate: Double, p50: Double, p99: Double) {
        let database = try await createDatabase(suffix: curve == nil ? "pipeline" : "pipeline_curve", logger: logger)
        let intake = "tcp://127.0.0.1:\(freeLoopbackPort())", dispatch = "tcp://127.0.0.1:\(freeLoopbackPort())"
        var producerSecurity = ClientSecurity.plain, workerSecurity = ClientSecurity.plain
        var keyFlags = ["--insecure"]
        if let curve {
            let ci = try Certificate.generate(for: try Identity(role: .ci, name: "bench"))
            try curve.trust(ci)
            producerSecurity = .curve(ci.keyPair, server: curve.server.publicKey)
            workerSecurity = .curve(curve.client.keyPair, server: curve.server.publicKey)
            keyFlags = ["--key", curve.secretFile(curve.server), "--trust-dir", curve.folder.appendingPathComponent("trust").path]
        }
        let coordinator = try startCoordinator(database: database, intake: intake, dispatch: dispatch, keyFlags: keyFlags + coordinatorFlags)
        let (workerID, workerKeys) = (curve == nil ? "bench-worker-" : "bench@worker-", workerSecurity)
        defer { coordinator.terminate(); coordinator.waitUntilExit() }

        let context = try ZMQContext()
        let started = Mutex<[String: ContinuousClock.Instant]>([:])
        let completed = Atomic<Int>(0)
        let stop = StopSignal()
        var threads: [OwnedThread] = []
        for index in 0..<workers {
            let thread = OwnedThread(name: "noop-\(index)")
            threads.append(thread)
            thread.execute {
                NoOpWorker(id: workerID + String(index), endpoint: dispatch, context: context,
                           slots: slots, security: workerKeys).run(stop: stop) { jobID in
                    started.withLock { $0[jobID] = .now }
                } completed: {
                    completed.add(1, ordering: .relaxed)
                }
            }
        }
        defer {
            stop.stop()
            threads.forEach { $0.shutdown() }
        }
        let probe = try SlipwayClient(endpoint: intake, security: producerSecurity, requestTimeout: .seconds(10))
        _ = try await probe.jobs(Slipway_V1_JobListQuery())  // wait until the coordinator answers
        try await Task.sleep(for: .milliseconds(500))         // and the workers have asked for work

        // Latency: one job at a time on an idle system.
        var latencies: [Double] = []
        for sample in 0..<samples {
            let before = ContinuousClock.now
            let ack = try await probe.submit(noop("latency-\(sample)"))
            var start: ContinuousClock.Instant?
            while start == nil {
                start = started.withLock { $0[ack.jobID] }
                if start == nil { try await Task.sleep(for: .microseconds(200)) }
            }
            let elapsed = start! - before
            latencies.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3)
        }
        await probe.close()
        latencies.sort()

        // Throughput: `jobs` submissions from several producers while workers drain the queue.
        let baseline = completed.load(ordering: .relaxed)
        let clock = ContinuousClock()
        let begin = clock.now
        let producerKeys = producerSecurity
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                let count = jobs / producers + (producer < jobs % producers ? 1 : 0)
                group.addTask {
                    let client = try SlipwayClient(endpoint: intake, security: producerKeys, requestTimeout: .seconds(10))
                    for index in 0..<count { _ = try await client.submit(noop("throughput-\(producer)-\(index)")) }
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
        while completed.load(ordering: .relaxed) - baseline < jobs { try await Task.sleep(for: .milliseconds(1)) }
        let elapsed = clock.now - begin
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(jobs) / seconds, percentile(latencies, 0.50), percentile(latencies, 0.99))
    }

    private func noop(_ key: String) -> Slipway_V1_SubmitBuild {
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = key
        request.repoURL = "file:///bench/noop"
        request.commit = "main"
        request.artifactName = "noop"
        request.recipe = "true"
        request.artifactPath = "x"
        return request
    }

    // MARK: pgbench

    private func measurePgbench(logger: Logger) async throws -> Double {
        let database = try await createDatabase(suffix: "pgbench", logger: logger)
        let client = PGClient(url: database, logger: logger)
        let transactionsPerClient = jobs / workers
        try await client.query("""
            INSERT INTO jobs (idempotency_key, repo_url, commit_sha, artifact_name, recipe, artifact_path)
            SELECT 'k' || g, 'file:///bench/noop', 'main', 'noop', 'true', 'x' FROM generate_series(1, $1) AS g
            """, [.int(transactionsPerClient * workers + workers * 10)])
        await client.close()
        // The coordinator's claim and fenced completion, as JobQueue runs them.
        let script = """
            WITH next AS (SELECT id FROM jobs WHERE status = 'queued' AND NOT cancel_requested AND not_before <= now() AND labels <@ '{}'::jsonb ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE jobs AS j SET status = 'running', attempt = j.attempt + 1, worker_id = 'w' || :client_id::text, lease_expires_at = now() + make_interval(secs => j.timeout_seconds), started_at = now(), error = NULL FROM next WHERE j.id = next.id RETURNING j.id AS job_id, j.attempt AS job_attempt \\gset
            UPDATE jobs SET status = 'succeeded', finished_at = now(), artifact_digest = repeat('a', 64), error = NULL WHERE id = :job_id::uuid AND attempt = :job_attempt::int AND status = 'running';

            """
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-claim-\(UUID().uuidString).sql")
        try script.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let text = try runTool("/usr/bin/pgbench", ["-n", "-M", "prepared", "-c", String(workers), "-j", String(min(workers, 2)),
                                                    "-t", String(transactionsPerClient), "-f", file.path, database])
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let tps = Double(line.dropFirst(6).prefix { $0 != " " }) else {
            throw ValidationError("pgbench failed:\n\(text)")
        }
        return tps
    }

    // MARK: helpers

    private func createDatabase(suffix: String, logger: Logger, migrate: Bool = true) async throws -> String {
        try await createBenchDatabase(adminURL: databaseURL, suffix: suffix, logger: logger, migrate: migrate)
    }

    private func startCoordinator(database: String, intake: String, dispatch: String, keyFlags: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try siblingExecutable("slipway"))
        process.arguments = ["coordinator", "--database-url", database, "--intake", intake, "--dispatch", dispatch,
                             "--events", "tcp://127.0.0.1:\(freeLoopbackPort())", "--log-level", "warning"] + keyFlags
        try process.run()
        return process
    }

    private func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
    }

}

/// A worker that speaks the real protocol but builds nothing: it acknowledges
/// every assignment at once with a valid one-piece manifest of an artifact of
/// its own (as every real build of a new commit has), so it is idle again at
/// once: every message it sends offers all its slots.
struct NoOpWorker {
    let id: String
    let endpoint: String
    let context: ZMQContext
    let slots: Int
    let security: ClientSecurity

    func run(stop: StopSignal, started: (String) -> Void, completed: () -> Void) {
        do {
            let codec = WireCodec()
            let socket = try ZMQSocket(context: context, type: .dealer)
            defer { socket.close() }
            try socket.set(.routingID(Array(id.utf8)))
            for option in security.options { try socket.set(option) }
            try socket.connect(endpoint)
            var received: UInt64 = 0
            var request = Slipway_V1_WorkRequest()
            request.workerID = id
            request.freeSlots = UInt32(slots)
            try socket.send(codec.encode(WireMessage(request, sender: id)))
            var manifest = Slipway_V1_ArtifactManifest()
            manifest.digest = String(repeating: "e", count: 64)
            manifest.size = 1
            manifest.pieceSize = 1
            manifest.pieceSha256 = [Data(count: 32)]
            manifest.name = "noop"
            var lastBeat = ContinuousClock.now
            while !stop.isStopped {
                if ContinuousClock.now - lastBeat > .seconds(1) {
                    // Everything a work request says: heartbeats reconcile credit. It holds nothing between jobs.
                    var beat = Slipway_V1_WorkerHeartbeat()
                    beat.workerID = id
                    beat.freeSlots = UInt32(slots)
                    beat.assignmentsReceived = received
                    try socket.send(codec.encode(WireMessage(beat, sender: id)), wait: .never)
                    lastBeat = .now
                }
                guard let frames = try socket.receive(wait: .timeout(.milliseconds(100))),
                      let message = try? codec.decode(frames), message.type == .workAssignment,
                      let assignment = try? message.body(as: Slipway_V1_WorkAssignment.self) else { continue }
                received += 1
                started(assignment.jobID)
                var result = Slipway_V1_BuildResult()
                result.jobID = assignment.jobID
                result.attempt = assignment.attempt
                result.outcome = .succeeded
                manifest.digest = String((assignment.jobID.filter(\.isHexDigit).lowercased() + String(repeating: "e", count: 64)).prefix(64))
                result.artifactDigest = manifest.digest
                result.artifactSize = 1
                result.manifest = manifest
                result.region = "bench"
                request.assignmentsReceived = received
                try socket.send(codec.encode(WireMessage(result, sender: id)))
                try socket.send(codec.encode(WireMessage(request, sender: id)))
                completed()
            }
        } catch {
            print("no-op worker \(id) failed: \(error)")
        }
    }
}
