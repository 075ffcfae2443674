import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// Target builds end to end: refusal until replicated, history, rollback, and
/// regions that keep their targets while the coordinator is down.
@Suite("Target builds", .serialized, .enabled(if: Cluster.isConfigured))
struct DeployTests {
    @Test("deploy is refused until replicated; deploy, redeploy, rollback are recorded and reach every region")
    func deployAndRollback() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.deployAndRollback($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    static func deployAndRollback(_ cluster: Cluster) async throws {
        let stores = ReplicationTests.stores(["a", "c"])
        try cluster.startCoordinator(extra: ["--regions", "a,c"])
        try cluster.startRegion("region-a", region: "a", store: stores["a"]!, peers: ["c": stores["c"]!])
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        // Region c is down: v1 exists only in a.
        let v1 = try await ReplicationTests.build(client, cluster, bytes: 5_000)
        let refused = await #expect(throws: ProducerError.self) { _ = try await client.deploy(Self.deploy(v1)) }
        #expect(refused?.serverCode.name == "failed_precondition")
        #expect(refused?.description.contains("c (pending)") == true, "the reason names the missing region: \(refused?.description ?? "")")
        let regional = try await client.deploy(Self.deploy(v1, regions: ["a"]))
        #expect(regional.targets.map(\.region) == ["a"] && regional.targets.first?.version == 1)

        try cluster.startRegion("region-c", region: "c", store: stores["c"]!, peers: ["a": stores["a"]!])
        try await ReplicationTests.waitFor("v1 deployable", timeout: .seconds(30)) {
            try await ReplicationTests.artifact(client, v1).deployableAtUnixMicros > 0
        }
        let first = try await client.deploy(Self.deploy(v1))
        #expect(first.targets.first?.version == 1 && first.targets.first?.previousDigest == "" && first.unchanged.isEmpty)
        #expect(first.rollout.plan == "all" && first.rollout.toDigest == v1 && first.pinnedRegions == ["a"], "a global deploy starts a rollout")
        let again = try await client.deploy(Self.deploy(v1))
        #expect(again.unchanged == [""] && again.rollout.id == first.rollout.id, "deploying the current target changes nothing")

        let v2 = try await ReplicationTests.build(client, cluster, bytes: 6_000)
        try await ReplicationTests.waitFor("v2 deployable", timeout: .seconds(30)) {
            try await ReplicationTests.artifact(client, v2).deployableAtUnixMicros > 0
        }
        let second = try await client.deploy(Self.deploy(v2))
        #expect(second.targets.first!.version > first.targets.first!.version && second.targets.first?.previousDigest == v1)
        try await cluster.waitForLog("region-c", "digest=\(v2)")
        // Region a is pinned, so region c alone judges the rollout (it has no machines: nothing fails).
        try await ReplicationTests.waitFor("the v2 rollout to succeed", timeout: .seconds(30)) {
            try await client.rollout(service: "svc").state == .succeeded
        }
        func regionATargets(_ digest: String) -> Bool {
            cluster.logText("region-a").split(separator: "\n").contains { $0.contains("regional target changed") && $0.contains("digest=\(digest)") }
        }
        #expect(!regionATargets(v2), "region a is pinned to v1")

        // Clearing the override hands region a back to the global target (v2).
        let clearText = try await shellOutput("'\(Cluster.binary!)' deploy svc --clear --region a --by oncall --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " "))")
        #expect(clearText.contains("region a: override cleared"), "\(clearText)")
        try await ReplicationTests.waitFor("region a to follow the global target", timeout: .seconds(10)) { regionATargets(v2) }
        var clearAgain = Slipway_V1_DeployRequest()
        clearAgain.service = "svc"
        clearAgain.regions = ["a"]
        clearAgain.clear = true
        clearAgain.setBy = "oncall"
        #expect(try await client.deploy(clearAgain).unchanged == ["a"], "clearing twice changes nothing")

        var rollback = Slipway_V1_RollbackRequest()
        rollback.service = "svc"
        rollback.setBy = "oncall"
        let back = try await client.rollback(rollback)
        #expect(back.targets.first?.artifactDigest == v1 && back.rollout.fromDigest == v2 && back.rollout.plan == "all")

        let status = try await client.status(service: "svc")
        #expect(status.targets.map(\.region) == [""], "the cleared override is no target")
        #expect(status.targets.first?.artifactDigest == v1)
        #expect(status.history.map(\.action) == ["rollback", "clear", "deploy", "deploy", "deploy"])
        #expect(status.history.first?.setBy == "oncall" && status.history.first?.fromDigest == v2)

        // Region c follows the global target; region a keeps its override.
        func savedGlobal() -> [String: Any]? {
            let saved = try? Data(contentsOf: cluster.storeDirectory("region-c").appendingPathComponent("targets.json"))
            return saved.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
                .flatMap { $0["targets"] as? [String: Any] }.flatMap { $0["global"] as? [String: Any] }.flatMap { $0["svc"] as? [String: Any] }
        }
        try await ReplicationTests.waitFor("region c to hold v1 again", timeout: .seconds(10)) { savedGlobal()?["digest"] as? String == v1 }
        #expect(savedGlobal()?["previousDigest"] as? String == v2, "\(savedGlobal() ?? [:])")

        // The CLI shows the same.
        let text = try await shellOutput("'\(Cluster.binary!)' status svc --coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.operator, "tester").joined(separator: " "))")
        #expect(text.contains("global: sha256:\(v1) version") && text.contains("rollback global v") && !text.contains("pinned"), "\(text)")

        // With the coordinator gone, a restarted region still knows its targets.
        _ = await cluster.processes["coordinator"]!.stopped()
        _ = await cluster.processes["region-c"]!.stopped()
        try cluster.startRegion("region-c-again", region: "c", store: stores["c"]!, peers: ["a": stores["a"]!], storeOf: "region-c")
        try await cluster.waitForLog("region-c-again", "digest=\(v1) service=svc")
    }

    @Test("malformed and impossible deploys and rollbacks are answered with reasons")
    func badRequests() async throws {
        _ = try await Cluster.with { cluster in
            try cluster.startCoordinator(extra: ["--regions", "a,c"])
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let digest = String(repeating: "e", count: 64)
            var bad = Self.deploy(digest)
            bad.service = "../etc"
            #expect(await Self.code { _ = try await client.deploy(bad) } == "invalid_argument")
            #expect(await Self.code { _ = try await client.deploy(Self.deploy("xyz")) } == "invalid_argument")
            #expect(await Self.code { _ = try await client.deploy(Self.deploy(digest, regions: ["mars"])) } == "invalid_argument")
            #expect(await Self.code { _ = try await client.deploy(Self.deploy(digest, regions: ["a", "a"])) } == "invalid_argument")
            #expect(await Self.code { _ = try await client.deploy(Self.deploy(digest)) } == "not_found")
            var nobody = Self.deploy(digest)
            nobody.setBy = ""
            #expect(await Self.code { _ = try await client.deploy(nobody) } == "invalid_argument")
            var rollback = Slipway_V1_RollbackRequest()
            rollback.service = "never-deployed"
            rollback.setBy = "test"
            #expect(await Self.code { _ = try await client.rollback(rollback) } == "failed_precondition")
            #expect(try await client.status(service: "never-deployed").targets.isEmpty)
        }
    }

    static func deploy(_ digest: String, regions: [String] = []) -> Slipway_V1_DeployRequest {
        var request = Slipway_V1_DeployRequest()
        request.service = "svc"
        request.artifactDigest = digest
        request.regions = regions
        request.setBy = "test"
        request.newService = true  // these clusters run no agents: no machine ever reports svc
        return request
    }

    static func code(_ call: () async throws -> Void) async -> String {
        do {
            try await call()
            return "accepted"
        } catch let error as ProducerError {
            return error.serverCode.name
        } catch {
            return "\(error)"
        }
    }
}
