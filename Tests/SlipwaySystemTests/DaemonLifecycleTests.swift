import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
@testable import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How every daemon starts and stops, through the real binary: a daemon that
/// cannot do its job exits non-zero at once (0.1 s idle; the bound allows a loaded CI machine) with one line naming the
/// setting; SIGTERM stops it within the documented 15 s, also after one of its
/// services failed.
@Suite("Daemon start and stop", .serialized, .enabled(if: Cluster.isConfigured))
struct DaemonLifecycleTests {
    /// What a daemon printed and how it ended.
    struct Ending {
        let status: Int32
        let seconds: Double
        let output: String
    }

    /// Runs `slipway ARGS` until it exits (SIGKILL after `limit`).
    static func run(_ arguments: [String], in directory: URL, limit: Duration = .seconds(30)) async throws -> Ending {
        let log = directory.appendingPathComponent("run-\(UUID().uuidString.prefix(8)).log")
        let started = ContinuousClock.now
        let process = try SpawnedProcess([Cluster.binary!] + arguments, log: log)
        while !process.hasExited, ContinuousClock.now - started < limit { try await Task.sleep(for: .milliseconds(20)) }
        if !process.hasExited { process.signal(SIGKILL) }
        let status = await process.exited()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Ending(status: status, seconds: seconds, output: (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// A TCP socket and what `call` (bind or connect) returned for 127.0.0.1:`port`.
    static func loopbackSocket(_ port: Int, reuseAddress: Bool = false,
                               _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> (descriptor: Int32, result: Int32) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if reuseAddress {
            var on: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return (descriptor, result)
    }

    /// A listening TCP socket on 127.0.0.1 that holds a port until closed.
    static func occupy() -> (port: Int, descriptor: Int32) {
        while true {
            let port = freeLoopbackPort()
            let (descriptor, bound) = loopbackSocket(port, Glibc.bind)
            if bound == 0, listen(descriptor, 1) == 0 { return (port, descriptor) }
            close(descriptor)
        }
    }

    @Test("every daemon refuses a bad endpoint, a taken port, an unusable folder: non-zero by itself, the setting named")
    func startupFailures() async throws {
        let cluster = try await Cluster()
        defer { Task { await cluster.shutdown() } }
        let dir = cluster.directory
        let file = dir.appendingPathComponent("a-file")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        let taken = Self.occupy()
        defer { close(taken.descriptor) }
        let busy = "tcp://127.0.0.1:\(taken.port)"
        let free = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
        let db = ["--database-url", cluster.databaseURL]
        let region = { ["region", "--store-dir", dir.appendingPathComponent("r-\(UUID().uuidString.prefix(4))").path,
                        "--store", free(), "--tracker", free(), "--targets", free(), "--insecure"] }
        let agent = { ["agent", "--service", "s", "--root", dir.appendingPathComponent("a-\(UUID().uuidString.prefix(4))").path,
                       "--tracker", free(), "--targets", free(), "--listen", free(), "--insecure"] }
        let worker = { ["worker", "--coordinator-dispatch", free(), "--store", free(), "--work-dir", dir.appendingPathComponent("w").path, "--insecure"] }
        let keyless = { db + ["--intake", free(), "--dispatch", free(), "--events", free(), "--snapshot", free()] }
        let coordinator = { keyless() + ["--insecure"] }
        let coordinatorKey = try cluster.keyFile(.coordinator, "main")
        let publicCertificate = try cluster.coordinatorCertificate()
        let looseToken = dir.appendingPathComponent("loose-token").path
        #expect(FileManager.default.createFile(atPath: looseToken, contents: Data(String(repeating: "ab", count: 20).utf8), attributes: [.posixPermissions: 0o644]))

        let cases: [(what: String, arguments: [String], mustName: String)] = [
            ("region, endpoint without tcp://", region() + ["--store", "127.0.0.1:7845"], "--store"),
            ("region, port out of range", region() + ["--tracker", "tcp://127.0.0.1:77100"], "--tracker"),
            ("region, tracker port taken", region() + ["--tracker", busy], "--tracker \(busy): cannot bind: Address already in use (listening: pid \(getpid()) ("),
            ("region, store folder under a file", region() + ["--store-dir", file.path + "/store"], "--store-dir"),
            ("region, metrics port taken", region() + ["--metrics-listen", "127.0.0.1:\(taken.port)"], "--metrics-listen"),
            ("agent, endpoint without tcp://", agent() + ["--listen", "127.0.0.1:7730"], "--listen"),
            ("agent, piece port taken", agent() + ["--listen", busy], "--listen \(busy): cannot bind"),
            ("agent, root under a file", agent() + ["--root", file.path + "/agent"], "--root"),
            ("worker, endpoint without tcp://", worker() + ["--coordinator-dispatch", "localhost"], "--coordinator-dispatch"),
            ("worker given the old meaning of --coordinator (its dispatch endpoint)", ["worker", "--coordinator", "tcp://127.0.0.1:7701"] + worker().dropFirst(3),
             "--coordinator-dispatch tcp://127.0.0.1:7701"),
            ("worker giving builds PATH as a variable", worker() + ["--env", "PATH=/opt/x"], "--env: PATH is set with --path"),
            ("worker with a toolchain folder that is not there", worker() + ["--path", "/no/such/toolchain"], "--path /no/such/toolchain: no such folder"),
            ("worker with an environment file it cannot read", worker() + ["--env-file", "/no/such.env"], "--env-file /no/such.env: cannot read"),
            ("worker, coordinator address with no room for its sockets", ["worker", "--coordinator", "127.0.0.1:65534"] + worker().dropFirst(3),
             "--coordinator: '127.0.0.1:65534' is not a valid endpoint: port 65534 leaves no room"),
            ("region, coordinator address that is not one", region() + ["--coordinator", "ipc:///tmp/x"], "--coordinator: 'ipc:///tmp/x'"),
            ("worker, work folder under a file", worker() + ["--work-dir", file.path + "/w"], "--work-dir"),
            ("worker, metrics port taken", worker() + ["--metrics-listen", "127.0.0.1:\(taken.port)"], "--metrics-listen"),
            ("coordinator, endpoint without tcp://", ["coordinator"] + coordinator() + ["--events", "127.0.0.1:1"], "--events"),
            ("coordinator, intake port taken", ["coordinator"] + coordinator() + ["--intake", busy], "--intake \(busy): cannot bind"),
            ("coordinator, intake on another machine's address", ["coordinator"] + coordinator() + ["--intake", "tcp://192.0.2.1:7700"],
             "--intake tcp://192.0.2.1:7700: cannot bind"),
            ("coordinator without a key", ["coordinator"] + keyless(), "no key: pass --key"),
            ("coordinator with a key but no trust folder", ["coordinator"] + keyless() + ["--key", coordinatorKey], "--trust-dir"),
            ("coordinator given a public certificate as its key", ["coordinator"] + keyless() + ["--key", publicCertificate,
                                                                                                   "--trust-dir", cluster.trustDirectory.path],
             "holds no secret key"),
            ("coordinator, trust folder that is a file", ["coordinator"] + keyless() + ["--key", coordinatorKey, "--trust-dir", file.path],
             "--trust-dir"),
            ("worker with the coordinator's key", worker().dropLast() + ["--key", coordinatorKey, "--coordinator-key", publicCertificate],
             "is a coordinator key; this daemon needs a worker key"),
            ("worker building as root", worker() + ["--build-user", "root"], "--build-user: root is root"),
            ("worker building as a user that does not exist", worker() + ["--build-user", "no-such-user-here"], "--build-user: no user"),
            ("worker with a key but no coordinator key", worker().dropLast() + ["--key", try cluster.keyFile(.worker, "w")],
             "--coordinator-key"),
            ("region whose key names another region", region().dropLast() + ["--name", "eu", "--key", try cluster.keyFile(.region, "us"),
                                                                             "--coordinator-key", publicCertificate,
                                                                             "--trust-dir", cluster.trustDirectory.path], "--key"),
            ("region peering with a region it has no certificate of", region().dropLast() + ["--name", "eu", "--key", try cluster.keyFile(.region, "eu"),
                                                                                             "--coordinator-key", publicCertificate,
                                                                                             "--trust-dir", cluster.trustDirectory.path,
                                                                                             "--peer", "mars=tcp://127.0.0.1:1"],
             "--peer mars: no certificate of region mars"),
            ("agent whose key names another machine", agent().dropLast() + ["--machine-id", "m1", "--key", try cluster.keyFile(.agent, "m2"),
                                                                            "--trust-dir", cluster.trustDirectory.path,
                                                                            "--region-key", try cluster.publicCertificate(.region, "eu")],
             "--key: is the key of machine m2"),
            ("agent with a key but no region key", agent().dropLast() + ["--machine-id", "m1", "--key", try cluster.keyFile(.agent, "m1"),
                                                                         "--trust-dir", cluster.trustDirectory.path],
             "--region-key"),
            ("agent with a key but no trust folder for its piece server",
             agent().dropLast() + ["--machine-id", "m1", "--key", try cluster.keyFile(.agent, "m1"), "--region-key", try cluster.publicCertificate(.region, "eu")],
             "--trust-dir"),
            ("coordinator with a key, metrics on every interface without a token",
             ["coordinator"] + keyless() + ["--key", coordinatorKey, "--trust-dir", cluster.trustDirectory.path, "--metrics-listen", "0.0.0.0:\(freeLoopbackPort())"],
             "--metrics-listen 0.0.0.0:"),
            ("agent with a key, metrics on every interface without a token",
             agent().dropLast() + ["--machine-id", "m1", "--key", try cluster.keyFile(.agent, "m1"), "--region-key", try cluster.publicCertificate(.region, "eu"),
                                   "--trust-dir", cluster.trustDirectory.path, "--metrics-listen", "0.0.0.0:\(freeLoopbackPort())"], "give --metrics-token-file"),
            ("region with a key, metrics on 127.0.0.1 without a token: any local process could read them",
             region().dropLast() + ["--name", "eu", "--key", try cluster.keyFile(.region, "eu"), "--coordinator-key", publicCertificate,
                                    "--trust-dir", cluster.trustDirectory.path, "--metrics-listen", "127.0.0.1:\(freeLoopbackPort())"],
             "--metrics-listen 127.0.0.1:"),
            ("worker, a metrics token with no metrics to guard", worker() + ["--metrics-token-file", looseToken], "there is no --metrics-listen"),
            ("worker, metrics token file others can read", worker() + ["--metrics-listen", "127.0.0.1:\(freeLoopbackPort())", "--metrics-token-file", looseToken],
             "--metrics-token-file \(looseToken): holds a secret but its mode is 644"),
            ("agent, a target age limit under a second", agent() + ["--target-max-age", "500ms"], "--target-max-age must be 0 (no limit) or at least 1s"),
            ("coordinator, database URL libpq cannot parse", ["coordinator", "--database-url", "postgresql://x:y@/db?bogus=1"] + coordinator().dropFirst(2),
             "--database-url"),
        ]
        for item in cases {
            let ending = try await Self.run(item.arguments, in: dir)
            #expect(ending.status != 0, "\(item.what): exited 0\n\(ending.output)")
            // By itself, not killed at the limit: a process start alone took 5.3 s once on a loaded CI machine.
            #expect(ending.seconds < 15, "\(item.what): took \(ending.seconds) s")
            #expect(ending.output.contains(item.mustName), "\(item.what): \(ending.output)")
        }
    }

    @Test("/metrics with a token file: 401 without the token, 200 with it; a replaced file rotates it and a loosened one shuts it, without a restart")
    func metricsToken() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let file = cluster.directory.appendingPathComponent("metrics-token").path
            func writeToken(_ token: String, mode: Int = 0o600) {
                try? FileManager.default.removeItem(atPath: file)
                #expect(FileManager.default.createFile(atPath: file, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: mode]))
            }
            let (first, second) = (String(repeating: "1f", count: 16), String(repeating: "2e", count: 24))
            writeToken(first)
            let port = freeLoopbackPort()
            try cluster.startCoordinator(extra: ["--metrics-listen", "0.0.0.0:\(port)", "--metrics-token-file", file])
            try await cluster.waitForLog("coordinator", "coordinator active")
            func scrape(_ token: String?) throws -> (status: Int?, body: String) {
                let reply = try AgentTests.scrape(port, token: token)
                return (AgentTests.status(of: reply), reply)
            }
            let anonymous = try scrape(nil)
            #expect(anonymous.status == 401 && !anonymous.body.contains("slipway_jobs"), "\(anonymous.body)")
            #expect(anonymous.body.contains("WWW-Authenticate: Bearer") || anonymous.body.contains("www-authenticate: Bearer"), "\(anonymous.body)")
            #expect(try scrape(second).status == 401)
            let admitted = try scrape(first)
            #expect(admitted.status == 200 && admitted.body.contains("slipway_insecure"), "\(admitted.body.prefix(400))")
            writeToken(second)
            #expect(try scrape(first).status == 401)
            #expect(try scrape(second).status == 200)
            #expect(chmod(file, 0o644) == 0)
            #expect(try scrape(second).status == 503)
            try await cluster.waitForLog("coordinator", "/metrics refused every request: --metrics-token-file")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("a standby checks its settings before it waits; one whose port stays taken hands the lock back twice, then exits, metrics and all")
    func standbyFailures() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let leader = try cluster.startCoordinator("leader")
            try await cluster.waitForLog("leader", "coordinator active")
            // A standby with an address that is not this machine's says so at once instead of waiting.
            let bad = try await Self.run(["coordinator", "--database-url", cluster.databaseURL, "--intake", "tcp://192.0.2.1:7700", "--insecure"],
                                   in: cluster.directory)
            #expect(bad.status == 1 && bad.seconds < 15 && bad.output.contains("--intake tcp://192.0.2.1:7700"), "\(bad)")

            // A standby whose events port someone else holds waits normally, then fails loudly on taking over,
            // although its metrics endpoint would happily keep running.
            let taken = Self.occupy()
            defer { close(taken.descriptor) }
            let metrics = freeLoopbackPort()
            let standby = try cluster.start("standby", ["coordinator", "--database-url", cluster.databaseURL, "--intake", cluster.intake,
                                                        "--dispatch", cluster.dispatch, "--events", "tcp://127.0.0.1:\(taken.port)",
                                                        "--snapshot", cluster.snapshot, "--heartbeat", cluster.heartbeat,
                                                        "--metrics-listen", "127.0.0.1:\(metrics)", "--metrics-token-file", cluster.metricsTokenFile,
                                                        "--key", try cluster.keyFile(.coordinator, "main"), "--trust-dir", cluster.trustDirectory.path])
            try await cluster.waitForLog("standby", "standby")
            leader.signal(SIGKILL)
            await leader.exited()
            let started = ContinuousClock.now
            // Three take-overs of 5 s each, with 2 s after each of the first two.
            while !standby.hasExited, ContinuousClock.now - started < .seconds(35) { try await Task.sleep(for: .milliseconds(20)) }
            #expect(standby.hasExited, "the failed standby kept running")
            #expect(await standby.exited() == 1)
            #expect(cluster.logText("standby").components(separatedBy: "handing the lock back").count - 1 == 2)
            let lines = cluster.logText("standby").split(separator: "\n")
            #expect(lines.last?.hasPrefix("slipway coordinator: coordinator: --events tcp://127.0.0.1:\(taken.port): cannot bind") == true,
                    "\(lines.suffix(3))")
        }
        #expect(statuses["standby"] == 1)
    }

    @Test("a standby taking over while the old leader still holds a port waits for it, hands the lock back after 5 s, and leads once it is free")
    func takeOverWaitsForAPortBeingReleased() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let leader = try cluster.startCoordinator("leader")
            try await cluster.waitForLog("leader", "coordinator active")
            // The events port stands for one the previous leader has not let go of yet.
            let held = Self.occupy()
            let standby = try cluster.start("standby", ["coordinator", "--database-url", cluster.databaseURL, "--intake", cluster.intake,
                                                        "--dispatch", cluster.dispatch, "--events", "tcp://127.0.0.1:\(held.port)",
                                                        "--snapshot", cluster.snapshot, "--heartbeat", cluster.heartbeat,
                                                        "--key", try cluster.keyFile(.coordinator, "main"), "--trust-dir", cluster.trustDirectory.path])
            try await cluster.waitForLog("standby", "standby")
            leader.signal(SIGKILL)
            await leader.exited()
            try await cluster.waitForLog("standby", "a port is still held by the previous leader")
            try await cluster.waitForLog("standby", "handing the lock back and waiting again", timeout: .seconds(10))
            close(held.descriptor)
            try await cluster.waitForLog("standby", "coordinator active", timeout: .seconds(10))
            #expect(!standby.hasExited)
            // Only the port really held is ever found taken: the intake and dispatch ports bound by a failed
            // try are released before the next (chaos saw two coordinators each find its own earlier try's ports).
            let heldLines = cluster.logText("standby").split(separator: "\n").filter { $0.contains("still held") || $0.contains("still in use") }
            #expect(!heldLines.isEmpty && heldLines.allSatisfy { $0.contains("--events") }, "\(heldLines.filter { !$0.contains("--events") }.prefix(3))")
            // And it serves.
            let client = try SlipwayClient(endpoint: cluster.intake, security: try cluster.security())
            defer { Task { await client.close() } }
            #expect(try await client.jobs(Slipway_V1_JobListQuery()).isEmpty)
        }
        #expect(statuses["standby"] == 0)
    }

    @Test("a leader that lost its lock while its database was unreachable releases all four ports within 5 s of the database returning, clients connected, and waits as a standby")
    func leaderLosingItsLockDuringAnOutage() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try await cluster.waitForLog("coordinator", "coordinator active")
            // Clients stay connected through the step-down, as workers, regions and CLIs are in production:
            // closing their connections is what once kept a stepped-down leader's ports for half a minute.
            var clients: [SlipwayClient] = []
            for _ in 0..<8 {
                let client = try SlipwayClient(endpoint: cluster.intake, security: try cluster.security())
                _ = try await client.jobs(Slipway_V1_JobListQuery())
                clients.append(client)
            }
            // And TCP connections that never finish their handshake, on the other three sockets.
            var idle: [Int32] = []
            for endpoint in [cluster.dispatch, cluster.snapshot, cluster.events] {
                for _ in 0..<4 {
                    let (descriptor, connected) = Self.loopbackSocket(Int(endpoint.split(separator: ":").last!)!, Glibc.connect)
                    #expect(connected == 0)
                    idle.append(descriptor)
                }
            }
            defer {
                for client in clients { Task { await client.close() } }
                for descriptor in idle { close(descriptor) }
            }
            let database = String(cluster.databaseURL.split(separator: "/").last!)
            // Plays a standby: keeps a session while the leader's is ended and new ones are refused.
            let rival = try PGConnection(url: cluster.databaseURL, logger: TestDatabase.logger)
            let rivalPID = try #require(try rival.query("SELECT pg_backend_pid()::text AS pid").first?.string("pid"))
            let admin = try PGConnection(url: cluster.databaseURL.replacingOccurrences(of: "/\(database)", with: "/postgres"),
                                         logger: TestDatabase.logger)
            _ = try admin.query("ALTER DATABASE \(database) ALLOW_CONNECTIONS false")
            _ = try admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2::int",
                                [.text(database), .text(rivalPID)])
            _ = try rival.query("SELECT pg_advisory_lock($1)", [.int(Self.coordinatorLock)])
            // Long enough for the leader's retries to back off past the 5 s a standby waits for its ports.
            try await Task.sleep(for: .seconds(8))
            _ = try admin.query("ALTER DATABASE \(database) ALLOW_CONNECTIONS true")
            let returned = ContinuousClock.now
            try await cluster.waitForLog("coordinator", "stepping down to standby", timeout: .seconds(15))
            for endpoint in [cluster.intake, cluster.dispatch, cluster.events, cluster.snapshot] {
                let port = try #require(Int(endpoint.split(separator: ":").last!))
                var free = false
                for _ in 0..<50 where !free {
                    // As libzmq binds: SO_REUSEADDR, so only a listener (not the connections it accepted) is in the way.
                    let (probe, bound) = Self.loopbackSocket(port, reuseAddress: true, Glibc.bind)
                    free = bound == 0
                    close(probe)
                    if !free { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(free, "\(endpoint) is free for the new leader (\(PortHolder.describe(port: port) ?? "no socket"))")
            }
            // 5 s: how long a new leader tries a port in use (CoordinatorSockets.takeOverWait). Measured ~1-2 s;
            // the leader has to back off, tick, reconnect and fail the lock, which a loaded 2-core machine may stretch.
            #expect(ContinuousClock.now - returned < .seconds(5), "all four ports free \(ContinuousClock.now - returned) after the database returned")
            // It waits as a standby; that it leads again once the lock is free is the take-over tests' part
            // (here, with the port released for seconds under a parallel test run, something else once took it).
            try await Task.sleep(for: .seconds(1))
            #expect(!cluster.processes["coordinator"]!.hasExited)
            #expect(cluster.logText("coordinator").contains("standby: another coordinator holds the lock"))
        }
        #expect(statuses["coordinator"] == 0)
    }

    /// The coordinators' advisory lock key ("slipcoor", `Leadership.lockKey`).
    static let coordinatorLock: Int64 = 0x736c_6970_636f_6f72

    @Test("SIGTERM stops every daemon while it works, within the documented 15 s, with exit 0")
    func sigtermWhileWorking() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator(extra: cluster.metricsFlags(freeLoopbackPort()))
            try cluster.startRegion()
            try cluster.startWorker("w1")
            try cluster.startAgent("m1", region: "local", regionProcess: "region")
            for name in ["coordinator", "region", "w1", "m1"] { try await cluster.waitForLog(name, "] serving") }
            #expect(cluster.logText("w1").contains("can read its secret key: give --build-user"),
                    "a keyed worker without --build-user says what its recipes can read")
            for (name, process) in cluster.processes.sorted(by: { $0.key < $1.key }) {
                let started = ContinuousClock.now
                process.signal(SIGTERM)
                while !process.hasExited, ContinuousClock.now - started < .seconds(15) { try await Task.sleep(for: .milliseconds(20)) }
                #expect(process.hasExited, "\(name) ignored SIGTERM")
                #expect(await process.exited() == 0, "\(name): \(cluster.logText(name).split(separator: "\n").suffix(3))")
                print("stop time: \(name) \(ContinuousClock.now - started)")  // the figure docs/operations.md quotes
            }
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}

extension DaemonLifecycleTests {
    /// The descriptors a shell listed between `NAME-begin` and `NAME-end` lines.
    static func descriptors(_ name: String, in text: String) -> [String]? {
        let lines = text.split(separator: "\n").map(String.init)
        guard let begin = lines.firstIndex(of: "\(name)-begin"), let end = lines[begin...].firstIndex(of: "\(name)-end") else { return nil }
        return Array(lines[(begin + 1)..<end])
    }

    @Test("a build and a service hold only descriptors 0, 1 and 2; an agent restarted after SIGKILL binds its metrics port while its service runs on")
    func spawnedDescriptors() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let metrics = freeLoopbackPort()
            // The service lists its shell's descriptors, then runs the build (a script: the shell that runs it
            // opens it as a descriptor of its own, so the listing comes first).
            let agentArguments = cluster.metricsFlags(metrics) + [
                                  "--run", "hello=echo service-begin; ls /proc/$$/fd; echo service-end; exec \"$SLIPWAY_BINARY\""]
            try cluster.startAgent("m1", region: "local", regionProcess: "region", extra: agentArguments)
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }

            // The recipe lists its shell's descriptors into the build log.
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            var request = Slipway_V1_SubmitBuild()
            request.idempotencyKey = UUID().uuidString
            request.repoURL = repo.path
            request.commit = commit
            request.artifactName = "hello"
            request.recipe = "echo build-begin; ls /proc/$$/fd; echo build-end; mkdir -p out && "
                + "printf '#!/bin/sh\\necho hello fds\\nexec sleep 600\\n' > out/hello"
            request.artifactPath = "out/hello"
            let ack = try await client.submit(request)
            let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
            try #require(done.status == .succeeded, "\(done.error)")
            let log = String(decoding: try await client.log(ack.jobID, from: 0).bytes, as: UTF8.self)
            #expect(Self.descriptors("build", in: log) == ["0", "1", "2"], "\(log)")

            try await AgentTests.deploy(client, done.artifactDigest)
            try await AgentTests.waitUntilEvery(["m1"], cluster, runs: "hello fds")
            #expect(Self.descriptors("service", in: cluster.serviceOutput("m1")) == ["0", "1", "2"], "\(cluster.serviceOutput("m1"))")

            // The agent dies; its service keeps running in its own process group and must not hold the agent's ports.
            cluster.processes["m1"]!.signal(SIGKILL)
            await cluster.processes["m1"]!.exited()
            try cluster.startAgent("m1", region: "local", regionProcess: "region", extra: agentArguments)
            try await ReplicationTests.waitFor("the restarted agent to serve", timeout: .seconds(20)) {
                cluster.logText("m1").components(separatedBy: "] serving").count == 3 || cluster.processes["m1"]!.hasExited
            }
            #expect(!cluster.processes["m1"]!.hasExited, "\(cluster.logText("m1").split(separator: "\n").suffix(3))")
            #expect(AgentTests.status(of: try AgentTests.scrape(metrics, token: cluster.metricsToken)) == 200)
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
