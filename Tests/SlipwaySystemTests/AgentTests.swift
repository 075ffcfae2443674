import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import SlipwayWire
import Testing

/// Agents end to end: real region controllers, agents and service processes on
/// loopback. Assertions read what the running service printed.
@Suite("Agents", .serialized, .enabled(if: Cluster.isConfigured))
struct AgentTests {
    @Test("3 regions × 2 agents: deploy, rollback, deploy again; a build failing its health check is rolled back on every machine")
    func deployEverywhere() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.deployEverywhere($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func deployEverywhere(_ cluster: Cluster) async throws {
        let regions = ["a", "b", "c"]
        let stores = ReplicationTests.stores(regions)
        try cluster.startCoordinator(extra: ["--regions", regions.joined(separator: ",")])
        for region in regions {
            try cluster.startRegion("region-\(region)", region: region, store: stores[region]!,
                                    peers: stores.filter { $0.key != region })
        }
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        let machines = regions.flatMap { region in (1...2).map { (region: region, name: "\(region)\($0)") } }
        for machine in machines {
            try cluster.startAgent(machine.name, region: machine.region, regionProcess: "region-\(machine.region)")
        }
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        let v1 = try await Self.buildService(client, cluster, version: "v1", paddingSeed: 7)
        let v2 = try await Self.buildService(client, cluster, version: "v2", paddingSeed: 7)
        let broken = try await Self.buildService(client, cluster, version: "broken", exitAtOnce: true, paddingSeed: 7)
        for digest in [v1, v2, broken] {
            try await ReplicationTests.waitFor("\(digest) deployable", timeout: .seconds(60)) {
                try await ReplicationTests.artifact(client, digest).deployableAtUnixMicros > 0
            }
        }

        try await deploy(client, v1)
        try await waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")
        try await deploy(client, v2)
        try await waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")
        // v2 differs from v1 in its first line: the upload, each replication and each
        // download linked the pieces the two share instead of moving them again.
        #expect(cluster.logText("region-a").contains("upload shares pieces with earlier builds"))
        for region in ["b", "c"] {
            #expect(cluster.logText("region-\(region)").contains("replica shares pieces with earlier builds"), "region \(region)")
        }
        for machine in machines {
            let line = cluster.logText(machine.name).split(separator: "\n").first { $0.contains("download shares pieces") && $0.contains(v2) }
            let reused = Int(line?.firstMatch(of: /reused=(\d+)/)?.1 ?? "") ?? 0
            let pieces = Int(line?.firstMatch(of: /pieces=(\d+)/)?.1 ?? "") ?? 0
            #expect(pieces > 2 && reused >= pieces - 2, "\(machine.name) took \(reused) of \(pieces) pieces from v1: \(String(describing: line))")
        }
        var rollback = Slipway_V1_RollbackRequest()
        rollback.service = "hello"
        rollback.setBy = "test"
        _ = try await client.rollback(rollback)
        try await waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")
        try await deploy(client, v2)
        try await waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")

        // Every region reports its machines to the coordinator: 2 running v2 each.
        try await ReplicationTests.waitFor("every region to report 2 machines on v2", timeout: .seconds(20)) {
            let status = try await client.status(service: "hello")
            return status.regions.count == 3 && status.regions.allSatisfy { region in
                region.counts.contains { $0.artifactDigest == v2 && $0.state == .running && $0.machines == 2 }
            }
        }

        // A build that dies at once fails its health check: the rollout (plan all) halts on the first
        // failures and sends the fleet back; every machine runs v2 again, and the rollout names the failures.
        try await deploy(client, broken)
        try await ReplicationTests.waitFor("the rollout to roll back", timeout: .seconds(40)) {
            try await client.rollout(service: "hello").state == .rolledBack
        }
        let rollout = try await client.rollout(service: "hello")
        #expect(!rollout.failures.isEmpty && rollout.reason.contains("failed on the new build"), "\(rollout)")
        for failure in rollout.failures {
            #expect(failure.reason.contains("exited with status 3"), "\(failure.reason)")
        }
        try await waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")
        let text = try await shellOutput("'\(Cluster.binary!)' rollout status hello --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " "))")
        #expect(text.contains("rolled_back") && text.contains("failing: \(rollout.failures[0].machineID)"), "\(text)")
    }

    @Test("an agent killed mid-download resumes with the pieces it verified; fetches only the rest")
    func resumeAfterKill() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion("region", region: "local", store: cluster.store)
            try cluster.startWorker("w1")
            // Slow enough (48 MiB in ~24 s) that a poller starved by parallel tests still sees it mid-download.
            try cluster.startAgent("m1", region: "local", regionProcess: "region", extra: ["--max-download-mibps", "2"])
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let v1 = try await Self.buildService(client, cluster, version: "v1", padding: 48 << 20)
            try await Self.deploy(client, v1)

            let pieces = cluster.agentDirectory("m1").appendingPathComponent("store/incoming/\(v1)/pieces")
            do {
                try await ReplicationTests.waitFor("3 pieces on disk", timeout: .seconds(40)) {
                    ((try? FileManager.default.contentsOfDirectory(atPath: pieces.path)) ?? []).count >= 3
                }
            } catch {
                Issue.record("\(error); m1 log:\n\(cluster.logText("m1").suffix(3000))")
                throw error
            }
            cluster.processes["m1"]!.signal(SIGKILL)
            await cluster.processes["m1"]!.exited()
            let held = try FileManager.default.contentsOfDirectory(atPath: pieces.path).count

            try cluster.startAgent("m1", region: "local", regionProcess: "region")
            try await Self.waitUntilEvery(["m1"], cluster, runs: "hello v1")
            let log = cluster.logText("m1")
            let complete = try #require(log.split(separator: "\n").last { $0.contains("download complete") })
            #expect(complete.contains("resumed=\(held) "), "\(complete)")
            let count = Int(complete.firstMatch(of: /pieces=(\d+)/)?.1 ?? "") ?? -1
            #expect(held < count, "the cap should have stopped the download before the end: \(held) of \(count) pieces")
            #expect(complete.contains("from_seed=\(count - held) "), "only the missing pieces are fetched: \(complete)")
        }
        #expect(statuses.filter { $0.key != "m1" }.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("a peer serving corrupt pieces is banned and the others still install; with the coordinator down a new machine converges")
    func corruptPeerAndCoordinatorDown() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion("region", region: "local", store: cluster.store)
            try cluster.startWorker("w1")
            try cluster.startAgent("bad", region: "local", regionProcess: "region")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let v1 = try await Self.buildService(client, cluster, version: "v1", padding: 40 << 20)
            try await Self.deploy(client, v1)
            try await Self.waitUntilEvery(["bad"], cluster, runs: "hello v1")

            // Its disk rots: every piece it serves from now on fails verification.
            let pieces = cluster.agentDirectory("bad").appendingPathComponent("store/artifacts/\(v1)/pieces")
            for name in try FileManager.default.contentsOfDirectory(atPath: pieces.path) {
                let file = pieces.appendingPathComponent(name)
                let size = try Data(contentsOf: file).count
                try Data(repeating: 0x5A, count: size).write(to: file)
            }
            for name in ["m1", "m2"] { try cluster.startAgent(name, region: "local", regionProcess: "region") }
            try await Self.waitUntilEvery(["m1", "m2"], cluster, runs: "hello v1")
            let banned = ["m1", "m2"].filter { cluster.logText($0).contains("peer served a corrupt piece") && cluster.logText($0).contains("peer=bad") }
            #expect(!banned.isEmpty, "a machine asked the corrupt peer and banned it")
            for name in ["m1", "m2"] {
                let installed = cluster.agentDirectory(name).appendingPathComponent("services/hello/current/hello")
                #expect(try await shellOutput("sha256sum '\(installed.path)' | cut -d' ' -f1") == v1)
            }

            // The coordinator goes away; the region still tells a new machine what to run.
            _ = await cluster.processes["coordinator"]!.stopped()
            try cluster.startAgent("m3", region: "local", regionProcess: "region")
            try await Self.waitUntilEvery(["m3"], cluster, runs: "hello v1")
            // Every piece was held by a healthy peer, so none came from the store.
            let complete = try #require(cluster.logText("m3").split(separator: "\n").last { $0.contains("download complete") })
            #expect(complete.contains("from_seed=0 "), "\(complete)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("an agent whose own trust folder is empty admits its region's agent keys on the tracker's word, and nobody else")
    func vouchedPeers() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion("region", region: "local", store: cluster.store)
            let metrics = freeLoopbackPort()
            try cluster.startAgent("m1", region: "local", regionProcess: "region", extra: cluster.metricsFlags(metrics))
            try await cluster.waitForLog("region", "machine registered")
            #expect(try FileManager.default.contentsOfDirectory(atPath: cluster.agentTrustDirectory.path).isEmpty)
            let agent = cluster.agentListenEndpoints["m1"]!
            let agentKey = try cluster.certificate(.agent, "m1").publicKey
            var piece = Slipway_V1_PieceRequest()
            piece.digest = String(repeating: "0", count: 64)
            piece.count = 1
            // In the region's trust folder as an agent: vouched for, so the request gets an answer.
            let peer = ClientSecurity.curve(try cluster.certificate(.agent, "m2").keyPair, server: agentKey)
            #expect(try await AuthenticationTests.code(AuthenticationTests.reply(agent, piece, security: peer)) == "not_found")
            #expect(try await AuthenticationTests.code(AuthenticationTests.reply(agent, piece, security: peer)) == "not_found",
                    "and again, from the verdict it keeps")
            // In the region's trust folder, but not as an agent; and in no folder at all.
            let worker = ClientSecurity.curve(try cluster.certificate(.worker, "w9").keyPair, server: agentKey)
            let stranger = ClientSecurity.curve(try cluster.certificate(.agent, "stranger", trusted: false).keyPair, server: agentKey)
            // Each refused in the handshake, not left waiting: the refusal is counted, by reason, before the client gives up.
            var refusals = 0.0
            for (security, who) in [(worker, "a worker key"), (stranger, "a key of no trust folder")] {
                #expect(try await AuthenticationTests.code(AuthenticationTests.reply(agent, piece, security: security, timeout: AuthenticationTests.silence)) == "silence", "\(who)")
                let now = Self.sum(of: #"slipway_messages_rejected_total{daemon="agent",socket="zap",reason="untrusted_key""#,
                                   in: try Self.scrape(metrics, token: cluster.metricsToken))
                #expect(now > refusals, "\(who): no refusal counted")
                refusals = now
            }
            #expect(cluster.logText("m1").contains("untrusted_key"), "the refusals are logged")
            // The tracker's verdicts, as the agent counts them (at each heartbeat).
            let scraped = try Self.scrape(metrics, token: cluster.metricsToken)
            #expect(try Self.value(of: #"slipway_agent_peer_keys{verdict="trusted"}"#, in: scraped) == 1, "m2")
            #expect(try Self.value(of: #"slipway_agent_peer_keys{verdict="refused"}"#, in: scraped) == 2, "w9 and the stranger")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("the tracker, an agent and the report intake answer malformed input with errors and keep serving")
    func hostileInput() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let metrics = (coordinator: freeLoopbackPort(), region: freeLoopbackPort(), agent: freeLoopbackPort())
            try cluster.startCoordinator(extra: cluster.metricsFlags(metrics.coordinator))
            try cluster.startRegion("region", region: "local", store: cluster.store, extra: cluster.metricsFlags(metrics.region))
            // The region's trust folder as the agent's own: a worker key gets past the handshake, to be refused by role.
            try cluster.startAgent("m1", region: "local", regionProcess: "region", trustFolder: cluster.trustDirectory,
                                   extra: cluster.metricsFlags(metrics.agent))
            try await cluster.waitForLog("region", "machine registered")
            let tracker = cluster.agentEndpoints["region"]!.tracker
            let agent = cluster.agentListenEndpoints["m1"]!
            // The tracker's garbage comes from a trusted agent key: what a stolen key could send past the handshake.
            let probe = try cluster.security(.agent, "probe", region: "local")
            try await BuildPipelineTests.sendGarbage(to: [tracker], security: probe)
            // The agent's piece server runs CURVE with the machine's own key and admits the agent keys of its trust folder.
            let agentKey = try cluster.certificate(.agent, "m1").publicKey
            let asAgent = ClientSecurity.curve(try cluster.certificate(.agent, "probe").keyPair, server: agentKey)
            try await BuildPipelineTests.sendGarbage(to: [agent], security: asAgent)

            func register(_ change: (inout Slipway_V1_AgentRegister) -> Void) -> Slipway_V1_AgentRegister {
                var message = Slipway_V1_AgentRegister()
                message.machineID = "probe"
                message.region = "local"
                message.services = ["hello"]
                change(&message)
                return message
            }
            #expect(try await ReplicationTests.errorCode(tracker, register { $0.region = "mars" }, security: probe) == "invalid_argument")
            #expect(try await ReplicationTests.errorCode(tracker, register { $0.machineID = "../etc" }, security: probe) == "permission_denied")
            #expect(try await ReplicationTests.errorCode(tracker, register { $0.peerEndpoint = "http://x" }, security: probe) == "invalid_argument")
            #expect(try await ReplicationTests.errorCode(tracker, register { $0.completeDigests = ["zz"] }, security: probe) == "invalid_argument")
            #expect(try await ReplicationTests.errorCode(tracker, register {
                var status = Slipway_V1_AgentStatus()
                status.service = "hello"
                status.reason = String(repeating: "x", count: 5_000)
                $0.statuses = [status]
            }, security: probe) == "invalid_argument")
            // Refusals an agent reports: numbers chosen to overflow are taken without harm; too many are refused.
            #expect(try await ReplicationTests.request(tracker, register {
                var entry = Slipway_V1_AuditEntry()
                entry.atUnixMicros = .min
                entry.identity = "operator/alice"
                $0.refusals = [entry]
                $0.refusalsThrough = 1
                $0.refusalsEpoch = 1
                $0.refusalsNotListed = .max
            }, security: probe).type == .agentTargets)
            #expect(try await ReplicationTests.errorCode(tracker, register {
                $0.refusals = Array(repeating: Slipway_V1_AuditEntry(), count: 17)
                $0.refusalsThrough = 17
            }, security: probe) == "invalid_argument")
            var peers = Slipway_V1_PeerListRequest()
            peers.digest = "not-a-digest"
            peers.machineID = "probe"
            #expect(try await ReplicationTests.errorCode(tracker, peers, security: probe) == "invalid_argument")
            #expect(try await ReplicationTests.errorCode(tracker, Slipway_V1_JobQuery(), security: probe) == "permission_denied")
            // Still serving: a valid registration gets the targets.
            #expect(try await ReplicationTests.request(tracker, register { _ in }, security: probe).type == .agentTargets)

            var piece = Slipway_V1_PieceRequest()
            piece.digest = String(repeating: "0", count: 64)
            piece.count = 1_000_000
            #expect(try await ReplicationTests.errorCode(agent, piece, security: asAgent) == "not_found")
            #expect(try await ReplicationTests.errorCode(agent, Slipway_V1_JobQuery(), security: asAgent) == "permission_denied")
            let asWorker = ClientSecurity.curve(try cluster.certificate(.worker, "w9").keyPair, server: agentKey)
            #expect(try await ReplicationTests.errorCode(agent, piece, security: asWorker) == "permission_denied", "pieces are for agents")
            let stranger = ClientSecurity.curve(try cluster.certificate(.agent, "stranger", trusted: false).keyPair, server: agentKey)
            for (security, who) in [(stranger, "a key outside its trust folder"), (.plain, "a client without CURVE")] {
                #expect(try await AuthenticationTests.code(AuthenticationTests.reply(agent, piece, security: security, timeout: AuthenticationTests.silence)) == "silence", "\(who)")
            }
            // The agent's refusals reach the coordinator's audit log through its region.
            let expected: Set<String> = ["agent/probe jobQuery", "worker/w9 pieceRequest"]
            var refused: Set<String> = []
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, !refused.isSuperset(of: expected) {
                refused = Set(try await AuthenticationTests.auditEntries(cluster)
                    .filter { $0.object == "piece server of machine m1 in region local" && $0.outcome == "refused" }
                    .map { "\($0.identity) \($0.action)" })
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(refused.isSuperset(of: expected), "\(refused)")

            var report = Slipway_V1_RegionReport()
            report.region = ""
            let regionKey = try cluster.security(.region, "local")
            #expect(try await ReplicationTests.errorCode(cluster.intake, report, security: regionKey) == "invalid_argument")
            report.region = "local"
            #expect(try await ReplicationTests.request(cluster.intake, report, security: regionKey).type == .regionReport)

            // Each daemon counts what it dropped, and serves its metrics over HTTP.
            let token = cluster.metricsToken
            let region = try Self.scrape(metrics.region, token: token), agentMetrics = try Self.scrape(metrics.agent, token: token)
            #expect(Self.sum(of: #"slipway_messages_rejected_total{daemon="region",socket="tracker","#, in: region) >= 1, "\(region)")
            #expect(Self.sum(of: #"slipway_messages_rejected_total{daemon="agent",socket="pieces","#, in: agentMetrics) >= 1, "\(agentMetrics)")
            #expect(try Self.value(of: #"slipway_jobs{state="queued"}"#, in: try Self.scrape(metrics.coordinator, token: token)) == 0)
            #expect(Self.status(of: try Self.scrape(metrics.agent)) == 401, "no token, no metrics, on 127.0.0.1 too")
            #expect(Self.status(of: try Self.scrape(metrics.agent, request: "GET /other HTTP/1.0", token: token)) == 404)
            let garbage = try Self.scrape(metrics.agent, request: "\u{1}garbage")
            #expect(Self.status(of: garbage) == 400 || garbage.isEmpty, "not HTTP: 400, or the connection closed: \(garbage.prefix(200))")
            #expect(Self.status(of: try Self.scrape(metrics.agent, token: token)) == 200, "and it keeps serving")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "every daemon survived and stopped cleanly: \(statuses)")
    }

    // MARK: helpers

    /// The whole HTTP response of a daemon's metrics endpoint, asked with `token` as a bearer token if given.
    /// One request on its own connection, `Connection: close` so the answer ends it (Hummingbird keeps
    /// an HTTP/1.0 connection open without it, until its 30 s idle timeout).
    static func scrape(_ port: Int, request: String = "GET /metrics HTTP/1.0", token: String? = nil) throws -> String {
        let authorization = token.map { "\\r\\nAuthorization: Bearer \($0)" } ?? ""
        return try shellOutput("bash -c 'exec 3<>/dev/tcp/127.0.0.1/\(port); printf \"\(request)\(authorization)\\r\\nConnection: close\\r\\n\\r\\n\" >&3; cat <&3'")
    }

    /// The status code of an HTTP response (`HTTP/1.0 200 OK` or `HTTP/1.1 200 OK`), or nil.
    static func status(of response: String) -> Int? {
        let parts = response.prefix(while: { $0 != "\r" && $0 != "\n" }).split(separator: " ")
        guard parts.count >= 2, parts[0] == "HTTP/1.0" || parts[0] == "HTTP/1.1" else { return nil }
        return Int(parts[1])
    }

    /// The sum of every series whose line starts with `prefix` (a metric and some of its labels).
    static func sum(of prefix: String, in text: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
    }

    /// The value of one series in Prometheus text.
    static func value(of series: String, in text: String) throws -> Double {
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(series + " ") }, "no \(series)")
        return try #require(Double(line.split(separator: " ").last!))
    }

    /// Builds a service that prints `hello VERSION` and stays up (or exits 3 at once),
    /// padded with `padding` random bytes the shell never reads.
    /// Builds service `hello` printing `version`, followed by `padding` bytes: from
    /// /dev/urandom, or the same bytes for every build with the same `paddingSeed`
    /// (builds that differ only in their first line, as consecutive builds of a
    /// real service differ a little).
    static func buildService(_ client: SlipwayClient, _ cluster: Cluster, version: String, exitAtOnce: Bool = false,
                             padding: Int = 6 << 20, paddingSeed: Int? = nil) async throws -> String {
        let (repo, commit) = try TestRepository.make(in: cluster.directory)
        let body = exitAtOnce ? "echo hello \(version); exit 3" : "echo hello \(version); exec sleep 600"
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = UUID().uuidString
        request.repoURL = repo.path
        request.commit = commit
        request.artifactName = "hello"
        let bytes = paddingSeed.map { "python3 -c 'import random, sys; random.seed(\($0)); sys.stdout.buffer.write(random.randbytes(\(padding)))'" }
            ?? "head -c \(padding) /dev/urandom"
        request.recipe = "mkdir -p out && printf '#!/bin/sh\\n\(body)\\n' > out/hello && \(bytes) >> out/hello"
        request.artifactPath = "out/hello"
        let ack = try await client.submit(request)
        let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
        try #require(done.status == .succeeded, "build failed: \(done.error)")
        return done.artifactDigest
    }

    static func deploy(_ client: SlipwayClient, _ digest: String) async throws {
        var request = Slipway_V1_DeployRequest()
        request.service = "hello"
        request.artifactDigest = digest
        request.setBy = "test"
        request.newService = true  // agents started a moment ago may not be in a region report yet
        _ = try await client.deploy(request)
    }

    /// Waits until every agent's running service printed `text` (the build it runs).
    static func waitUntilEvery(_ agents: [String], _ cluster: Cluster, runs text: String) async throws {
        try await ReplicationTests.waitFor("\(agents) to run '\(text)'", timeout: .seconds(60)) {
            agents.allSatisfy { cluster.serviceOutput($0).contains(text) }
        }
    }
}
