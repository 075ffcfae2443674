import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// Rollouts end to end: a coordinator (and a standby), 3 regions, 3 agents per
/// region running real service processes, and `slipway deploy --wait` as a CI
/// job runs it. Waves are judged on what the agents really do.
@Suite("Rollouts", .serialized, .enabled(if: Cluster.isConfigured))
struct RolloutTests {
    static let regions = ["a", "b", "c"]

    /// The fleet: coordinator, a region controller per region, a worker, `perRegion` agents per region.
    static func fleet(_ cluster: Cluster, perRegion: Int = 3, coordinator: [String] = []) throws -> [(region: String, name: String)] {
        let stores = ReplicationTests.stores(regions)
        try cluster.startCoordinator(extra: ["--regions", regions.joined(separator: ","), "--report-stale-after", "16s"] + coordinator)
        for region in regions {
            try cluster.startRegion("region-\(region)", region: region, store: stores[region]!, peers: stores.filter { $0.key != region })
        }
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        let machines = regions.flatMap { region in (1...perRegion).map { (region: region, name: "\(region)\($0)") } }
        for machine in machines { try cluster.startAgent(machine.name, region: machine.region, regionProcess: "region-\(machine.region)") }
        return machines
    }

    /// Builds a service printing `hello VERSION`: staying up, exiting at once, or exiting after `dieAfter` seconds.
    static func build(_ client: SlipwayClient, _ cluster: Cluster, _ version: String, dieAfter: Int? = nil, exitAtOnce: Bool = false) async throws -> String {
        let (repo, commit) = try TestRepository.make(in: cluster.directory)
        let body = exitAtOnce ? "echo hello \(version); exit 3"
            : dieAfter.map { "echo hello \(version); sleep \($0); echo dying; exit 4" } ?? "echo hello \(version); exec sleep 600"
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = UUID().uuidString
        request.repoURL = repo.path
        request.commit = commit
        request.artifactName = "hello"
        request.recipe = "mkdir -p out && printf '#!/bin/sh\\n\(body)\\n' > out/hello && head -c 1000000 /dev/urandom >> out/hello"
        request.artifactPath = "out/hello"
        let done = try await client.wait(for: try await client.submit(request).jobID, timeout: .seconds(60))
        try #require(done.status == .succeeded, "build failed: \(done.error)")
        try await ReplicationTests.waitFor("\(version) deployable", timeout: .seconds(60)) {
            try await ReplicationTests.artifact(client, done.artifactDigest).deployableAtUnixMicros > 0
        }
        return done.artifactDigest
    }

    /// Deploys `digest` as service `hello` with `plan` (the coordinator's default when empty). - Returns: the rollout it started.
    @discardableResult
    static func deploy(_ client: SlipwayClient, _ digest: String, plan: String = "") async throws -> Slipway_V1_RolloutStatus {
        var request = Slipway_V1_DeployRequest()
        request.newService = true  // agents started a moment ago may not be in a region report yet
        request.service = "hello"
        request.artifactDigest = digest
        request.plan = plan
        request.setBy = "test"
        return try await client.deploy(request).rollout
    }

    /// Deploys `digest` to every machine (plan `all`) and waits until the rollout succeeded.
    static func deployEverywhere(_ client: SlipwayClient, _ digest: String) async throws {
        let rollout = try await deploy(client, digest, plan: "all")
        try await ReplicationTests.waitFor("\(digest.prefix(12)) rolled out", timeout: .seconds(60)) {
            try await client.rollout(service: "hello", id: rollout.id).state == .succeeded
        }
    }

    /// Builds v1 and v2 of `hello` and puts v1 on every machine: where the rollout tests that replace a running build start.
    static func v1RunningV2Built(_ client: SlipwayClient, _ cluster: Cluster) async throws -> (v1: String, v2: String) {
        let v1 = try await build(client, cluster, "v1")
        let v2 = try await build(client, cluster, "v2")
        try await deployEverywhere(client, v1)
        return (v1, v2)
    }

    /// `slipway deploy hello DIGEST --wait` as a separate process (the CI job), its output in `deploy-LABEL.log`.
    static func deployWaiting(_ cluster: Cluster, _ digest: String, plan: String, label: String, timeout: String = "5m") throws -> SpawnedProcess {
        try SpawnedProcess([Cluster.binary!, "deploy", "hello", digest, "--plan", plan, "--wait", "--timeout", timeout, "--by", "ci",
                            "--coordinator", cluster.intake] + cluster.clientKeyFlags(.operator, "tester"),
                           log: cluster.log("deploy-\(label)"))
    }

    /// Machines that ever started downloading `digest` (the agent logs each new target it fetches).
    static func downloaders(of digest: String, _ machines: [(region: String, name: String)], _ cluster: Cluster) -> [String] {
        machines.map(\.name).filter { name in
            cluster.logText(name).split(separator: "\n").contains { $0.contains("new target") && $0.contains(digest) }
        }
    }

    @Test("canary: a healthy build passes every wave in order, later waves downloading nothing before; a failing build halts at the canary and the fleet stays on the good one")
    func canary() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.canary($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func canary(_ cluster: Cluster) async throws {
        let machines = try fleet(cluster, coordinator: ["--canary-bake", "2s"])
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let v1 = try await build(client, cluster, "v1")
        let v2 = try await build(client, cluster, "v2")
        let broken = try await build(client, cluster, "broken", exitAtOnce: true)

        let started = try await deploy(client, v1, plan: "all")
        #expect(started.plan == "all" && started.state == .progressing && started.fromDigest.isEmpty)
        try await ReplicationTests.waitFor("v1 rolled out", timeout: .seconds(60)) {
            try await client.rollout(service: "hello").state == .succeeded
        }
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")

        // v2, canary plan: 1 machine in a, then a, then b, then c, then everything.
        let deploy = try deployWaiting(cluster, v2, plan: "canary", label: "v2")
        let allowed: [[String: Int]] = [["a": 1], ["a": 3], ["a": 3, "b": 3], ["a": 3, "b": 3, "c": 3], ["a": 3, "b": 3, "c": 3]]
        var seenWaves: Set<UInt32> = []
        var rollout = Slipway_V1_RolloutStatus()
        try await ReplicationTests.waitFor("the v2 rollout to end", timeout: .seconds(120)) {
            // Reports are read before the rollout (see ServiceStatus): what they count happened in this wave or earlier.
            let status = try await client.status(service: "hello")
            rollout = try #require(status.rollouts.first)
            guard rollout.toDigest == v2 else { return false }
            seenWaves.insert(rollout.wave)
            for region in status.regions {
                let onV2 = region.counts.filter { $0.artifactDigest == v2 }.reduce(0) { $0 + Int($1.machines) }
                let limit = rollout.state == .succeeded ? 3 : allowed[Int(rollout.wave)][region.region] ?? 0
                #expect(onV2 <= limit, "wave \(rollout.wave + 1): \(onV2) machines of \(region.region) on v2, at most \(limit) allowed")
            }
            return rollout.state != .progressing
        }
        #expect(rollout.state == .succeeded, "\(rollout.reason)")
        #expect(rollout.waves.map(\.result) == Array(repeating: "passed", count: 5))
        #expect(zip(rollout.waves, rollout.waves.dropFirst()).allSatisfy { $0.endedAtUnixMicros <= $1.startedAtUnixMicros },
                "each wave started after the one before it passed")
        #expect(seenWaves.count >= 3, "the waves were seen one by one: \(seenWaves.sorted())")
        #expect(await deploy.exited() == 0, "\(cluster.logText("deploy-v2"))")
        #expect(cluster.logText("deploy-v2").contains("succeeded"))
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")

        // The broken build: the canary machine fails its health check, the rollout halts there and rolls back.
        let failing = try deployWaiting(cluster, broken, plan: "canary", label: "broken")
        #expect(await failing.exited() == 1, "\(cluster.logText("deploy-broken"))")
        let final = try await client.rollout(service: "hello")
        #expect(final.toDigest == broken && final.state == .rolledBack && final.wave == 0 && final.waves[0].result == "failed", "\(final)")
        let canaries = downloaders(of: broken, machines, cluster)
        #expect(canaries.count == 1 && canaries.allSatisfy { $0.hasPrefix("a") }, "only the canary machine fetched it: \(canaries)")
        let output = cluster.logText("deploy-broken")
        #expect(canaries.allSatisfy { output.contains("failing: \($0)") }, "deploy --wait names the failing machine: \(output)")
        #expect(output.contains("exited with status 3"), "\(output)")
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")
        let status = try await client.status(service: "hello")
        #expect(status.targets.first { $0.region.isEmpty }?.artifactDigest == v2 && status.targets.first?.rolloutID == 0,
                "the global target is v2 again, with no rollout on it")
        #expect(status.history.first?.action == "rollback" && status.history.first?.toDigest == v2)

    }

    @Test("a build that starts healthy and dies during the bake halts the same way")
    func diesDuringBake() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.diesDuringBake($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func diesDuringBake(_ cluster: Cluster) async throws {
        let machines = try fleet(cluster, perRegion: 2, coordinator: ["--canary-bake", "8s"])
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let broken = try await build(client, cluster, "broken", exitAtOnce: true)
        let v1 = try await build(client, cluster, "v1")
        let dying = try await build(client, cluster, "dying", dieAfter: 3)

        // The service's first rollout fails: nothing to go back to. The next one starts from nothing, not from it.
        let first = try await deploy(client, broken, plan: "all")
        try await ReplicationTests.waitFor("the first rollout to roll back", timeout: .seconds(60)) {
            try await client.rollout(service: "hello", id: first.id).state == .rolledBack
        }
        let next = try await deploy(client, v1, plan: "all")
        #expect(next.fromDigest.isEmpty, "a failed first build is nobody's stable build: \(next.fromDigest)")
        try await ReplicationTests.waitFor("v1 rolled out", timeout: .seconds(60)) {
            try await client.rollout(service: "hello", id: next.id).state == .succeeded
        }
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")

        let deploy = try deployWaiting(cluster, dying, plan: "canary", label: "dying")
        #expect(await deploy.exited() == 1, "\(cluster.logText("deploy-dying"))")
        let rollout = try await client.rollout(service: "hello")
        #expect(rollout.state == .rolledBack && rollout.wave == 0, "\(rollout)")
        let canary = downloaders(of: dying, machines, cluster)
        #expect(canary.count == 1, "\(canary)")
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")
        #expect(cluster.logText("deploy-dying").contains("exited with status 4"), "\(cluster.logText("deploy-dying"))")
    }

    @Test("the leader killed mid-rollout: the standby continues it from PostgreSQL to the same end")
    func failover() async throws {
        let (_, _) = try await Cluster.with { try await Self.failover($0) }
    }

    static func failover(_ cluster: Cluster) async throws {
        let plan = "three=a:100% bake=4s; b:100% bake=4s; c:100% bake=4s"
        let machines = try fleet(cluster, perRegion: 2, coordinator: ["--rollout-plan", plan])
        // The first one leads before the standby starts: otherwise either may win the lock.
        try await cluster.waitForLog("coordinator", "coordinator active", timeout: .seconds(30))
        try cluster.startCoordinator("standby", extra: ["--regions", regions.joined(separator: ","), "--report-stale-after", "16s",
                                                         "--rollout-plan", plan])
        try await cluster.waitForLog("standby", "standby", timeout: .seconds(30))
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let (_, v2) = try await v1RunningV2Built(client, cluster)
        let started = try await deploy(client, v2, plan: "three")
        try await ReplicationTests.waitFor("wave 2", timeout: .seconds(60)) { try await client.rollout(service: "hello").wave >= 1 }
        cluster.processes["coordinator"]!.signal(SIGKILL)
        _ = await cluster.processes["coordinator"]!.exited()
        try await cluster.waitForLog("standby", "coordinator active", timeout: .seconds(30))
        try await ReplicationTests.waitFor("the rollout to end under the standby", timeout: .seconds(90)) {
            let rollout = try? await client.rollout(service: "hello")
            return rollout.map { $0.state != .progressing } ?? false
        }
        let rollout = try await client.rollout(service: "hello")
        #expect(rollout.id == started.id && rollout.state == .succeeded && rollout.waves.allSatisfy { $0.result == "passed" }, "\(rollout)")
        #expect(cluster.logText("standby").contains("rollout moved"), "the standby moved it on")
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")
    }

    @Test("a leader frozen mid-wave for longer than the staleness limit wakes, lets the regions report again, and carries on")
    func frozenLeader() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.frozenLeader($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func frozenLeader(_ cluster: Cluster) async throws {
        let plan = "frozen=a:100% bake=24s; *:100% bake=1s"
        let machines = try fleet(cluster, perRegion: 1, coordinator: ["--rollout-plan", plan])
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let (_, v2) = try await v1RunningV2Built(client, cluster)
        let started = try await deploy(client, v2, plan: "frozen")
        try await ReplicationTests.waitFor("wave 1 healthy in a", timeout: .seconds(60)) {
            let rollout = try await client.rollout(service: "hello")
            return rollout.wave == 0 && rollout.progress.contains { $0.region == "a" && $0.healthy == 1 }
        }
        // Longer than --report-stale-after (16 s): on waking, every region's last stored report is old.
        let leader = cluster.processes["coordinator"]!
        leader.signal(SIGSTOP)
        try await Task.sleep(for: .seconds(20))
        leader.signal(SIGCONT)
        try await ReplicationTests.waitFor("the rollout to end", timeout: .seconds(60)) {
            try await client.rollout(service: "hello", id: started.id).state != .progressing
        }
        let rollout = try await client.rollout(service: "hello", id: started.id)
        #expect(rollout.state == .succeeded && rollout.waves.map(\.result) == ["passed", "passed"], "\(rollout)")
        #expect(cluster.logText("coordinator").contains("region reports went unrecorded"), "the leader saw its own stall")
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v2")
    }

    @Test("a region whose reports stop mid-wave pauses the rollout; resumed after it is back, it continues; abort rolls back")
    func staleRegion() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.staleRegion($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func staleRegion(_ cluster: Cluster) async throws {
        let plan = "slow=a:100% bake=2s; b:100% bake=60s; c:100% bake=2s; prefetch"
        let machines = try fleet(cluster, perRegion: 2, coordinator: ["--rollout-plan", plan])
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        let (v1, v2) = try await v1RunningV2Built(client, cluster)
        try await deploy(client, v2, plan: "slow")
        try await ReplicationTests.waitFor("wave 2 healthy in b", timeout: .seconds(60)) {
            let rollout = try await client.rollout(service: "hello")
            return rollout.wave == 1 && rollout.progress.contains { $0.region == "b" && $0.healthy == 2 }
        }
        // Region b's controller freezes: its reports stop; within the staleness limit the rollout pauses.
        cluster.processes["region-b"]!.signal(SIGSTOP)
        try await ReplicationTests.waitFor("the rollout to pause", timeout: .seconds(40)) {
            try await client.rollout(service: "hello").state == .paused
        }
        let paused = try await client.rollout(service: "hello")
        #expect(paused.reason.contains("region b") && paused.wave == 1, "\(paused.reason)")
        cluster.processes["region-b"]!.signal(SIGCONT)
        try await ReplicationTests.waitFor("region b to report again", timeout: .seconds(30)) {
            let report = try await client.status(service: "hello").regions.first { $0.region == "b" }
            return report.map { Date().timeIntervalSince1970 - Double($0.receivedAtUnixMicros) / 1e6 < 5 } ?? false
        }
        // Its machines were never silent, only the controller was: it wakes reporting them, not missing them.
        #expect(cluster.logText("region-b").contains("tracker stalled"))
        #expect(!cluster.logText("region-b").contains("went silent"), "the controller took its own stall for its machines' silence")
        let awake = try await client.rollout(service: "hello").progress.filter { $0.region == "b" }
        #expect(awake.count == 1 && awake.allSatisfy { $0.missing == 0 }, "\(awake)")
        let resumed = try await shellOutput("'\(Cluster.binary!)' rollout resume hello --by oncall --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " "))")
        #expect(resumed.contains("progressing"), "\(resumed)")
        try await ReplicationTests.waitFor("the rollout to continue into wave 2's bake", timeout: .seconds(30)) {
            let rollout = try await client.rollout(service: "hello")
            return rollout.state == .progressing && rollout.wave == 1
        }
        // A pause resent with the same request id (its answer lost) is answered, not refused as "not progressing".
        var pause = Slipway_V1_RolloutControl()
        pause.service = "hello"
        pause.action = .pause
        pause.setBy = "oncall"
        let requestID = UUID().uuidString
        for attempt in 1...2 {
            let answer = try #require(try await AuthenticationTests.reply(cluster.intake, pause, security: cluster.security(), messageID: requestID))
            #expect(answer.type == .rolloutStatus, "attempt \(attempt): \(answer.type)")
            #expect(try answer.body(as: Slipway_V1_RolloutStatus.self).state == .paused)
        }
        // The operator aborts: every machine goes back to v1.
        let aborted = try await shellOutput("'\(Cluster.binary!)' rollout abort hello --by oncall --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " "))")
        #expect(aborted.contains("aborted"), "\(aborted)")
        try await AgentTests.waitUntilEvery(machines.map(\.name), cluster, runs: "hello v1")
        let status = try await client.status(service: "hello")
        #expect(status.rollouts.first?.state == .aborted && status.rollouts.first?.reason == "aborted by oncall")
        #expect(status.targets.first { $0.region.isEmpty }?.artifactDigest == v1)
        // The plan prefetches: region c's machines fetched v2 ahead of their wave, and never ran it.
        for machine in machines where machine.region == "c" {
            let log = cluster.logText(machine.name).split(separator: "\n")
            #expect(log.contains { $0.contains("download complete") && $0.contains(v2) },
                    "\(machine.name) prefetched v2: \(log.suffix(12).joined(separator: "\n"))\n\(cluster.logText("region-c").split(separator: "\n").suffix(8).joined(separator: "\n"))")
            #expect(!log.contains { $0.contains("new target") && $0.contains(v2) },
                    "\(machine.name) never installed v2: \(log.filter { $0.contains("target") || $0.contains("download") }.suffix(12).joined(separator: "\n"))\n\(cluster.logText("region-c").split(separator: "\n").filter { $0.contains("target") }.suffix(8).joined(separator: "\n"))")
        }
        let refused = try await runShell("'\(Cluster.binary!)' rollout resume hello --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " ")) 2>/dev/null")
        #expect(refused == 5, "an ended rollout cannot be resumed: refused")
    }
}
