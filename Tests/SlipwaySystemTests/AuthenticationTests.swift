import Foundation
import Logging
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import SlipwayThreads
import SlipwayWire
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The coordinator's CURVE handshake and per-message authorization, through
/// real processes and real sockets: who gets in, and what each key may do.
@Suite("Authentication and authorization", .serialized, .enabled(if: Cluster.isConfigured))
struct AuthenticationTests {
    /// How long a request that must go unanswered is given: a failed handshake answers nothing.
    static let silence: Duration = .seconds(3)

    /// One request over a fresh DEALER with `security`; nil when nothing answers within `timeout`
    /// (a failed handshake answers nothing: libzmq drops the connection). An answer may take a loaded
    /// machine seconds (a handshake, ZAP, the database), so only a request that must go unanswered
    /// passes the shorter ``silence``.
    static func reply(_ endpoint: String, _ body: some WireBody & Sendable, security: ClientSecurity, routingID: String? = nil,
                      messageID: String? = nil, timeout: Duration = .seconds(10)) async throws -> WireMessage? {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "auth-request")
        defer { thread.shutdown() }
        return try await thread.run {
            let socket = try ZMQSocket(context: context, type: .dealer)
            defer { socket.close() }
            try socket.set(.linger(.zero))
            if let routingID { try socket.set(.routingID(Array(routingID.utf8))) }
            for option in security.options { try socket.set(option) }
            try socket.connect(endpoint)
            var message = WireMessage(body, sender: routingID ?? "test")
            if let messageID { message.envelope.messageID = messageID }  // a resend of an earlier request
            _ = try socket.send(WireCodec().encode(message))
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                guard let frames = try socket.receive(wait: .timeout(.milliseconds(200))) else { continue }
                return try WireCodec().decode(frames)
            }
            return nil
        }
    }

    /// Two job queries over one connection, `between` run in between; the two answers' codes.
    static func twoRequests(_ endpoint: String, security: ClientSecurity,
                            between: @escaping @Sendable () throws -> Void) async throws -> (String, String) {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "auth-held")
        defer { thread.shutdown() }
        return try await thread.run {
            let socket = try ZMQSocket(context: context, type: .dealer)
            defer { socket.close() }
            try socket.set(.linger(.zero))
            for option in security.options { try socket.set(option) }
            try socket.connect(endpoint)
            func ask() throws -> String {
                _ = try socket.send(WireCodec().encode(WireMessage(Self.unknownJob(), sender: "test")))
                return try Self.code(try socket.receive(wait: .timeout(.seconds(3))).map { try WireCodec().decode($0) })
            }
            let first = try ask()
            try between()
            return (first, try ask())
        }
    }

    /// The error code of the reply, `none: TYPE` for another reply, `silence` for none.
    static func code(_ reply: WireMessage?) throws -> String {
        guard let reply else { return "silence" }
        return reply.type == .errorReply ? try reply.body(as: Slipway_V1_ErrorReply.self).code.name : "none: \(reply.type)"
    }

    static func unknownJob() -> Slipway_V1_JobQuery {
        var query = Slipway_V1_JobQuery()
        query.jobID = UUID().uuidString.lowercased()
        return query
    }

    @Test("no key, an untrusted key and a revoked key get nothing handled; trusted clients are served throughout")
    func handshake() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try await cluster.waitForLog("coordinator", "coordinator active")
            let trusted = try cluster.security(.operator, "alice")
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: trusted)) == "not_found")

            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: .plain, timeout: Self.silence)) == "silence", "no key")
            let stranger = try cluster.certificate(.operator, "stranger", trusted: false)
            let coordinatorKey = try cluster.certificate(.coordinator, "main").publicKey
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: .curve(stranger.keyPair, server: coordinatorKey), timeout: Self.silence))
                    == "silence", "a key not in the trust folder")
            // The right key, but pinned to a server key that is not the coordinator's: the client cannot even say hello.
            let impostor = try Certificate.generate(for: try Identity(role: .coordinator, name: "impostor"))
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: .curve(try cluster.certificate(.operator, "alice").keyPair,
                                                                                                       server: impostor.publicKey), timeout: Self.silence))
                    == "silence", "a client pinned to another server key")

            // Revocation: the certificate file goes, and the next handshake with that key fails.
            let temporary = try cluster.security(.operator, "temporary")
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: temporary)) == "not_found")
            try FileManager.default.removeItem(at: cluster.trustDirectory.appendingPathComponent("operator-temporary.cert"))
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: temporary, timeout: Self.silence)) == "silence", "a revoked key")
            #expect(try Self.code(await Self.reply(cluster.dispatch, Slipway_V1_WorkRequest(), security: temporary, timeout: Self.silence)) == "silence")

            // A connection made before the revocation is refused from then on, without reconnecting.
            let held = try cluster.security(.operator, "held")
            let trustFile = cluster.trustDirectory.appendingPathComponent("operator-held.cert")
            let (before, after) = try await Self.twoRequests(cluster.intake, security: held) {
                try FileManager.default.removeItem(at: trustFile)
            }
            #expect(before == "not_found" && after == "permission_denied", "before \(before), after \(after)")

            // Everyone else is still served.
            #expect(try Self.code(await Self.reply(cluster.intake, Self.unknownJob(), security: trusted)) == "not_found")
            #expect(cluster.logText("coordinator").contains("untrusted_key"))
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("keys of the wrong role or identity are refused with permission_denied, and nothing changes")
    func forgedActions() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let (repo, commit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho started\nsleep 60\nmkdir -p out\necho hi > out/app\n")
            let ciA = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "pipeline-a"))
            defer { Task { await ciA.close() } }
            let running = try await ciA.submit(BuildPipelineTests.submission(repo, commit))
            try await ReplicationTests.waitFor("the build to start", timeout: .seconds(30)) {
                try await ciA.job(running.jobID).status == .running
            }
            let database = try PGConnection(url: cluster.databaseURL, logger: Logger(label: "test"))
            let before = try Self.snapshot(database)

            var deploy = Slipway_V1_DeployRequest()
            deploy.service = "svc"
            deploy.artifactDigest = String(repeating: "a", count: 64)
            var cancel = Slipway_V1_CancelBuild()
            cancel.jobID = running.jobID
            var report = Slipway_V1_RegionReport()
            report.region = "local"
            var result = Slipway_V1_BuildResult()
            result.jobID = running.jobID
            result.attempt = 1
            result.outcome = .failed
            result.error = "forged"
            var work = Slipway_V1_WorkRequest()
            work.workerID = "builder@forged"
            work.freeSlots = 4
            let attempts: [(what: String, endpoint: String, body: any WireBody & Sendable, security: ClientSecurity, routingID: String?)] = [
                ("a worker key deploys", cluster.intake, deploy, try cluster.security(.worker, "builder"), nil),
                ("a ci key deploys", cluster.intake, deploy, try cluster.security(.ci, "pipeline-a"), nil),
                ("an agent key submits", cluster.intake, BuildPipelineTests.submission(repo, commit), try cluster.security(.agent, "m1"), nil),
                ("another ci key cancels the job", cluster.intake, cancel, try cluster.security(.ci, "pipeline-b"), nil),
                ("region b reports for region local", cluster.intake, report, try cluster.security(.region, "b"), nil),
                ("an operator key asks for work", cluster.dispatch, work, try cluster.security(.operator, "alice"), "builder@forged"),
                ("another worker key speaks as builder", cluster.dispatch, work, try cluster.security(.worker, "intruder"), "builder@forged"),
                ("a worker key ends another worker's attempt", cluster.dispatch, result, try cluster.security(.worker, "builder"), "builder@forged"),
                ("a worker key asks for the event snapshot", cluster.snapshot, Slipway_V1_SnapshotRequest(), try cluster.security(.worker, "builder"), nil),
            ]
            for attempt in attempts {
                let answer = try await Self.reply(attempt.endpoint, attempt.body, security: attempt.security, routingID: attempt.routingID)
                let code = try Self.code(answer)
                #expect(code == "permission_denied", "\(attempt.what): \(code)")
            }
            #expect(try Self.snapshot(database) == before, "a refused request changed the database")
            #expect(try await ciA.job(running.jobID).status == .running, "the real worker's build was disturbed")

            // The owner of the job may cancel it, and the database records who submitted it.
            #expect(try database.query("SELECT submitted_by FROM jobs WHERE id = $1::uuid", [.text(running.jobID)]).first?
                .optionalString("submitted_by") == "ci/pipeline-a")
            _ = try await ciA.cancel(running.jobID)
            let ended = try await ciA.wait(for: running.jobID, timeout: .seconds(30))
            #expect(ended.status == .cancelled)
            #expect(cluster.logText("coordinator").contains("permission_denied"))

            // Every refusal and the cancel are in the audit log, which only an operator may read.
            let entries = try await Self.auditEntries(cluster)
            let lines = entries.map { "\($0.identity) \($0.action) \($0.object) \($0.outcome)" }
            #expect(entries.contains { $0.identity == "worker/builder" && $0.action == "deployRequest" && $0.outcome == "refused" }, "\(lines)")
            #expect(entries.contains { $0.identity == "ci/pipeline-b" && $0.action == "cancel" && $0.object == running.jobID && $0.outcome == "refused" },
                    "\(lines)")
            #expect(entries.contains { $0.identity == "ci/pipeline-a" && $0.action == "cancel" && $0.object == running.jobID && $0.outcome == "ok" },
                    "\(lines)")
            #expect(entries.contains { $0.identity == "region/b" && $0.action == "regionReport" && $0.outcome == "refused" }, "\(lines)")
            let cli = "'\(Cluster.binary!)' audit --coordinator \(cluster.intake) --json"
            let json = try await shellOutput("\(cli) \(try cluster.clientKeyFlags(.operator, "alice").joined(separator: " "))")
            #expect(json.contains("\"action\":\"cancel\"") && json.contains("\"outcome\":\"refused\""), "\(json)")
            let byCI = try await shellOutput("\(cli) \(try cluster.clientKeyFlags(.ci, "pipeline-a").joined(separator: " ")) 2>&1; echo \"exit $?\"")
            #expect(byCI.contains("may not send auditQuery") && byCI.hasSuffix("exit 5"), "\(byCI)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("a region's store and tracker admit only trusted keys, each to what its role may do; their refusals reach the audit log once")
    func regionSockets() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try await cluster.waitForLog("region", "] serving")
            let (store, tracker) = (cluster.store, cluster.agentEndpoints["region"]!.tracker)
            var manifest = Slipway_V1_ManifestRequest()
            manifest.digest = String(repeating: "0", count: 64)
            var upload = Slipway_V1_UploadBegin()
            upload.manifest.digest = String(repeating: "0", count: 64)
            let agent = try cluster.security(.agent, "m9", region: "local")
            #expect(try Self.code(await Self.reply(store, manifest, security: agent)) == "not_found", "an agent reads")
            #expect(try Self.code(await Self.reply(store, manifest, security: .plain, timeout: Self.silence)) == "silence", "no key")
            let stranger = try cluster.certificate(.agent, "m10", trusted: false)
            let regionKey = try cluster.certificate(.region, "local").publicKey
            #expect(try Self.code(await Self.reply(store, manifest, security: .curve(stranger.keyPair, server: regionKey), timeout: Self.silence)) == "silence")
            #expect(try Self.code(await Self.reply(store, upload, security: agent)) == "permission_denied", "an agent uploads")
            #expect(try Self.code(await Self.reply(store, manifest, security: cluster.security(.ci, "pipeline-a", region: "local")))
                    == "permission_denied", "a ci key reads pieces")

            var register = Slipway_V1_AgentRegister()
            register.region = "local"
            register.machineID = "m8"
            #expect(try Self.code(await Self.reply(tracker, register, security: agent)) == "permission_denied", "m9 speaks for m8")
            register.machineID = "m9"
            #expect(try Self.code(await Self.reply(tracker, register, security: agent)) == "none: agentTargets", "m9 registers itself")
            #expect(try Self.code(await Self.reply(tracker, register, security: .plain, timeout: Self.silence)) == "silence", "no key at the tracker")
            #expect(try Self.code(await Self.reply(tracker, register, security: cluster.security(.worker, "builder", region: "local")))
                    == "permission_denied", "a worker registers a machine")

            // The region's refusals reach the coordinator's audit log with its next report, each once, however often it is resent.
            let expected: Set<String> = ["agent/m9 uploadBegin store of region local", "ci/pipeline-a manifestRequest store of region local",
                                         "agent/m9 agentRegister tracker of region local", "worker/builder agentRegister tracker of region local"]
            var found: [String] = []
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                found = try await Self.auditEntries(cluster).filter { $0.object.hasSuffix("of region local") }
                    .map { "\($0.identity) \($0.action) \($0.object)" }
                if Set(found) == expected { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            try await Task.sleep(for: .seconds(7))  // past a report refresh, which must not bring them again
            let entries = try await Self.auditEntries(cluster).filter { $0.object.hasSuffix("of region local") }
            #expect(entries.count == 4 && Set(entries.map { "\($0.identity) \($0.action) \($0.object)" }) == expected, "\(entries)")
            #expect(entries.allSatisfy { $0.outcome == "refused" && !$0.detail.isEmpty }, "\(entries)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    /// Starts a region, a worker and agents m1 and m2, builds v1 and v2 of `hello`, and deploys v1 to both.
    static func twoAgentsRunningV1(_ cluster: Cluster, _ client: SlipwayClient) async throws -> (v1: String, v2: String) {
        try cluster.startCoordinator()
        try cluster.startRegion()
        try cluster.startWorker("w1")
        for name in ["m1", "m2"] { try cluster.startAgent(name, region: "local", regionProcess: "region") }
        let v1 = try await AgentTests.buildService(client, cluster, version: "v1")
        let v2 = try await AgentTests.buildService(client, cluster, version: "v2")
        try await AgentTests.deploy(client, v1)
        try await AgentTests.waitUntilEvery(["m1", "m2"], cluster, runs: "hello v1")
        return (v1, v2)
    }

    /// The SHA-256 of the binary agent `name` has installed as `hello`.
    static func installed(_ cluster: Cluster, _ name: String) async throws -> String {
        let binary = cluster.agentDirectory(name).appendingPathComponent("services/hello/current/hello")
        return try await shellOutput("sha256sum '\(binary.path)' | cut -d' ' -f1")
    }

    @Test("a region controller that tells its agents a target the coordinator never signed, or replays an older signed one: every agent refuses it and keeps its build, and a new machine refuses a target replaced long ago that the coordinator no longer vouches for")
    func forgedTarget() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let (v1, v2) = try await Self.twoAgentsRunningV1(cluster, client)

            // The region controller is taken over: its saved targets now say v2, newer, under v1's signature.
            _ = await cluster.processes["region"]!.stopped()
            let file = cluster.storeDirectory("region").appendingPathComponent("targets.json")
            let genuine = try Data(contentsOf: file)
            var saved = try #require(try JSONSerialization.jsonObject(with: genuine) as? [String: Any])
            var targets = try #require(saved["targets"] as? [String: Any])
            var global = try #require(targets["global"] as? [String: Any])
            var hello = try #require(global["hello"] as? [String: Any])
            #expect(hello["digest"] as? String == v1)
            hello["digest"] = v2
            hello["version"] = ((hello["version"] as? Int) ?? 1) + 1
            global["hello"] = hello
            targets["global"] = global
            saved["targets"] = targets
            try JSONSerialization.data(withJSONObject: saved).write(to: file)
            try cluster.startRegion("region-taken", region: "local", store: cluster.store, storeOf: "region")
            try await ReplicationTests.waitFor("both agents to refuse the forged target", timeout: .seconds(30)) {
                ["m1", "m2"].allSatisfy { cluster.logText($0).contains("refused a target") && cluster.logText($0).contains("does not verify") }
            }
            try await Task.sleep(for: .seconds(2))
            for name in ["m1", "m2"] {
                #expect(try await Self.installed(cluster, name) == v1, "\(name) left v1")
                #expect(!cluster.serviceOutput(name).contains("hello v2"), "\(name) ran v2")
            }

            // Rebuilt from a clean state (its saved targets gone, caught up from the coordinator's events),
            // the region passes on what the coordinator signs.
            _ = await cluster.processes["region-taken"]!.stopped()
            try FileManager.default.removeItem(at: file)
            try cluster.startRegion("region-clean", region: "local", store: cluster.store, storeOf: "region", extra: ["--vouch-interval", "1s"])
            try await AgentTests.deploy(client, v2)
            try await AgentTests.waitUntilEvery(["m1", "m2"], cluster, runs: "hello v2")
            // A new machine that accepts only targets set or vouched for within 4 s still installs v2, set
            // longer ago than that: the region passes on the coordinator's vouches, renewed every second.
            try await Task.sleep(for: .seconds(5))
            try cluster.startAgent("m3", region: "local", regionProcess: "region", extra: ["--target-max-age", "4s"])
            try await AgentTests.waitUntilEvery(["m3"], cluster, runs: "hello v2")

            // Taken over again, it replays what the coordinator really signed before (v1, an older version),
            // claims to have seen every later event, so nothing newer replaces it, and raises the version
            // it tells agents (global + regional, not signed) past theirs with an empty override of its own.
            _ = await cluster.processes["region-clean"]!.stopped()
            var replay = try #require(try JSONSerialization.jsonObject(with: genuine) as? [String: Any])
            replay["appliedThrough"] = 1_000_000_000
            var replayed = try #require(replay["targets"] as? [String: Any])
            var cleared = try #require((replayed["global"] as? [String: Any])?["hello"] as? [String: Any])
            cleared["digest"] = ""
            cleared["version"] = 1_000
            replayed["regional"] = ["hello": cleared]
            replay["targets"] = replayed
            try JSONSerialization.data(withJSONObject: replay).write(to: file)
            try cluster.startRegion("region-replay", region: "local", store: cluster.store, storeOf: "region")
            try await ReplicationTests.waitFor("both agents to refuse the replayed target", timeout: .seconds(30)) {
                ["m1", "m2"].allSatisfy { cluster.logText($0).contains("older than the") }
            }
            try await Task.sleep(for: .seconds(2))
            for name in ["m1", "m2"] {
                #expect(try await Self.installed(cluster, name) == v2, "\(name) went back to v1")
                let kept = try Data(contentsOf: cluster.agentDirectory(name).appendingPathComponent("signed-versions.json"))
                #expect(String(decoding: kept, as: UTF8.self).contains("\"hello\""), "\(name) keeps what it applied on disk")
            }
            // A machine with no history has nothing to compare v1 with, but v1 was set long before its
            // --target-max-age and the coordinator vouches only for v2 now, so it refuses v1 all the same.
            try cluster.startAgent("m4", region: "local", regionProcess: "region", extra: ["--target-max-age", "4s"])
            try await ReplicationTests.waitFor("the new machine to refuse the replayed target", timeout: .seconds(30)) {
                cluster.logText("m4").contains("carries no vouch of the coordinator's")
            }
            try await Task.sleep(for: .seconds(2))
            #expect(!cluster.serviceOutput("m4").contains("hello v1"), "the new machine ran the replaced v1")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("an override in force cannot be undone by a region controller: agents refuse the global target without the coordinator's signed clearing, and follow it once cleared")
    func overrideNotUndoneByRegion() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let (v1, v2) = try await Self.twoAgentsRunningV1(cluster, client)
            var override = Slipway_V1_DeployRequest()
            override.service = "hello"
            override.artifactDigest = v2
            override.regions = ["local"]
            override.setBy = "test"
            _ = try await client.deploy(override)
            try await AgentTests.waitUntilEvery(["m1", "m2"], cluster, runs: "hello v2")

            // Taken over, the region clears the override itself (unsigned, with a version above the agents'):
            // the signed global v1 shows through.
            _ = await cluster.processes["region"]!.stopped()
            let file = cluster.storeDirectory("region").appendingPathComponent("targets.json")
            let genuine = try Data(contentsOf: file)
            var forged = try #require(try JSONSerialization.jsonObject(with: genuine) as? [String: Any])
            forged["appliedThrough"] = 1_000_000_000
            var targets = try #require(forged["targets"] as? [String: Any])
            var cleared = try #require((targets["regional"] as? [String: Any])?["hello"] as? [String: Any])
            cleared["digest"] = ""
            cleared["version"] = 1_000
            cleared["signature"] = nil
            targets["regional"] = ["hello": cleared]
            forged["targets"] = targets
            try JSONSerialization.data(withJSONObject: forged).write(to: file)
            try cluster.startRegion("region-taken", region: "local", store: cluster.store, storeOf: "region")
            try await ReplicationTests.waitFor("both agents to refuse the global target", timeout: .seconds(30)) {
                ["m1", "m2"].allSatisfy { cluster.logText($0).contains("no signed clearing of it came along") }
            }
            try await Task.sleep(for: .seconds(2))
            for name in ["m1", "m2"] { #expect(try await Self.installed(cluster, name) == v2, "\(name) left its override") }

            // The honest region again; the coordinator clears the override: agents follow the global target.
            _ = await cluster.processes["region-taken"]!.stopped()
            try genuine.write(to: file)
            try cluster.startRegion("region-clean", region: "local", store: cluster.store, storeOf: "region")
            var clear = Slipway_V1_DeployRequest()
            clear.service = "hello"
            clear.regions = ["local"]
            clear.clear = true
            clear.setBy = "test"
            _ = try await client.deploy(clear)
            try await ReplicationTests.waitFor("both agents back on v1", timeout: .seconds(60)) {
                let (m1, m2) = (try await Self.installed(cluster, "m1"), try await Self.installed(cluster, "m2"))
                return m1 == v1 && m2 == v1
            }
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("a recipe run as the build user cannot read the worker's key; the build's outcome is its own", .enabled(if: geteuid() == 0))
    func recipeCannotReadKey() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1", extra: ["--build-user", "nobody"])
            let key = try cluster.keyFile(.worker, "builder")
            let recipe = """
                #!/bin/sh
                if cat '\(key)' >/dev/null 2>&1; then echo "worker key: READ"; else echo "worker key: unreadable"; fi
                echo "uid: $(id -u)"
                mkdir -p out && echo built > out/app
                """
            let (repo, commit) = try TestRepository.make(in: cluster.directory, recipe: recipe + "\n")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "pipeline-a"))
            defer { Task { await client.close() } }
            let ack = try await client.submit(BuildPipelineTests.submission(repo, commit))
            let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
            #expect(done.status == .succeeded, "\(done.error)")
            let log = String(decoding: try await client.log(ack.jobID, from: 0).bytes, as: UTF8.self)
            #expect(log.contains("worker key: unreadable") && !log.contains("worker key: READ"), "\(log)")
            #expect(log.contains("uid: 65534"), "\(log)")
            #expect(log.contains("running recipe at \(commit) as nobody"), "\(log)")
            #expect(!cluster.logText("w1").contains("can read its secret key"), "no warning when recipes cannot")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("the coordinator's key is rotated with traffic running: no request fails")
    func keyRotation() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let port = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
            let next = (intake: port(), dispatch: port(), events: port(), snapshot: port())
            let current = try cluster.keyFile(.coordinator, "main")
            let upcoming = try cluster.certificate(.coordinator, "next")
            let upcomingKey = cluster.keyDirectory.appendingPathComponent(upcoming.fileStem + ".secret").path
            let common = ["coordinator", "--database-url", cluster.databaseURL, "--heartbeat", cluster.heartbeat,
                          "--trust-dir", cluster.trustDirectory.path]
            let oldPorts = ["--intake", cluster.intake, "--dispatch", cluster.dispatch, "--events", cluster.events, "--snapshot", cluster.snapshot]
            let newPorts = ["--intake", next.intake, "--dispatch", next.dispatch, "--events", next.events, "--snapshot", next.snapshot]
            let c1 = try cluster.start("c1", common + oldPorts + ["--key", current])
            try await cluster.waitForLog("c1", "coordinator active")

            // Clients keep asking throughout, each pinned to one key; they retry a silent coordinator (Lazy Pirate).
            let operatorKey = try cluster.certificate(.operator, "rotation").keyPair
            let onOld = try SlipwayClient(endpoint: cluster.intake, security: .curve(operatorKey, server: try cluster.certificate(.coordinator, "main").publicKey),
                                          requestTimeout: .seconds(2), retries: 10)
            let onNew = try SlipwayClient(endpoint: next.intake, security: .curve(operatorKey, server: upcoming.publicKey),
                                          requestTimeout: .seconds(2), retries: 10)
            defer { Task { await onOld.close(); await onNew.close() } }
            let tally = Tally()
            func traffic(_ client: SlipwayClient, _ name: String, while running: @escaping @Sendable () -> Bool) -> Task<Void, Never> {
                Task { [tally] in
                    while running() {
                        do {
                            _ = try await client.jobs(Slipway_V1_JobListQuery())
                            tally.answered(name)
                        } catch {
                            tally.failed("\(name): \(error)")
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
            let oldRunning = Flag(), newRunning = Flag()
            // A wait that times out must not leave the traffic running for the rest of the suite.
            defer { oldRunning.clear(); newRunning.clear() }
            let oldTraffic = traffic(onOld, "old key", while: { oldRunning.isSet })

            // 1. A standby with both keys takes over: the old endpoints keep the old key, the new ones have the next.
            let c2 = try cluster.start("c2", common + oldPorts + ["--key", current, "--next-key", upcomingKey,
                                                                   "--next-intake", next.intake, "--next-dispatch", next.dispatch,
                                                                   "--next-events", next.events, "--next-snapshot", next.snapshot])
            try await cluster.waitForLog("c2", "standby")
            #expect(await c1.stopped() == 0)
            try await cluster.waitForLog("c2", "coordinator active")
            let oldBeforeC2 = tally.counts["old key"] ?? 0
            let newTraffic = traffic(onNew, "next key", while: { newRunning.isSet })
            // Answers counted, not a fixed sleep: the traffic tasks run on a pool a loaded machine may starve.
            // A failure ends the wait; the expectations below report it.
            try await ReplicationTests.waitFor("answers from the standby under both keys", timeout: .seconds(30)) {
                let counts = tally.counts
                return !tally.failures.isEmpty || ((counts["old key"] ?? 0) > oldBeforeC2 + 10 && (counts["next key"] ?? 0) > 10)
            }

            // 2. Every client has moved: the old key goes, with a standby that has only the next one.
            oldRunning.clear()
            await oldTraffic.value
            let c3 = try cluster.start("c3", common + newPorts + ["--key", upcomingKey])
            try await cluster.waitForLog("c3", "standby")
            #expect(await c2.stopped() == 0)
            try await cluster.waitForLog("c3", "coordinator active")
            let beforeC3 = tally.counts["next key"] ?? 0
            try await ReplicationTests.waitFor("answers from the standby with only the next key", timeout: .seconds(30)) {
                !tally.failures.isEmpty || (tally.counts["next key"] ?? 0) > beforeC3 + 10
            }
            newRunning.clear()
            await newTraffic.value
            _ = c3

            #expect(tally.failures.isEmpty, "\(tally.failures)")
            let counts = tally.counts
            #expect((counts["old key"] ?? 0) > 10 && (counts["next key"] ?? 0) > 10, "\(counts)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("one key refused over and over writes at most 100 audit rows a minute, and rows past --audit-retention are deleted")
    func auditBudgetAndRetention() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator(extra: ["--audit-retention", "30s", "--gc-interval", "1s"])
            try await cluster.waitForLog("coordinator", "coordinator active")
            let ci = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "flood"))
            defer { Task { await ci.close() } }
            var deploy = Slipway_V1_DeployRequest()
            deploy.service = "svc"
            deploy.artifactDigest = String(repeating: "a", count: 64)
            var refused = 0
            for _ in 0..<130 {
                do { _ = try await ci.deploy(deploy) } catch let error as ProducerError where error.serverCode == .permissionDenied {
                    refused += 1
                }
            }
            #expect(refused == 130, "every deploy by a ci key is refused")
            // Written with the batches they came in, all within the minute.
            // (30 s of retention: 130 refusals and this wait must not outlast it, even on a loaded machine.)
            try await ReplicationTests.waitFor("the refusals to be recorded", timeout: .seconds(10)) {
                try await Self.auditEntries(cluster).filter { $0.identity == "ci/flood" }.count >= 100
            }
            let recorded = try await Self.auditEntries(cluster).filter { $0.identity == "ci/flood" }
            #expect(recorded.count == 100 && recorded.allSatisfy { $0.action == "deployRequest" && $0.outcome == "refused" },
                    "\(recorded.count) rows")
            // Past the retention the garbage collection deletes them.
            try await ReplicationTests.waitFor("the rows to expire", timeout: .seconds(60)) {
                try await Self.auditEntries(cluster).filter { $0.identity == "ci/flood" }.isEmpty
            }
            #expect(cluster.logText("coordinator").contains("audit entries expired"))
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    /// The audit log, read with an operator key.
    static func auditEntries(_ cluster: Cluster) async throws -> [Slipway_V1_AuditEntry] {
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.operator, "alice"))
        defer { Task { await client.close() } }
        return try await client.audit(Slipway_V1_AuditQuery())
    }

    /// What a forged action could change: jobs, targets, deployments. (Region reports are
    /// replaced by the real region every few seconds, so they are not compared.)
    static func snapshot(_ database: PGConnection) throws -> [String] {
        try database.query("""
            SELECT 'job ' || id || ' ' || status || ' ' || attempt || ' ' || coalesce(worker_id, '') || ' ' || cancel_requested AS line FROM jobs
            UNION ALL SELECT 'target ' || service || ' ' || region || ' ' || artifact_digest FROM targets
            UNION ALL SELECT 'deployment ' || id FROM deployments
            ORDER BY 1
            """).rows.map { try $0.string("line") }
    }
}

/// Answers and failures of the rotation test's clients, counted from their tasks.
final class Tally: Sendable {
    private let state = Mutex((counts: [String: Int](), failures: [String]()))
    func answered(_ name: String) { state.withLock { $0.counts[name, default: 0] += 1 } }
    func failed(_ what: String) { state.withLock { $0.failures.append(what) } }
    var counts: [String: Int] { state.withLock { $0.counts } }
    var failures: [String] { state.withLock { $0.failures } }
}

/// A flag one task clears and another reads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(true)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
}

