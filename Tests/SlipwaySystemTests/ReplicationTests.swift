import Foundation
import SlipwayArtifact
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import SlipwayThreads
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real region controllers replicating between each other on loopback, with a
/// real coordinator recording replicas and deployability in PostgreSQL.
@Suite("Replication between regions", .serialized, .enabled(if: Cluster.isConfigured))
struct ReplicationTests {
    static let pieceSize = 4 << 20

    @Test("3 regions: deployable only once B and C have verified copies; a corrupt piece in A is refetched from C, never committed")
    func threeRegionsAndACorruptPiece() async throws {
        let (_, statuses) = try await Cluster.with { try await Self.threeRegionsAndACorruptPiece($0) }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "SIGTERM should drain every daemon to exit 0: \(statuses)")
    }

    @Test("region C killed mid-replication resumes where it was: verified pieces are not fetched again")
    func resumeAfterKill() async throws {
        _ = try await Cluster.with { try await Self.resumeAfterKill($0) }
    }

    @Test("garbage collection deletes old artifacts everywhere, never a current or previous target")
    func garbageCollection() async throws {
        _ = try await Cluster.with { try await Self.garbageCollection($0) }
    }

    @Test("an artifact no reachable region has steps aside; the next one is copied meanwhile")
    func stalledCopyStepsAside() async throws {
        _ = try await Cluster.with { try await Self.stalledCopyStepsAside($0) }
    }

    // MARK: scenarios

    static func stalledCopyStepsAside(_ cluster: Cluster) async throws {
        let stores = Self.stores(["a", "b", "c"])
        let peers = { (region: String) in stores.filter { $0.key != region } }
        try cluster.startCoordinator(extra: ["--regions", "a,b,c"])
        let regionA = try cluster.startRegion("region-a", region: "a", store: stores["a"]!, peers: peers("a"))
        try cluster.startRegion("region-c", region: "c", store: stores["c"]!, peers: peers("c"))
        let workerA = try cluster.startWorker("wa", region: "a", store: stores["a"]!)
        try cluster.startWorker("wc", region: "c", store: stores["c"]!)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        // Built in a and copied to c; then a goes away, so b (down so far) can get it from no one.
        let stranded = try await build(client, cluster, bytes: 3_000, labels: ["region": "a"])
        try await waitFor("c's copy", timeout: .seconds(30)) {
            try await artifact(client, stranded).replicas.first { $0.region == "c" }?.state == .complete
        }
        // c's copy is then lost too (a damaged disk): only a, now down, could serve it.
        try FileManager.default.removeItem(at: cluster.storeDirectory("region-c").appendingPathComponent("artifacts/\(stranded)"))
        _ = await workerA.stopped()
        _ = await regionA.stopped()
        let reachable = try await build(client, cluster, bytes: 4_000, labels: ["region": "c"])

        try cluster.startRegion("region-b", region: "b", store: stores["b"]!, peers: peers("b"),
                                extra: ["--replication-stall-timeout", "2s"])
        try await waitFor("b's copy of the artifact c has", timeout: .seconds(30)) {
            try await artifact(client, reachable).replicas.first { $0.region == "b" }?.state == .complete
        }
        #expect(cluster.logText("region-b").contains("replication stalled; stepping aside"))
        let waiting = try await artifact(client, stranded).replicas.first { $0.region == "b" }
        #expect(waiting?.state == .pending && waiting?.error.contains("no piece from") == true, "\(String(describing: waiting))")
    }

    static func threeRegionsAndACorruptPiece(_ cluster: Cluster) async throws {
        let stores = Self.stores(["a", "b", "c"])
        try cluster.startCoordinator(extra: ["--regions", "a,b,c"])
        try cluster.startRegion("region-a", region: "a", store: stores["a"]!, peers: stores.filter { $0.key != "a" })
        try cluster.startRegion("region-c", region: "c", store: stores["c"]!, peers: stores.filter { $0.key != "c" })
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        // Pieces cut by content: about 9, of 256 KiB to 4 MiB.
        let digest = try await build(client, cluster, bytes: 2 * pieceSize + (1 << 20))
        try await waitFor("C's replica", timeout: .seconds(30)) {
            try await artifact(client, digest).replicas.first { $0.region == "c" }?.state == .complete
        }
        var info = try await artifact(client, digest)
        #expect(info.deployableAtUnixMicros == 0, "B has no copy yet, so the artifact must not be deployable")
        #expect(info.replicas.first { $0.region == "b" }?.state == .pending)

        // Damage A's copy of piece 1, then bring B up: it asks A (the origin) first.
        let piece = cluster.storeDirectory("region-a").appendingPathComponent("artifacts/\(digest)/pieces/1")
        try Data(repeating: 0x5a, count: pieceSize).write(to: piece)
        try cluster.startRegion("region-b", region: "b", store: stores["b"]!, peers: stores.filter { $0.key != "b" })

        try await waitFor("the artifact to become deployable", timeout: .seconds(60)) {
            try await artifact(client, digest).deployableAtUnixMicros > 0
        }
        info = try await artifact(client, digest)
        #expect(info.replicas.map(\.region) == ["a", "b", "c"])
        #expect(info.pieceCount > 2 && info.piecesByContent)
        #expect(info.replicas.allSatisfy { $0.state == .complete && $0.piecesDone == info.pieceCount })
        #expect(cluster.logText("region-b").contains("peer served a corrupt piece"), "B must have noticed A's bad piece")
        let copy = cluster.storeDirectory("region-b").appendingPathComponent("artifacts/\(digest)/pieces").path
        #expect(try await shellOutput("cd '\(copy)' && cat $(seq 0 \(info.pieceCount - 1)) | sha256sum | cut -d' ' -f1") == digest,
                "B's copy is the artifact, byte for byte")

        // One replica event per region that copied it, and exactly one deployable event, after both.
        let events = try await shellOutput("""
            psql '\(cluster.databaseURL)' -Atc "SELECT type FROM events WHERE type LIKE 'artifact_%' ORDER BY seq"
            """).split(separator: "\n")
        #expect(events == ["artifact_published", "artifact_replica", "artifact_replica", "artifact_deployable"])

        // Hostile or confused reports are answered with a reason and change nothing.
        let report = { (digest: String, region: String, state: Slipway_V1_ReplicaState) in
            var status = Slipway_V1_ReplicationStatus()
            status.digest = digest
            status.region = region
            status.state = state
            return status
        }
        let regionB = try cluster.security(.region, "b")
        #expect(try await errorCode(cluster.intake, report("not-a-digest", "b", .complete), security: regionB) == "invalid_argument")
        #expect(try await errorCode(cluster.intake, report(digest, "mars", .complete), security: regionB) == "invalid_argument")
        #expect(try await errorCode(cluster.intake, report(String(repeating: "0", count: 64), "b", .complete), security: regionB) == "not_found")
        let regressed = try await request(cluster.intake, report(digest, "b", .copying), security: regionB)
        #expect(try regressed.body(as: Slipway_V1_ReplicationStatus.self).state == .complete, "a complete replica stays complete")
        // Garbage and nonsense piece requests at every store, from a trusted agent key of each region.
        for (name, endpoint) in stores {
            try await BuildPipelineTests.sendGarbage(to: [endpoint], security: try cluster.security(.agent, "probe", region: name))
        }
        var ask = Slipway_V1_PieceRequest()
        ask.digest = digest
        ask.firstPiece = 1_000_000
        ask.count = 5
        let agentInB = try cluster.security(.agent, "probe", region: "b")
        #expect(try await errorCode(stores["b"]!, ask, security: agentInB) == "invalid_argument")
        ask.digest = String(repeating: "1", count: 64)
        #expect(try await errorCode(stores["b"]!, ask, security: agentInB) == "not_found")
        info = try await artifact(client, digest)
        #expect(info.deployableAtUnixMicros > 0 && info.replicas.allSatisfy { $0.state == .complete })

        // Offered a choice, the store sends the piece it has sent least: every piece once before any twice.
        var offer = Slipway_V1_PieceRequest()
        offer.digest = digest
        offer.firstPiece = 0
        offer.count = 1
        offer.alternatives = (1..<UInt32(info.pieceCount)).map { $0 } + [1_000_000]
        var chosen: [UInt32] = []
        for _ in 0...info.pieceCount {
            let reply = try await request(stores["b"]!, offer, security: agentInB)
            chosen.append(try reply.body(as: Slipway_V1_PieceData.self).index)
        }
        #expect(chosen.dropLast().sorted() == Array(0..<UInt32(info.pieceCount)), "each piece once: \(chosen)")
        #expect(chosen.last == 0, "then the asked piece again, the first of equals")
    }

    static func resumeAfterKill(_ cluster: Cluster) async throws {
        let stores = Self.stores(["a", "c"])
        try cluster.startCoordinator(extra: ["--regions", "a,c"])
        try cluster.startRegion("region-a", region: "a", store: stores["a"]!, peers: ["c": stores["c"]!])
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        // One piece at a time at 2 MiB/s: 40 MiB (about 40 pieces cut by content) take 20 s, time enough to
        // see two arrive and kill it mid-way even on a loaded machine (at 8 MiB/s the window was missed now and then).
        let slow = ["--replication-window", "1", "--replication-max-mibps", "2"]
        let region = try cluster.startRegion("region-c", region: "c", store: stores["c"]!, peers: ["a": stores["a"]!], extra: slow)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }

        let size = 10 * pieceSize
        let digest = try await build(client, cluster, bytes: size)
        let pieces = cluster.storeDirectory("region-c").appendingPathComponent("incoming/\(digest)/pieces")
        try await waitFor("C to hold 2 pieces", timeout: .seconds(30)) {
            ((try? FileManager.default.contentsOfDirectory(atPath: pieces.path)) ?? []).count >= 2
        }
        region.signal(SIGKILL)
        _ = await region.exited()
        let held = try FileManager.default.contentsOfDirectory(atPath: pieces.path).filter { Int($0) != nil }.count
        let manifest = try Slipway_V1_ArtifactManifest(serializedBytes: Data(contentsOf: pieces.deletingLastPathComponent().appendingPathComponent("manifest")))
        let count = manifest.pieceSha256.count
        #expect(held >= 2 && held < count, "killed mid-way: \(held) of \(count) pieces")
        #expect(try await artifact(client, digest).deployableAtUnixMicros == 0)

        try cluster.startRegion("region-c-restarted", region: "c", store: stores["c"]!, peers: ["a": stores["a"]!], storeOf: "region-c")
        try await waitFor("the artifact to become deployable", timeout: .seconds(60)) {
            try await artifact(client, digest).deployableAtUnixMicros > 0
        }
        let log = cluster.logText("region-c-restarted")
        let resumedWith = Int(log.firstMatch(of: /already_held=(\d+)/)?.1 ?? "") ?? -1
        let copied = Int(log.firstMatch(of: /bytes=(\d+)/)?.1 ?? "") ?? -1
        #expect(resumedWith >= held, "the restarted region starts from the verified pieces on disk")
        // One piece in flight at a time, lowest first: the pieces kept are the first ones.
        #expect(copied == size - Int(Manifest.pieceOffset(manifest, index: resumedWith)), "only the missing pieces cross the network again")
        let copy = cluster.storeDirectory("region-c").appendingPathComponent("artifacts/\(digest)/pieces").path
        #expect(try await shellOutput("cd '\(copy)' && cat $(seq 0 \(count - 1)) | sha256sum | cut -d' ' -f1") == digest)
    }

    static func garbageCollection(_ cluster: Cluster) async throws {
        let stores = Self.stores(["a", "c"])
        try cluster.startCoordinator(extra: ["--regions", "a,c", "--artifact-retention", "0"])
        try cluster.startRegion("region-a", region: "a", store: stores["a"]!, peers: ["c": stores["c"]!])
        try cluster.startRegion("region-c", region: "c", store: stores["c"]!, peers: ["a": stores["a"]!])
        try cluster.startWorker("w1", region: "a", store: stores["a"]!)
        let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
        defer { Task { await client.close() } }
        var digests: [String] = []
        for size in [1_000, 2_000, 3_000] {
            let digest = try await build(client, cluster, bytes: size)
            try await waitFor("\(digest) to be deployable", timeout: .seconds(30)) {
                try await artifact(client, digest).deployableAtUnixMicros > 0
            }
            digests.append(digest)
        }
        let (previous, current, doomed) = (digests[0], digests[1], digests[2])
        // `previous` was the target before `current`: a rollback would return to it.
        _ = try await client.deploy(DeployTests.deploy(previous))
        _ = try await client.deploy(DeployTests.deploy(current))
        // A coordinator with a 1 s retention takes over (the first steps down).
        _ = await cluster.processes["coordinator"]!.stopped()
        try cluster.startCoordinator("coordinator-gc", extra: ["--regions", "a,c", "--artifact-retention", "1s", "--gc-interval", "1s"])

        let stored = { (region: String, digest: String) in
            FileManager.default.fileExists(atPath: cluster.storeDirectory(region).appendingPathComponent("artifacts/\(digest)").path)
        }
        try await waitFor("the unprotected artifact to be deleted everywhere", timeout: .seconds(30)) {
            try await !exists(client, doomed) && !stored("region-a", doomed) && !stored("region-c", doomed)
        }
        for digest in [previous, current] {
            #expect(try await exists(client, digest), "a target must never be collected")
            #expect(stored("region-a", digest) && stored("region-c", digest))
        }
        // The copy is renamed aside before the region logs the deletion: wait for the line, do not race it.
        try await cluster.waitForLog("region-c", "artifact deleted by garbage collection", timeout: .seconds(5))
    }

    // MARK: helpers

    static func stores(_ regions: [String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: regions.map { ($0, "tcp://127.0.0.1:\(freeLoopbackPort())") })
    }

    /// Builds a random artifact of `bytes` bytes in the cluster's worker; returns its digest.
    static func build(_ client: SlipwayClient, _ cluster: Cluster, bytes: Int, labels: [String: String] = [:]) async throws -> String {
        let (repo, commit) = try TestRepository.make(in: cluster.directory)
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = UUID().uuidString
        request.repoURL = repo.path
        request.commit = commit
        request.artifactName = "blob"
        request.recipe = "mkdir -p out && head -c \(bytes) /dev/urandom > out/blob"
        request.artifactPath = "out/blob"
        request.labels = labels
        let ack = try await client.submit(request)
        let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
        try #require(done.status == .succeeded, "build failed: \(done.error)")
        return done.artifactDigest
    }

    /// One request over a fresh DEALER; the reply.
    static func request(_ endpoint: String, _ body: some WireBody & Sendable, security: ClientSecurity = .plain) async throws -> WireMessage {
        try #require(try await AuthenticationTests.reply(endpoint, body, security: security, timeout: .seconds(10)), "no reply from \(endpoint)")
    }

    static func errorCode(_ endpoint: String, _ body: some WireBody & Sendable, security: ClientSecurity = .plain) async throws -> String {
        let reply = try await request(endpoint, body, security: security)
        return reply.type == .errorReply ? try reply.body(as: Slipway_V1_ErrorReply.self).code.name : "none: \(reply.type)"
    }

    static func query(digest: String) -> Slipway_V1_ArtifactQuery {
        var query = Slipway_V1_ArtifactQuery()
        query.digest = digest
        return query
    }

    static func exists(_ client: SlipwayClient, _ digest: String) async throws -> Bool {
        do {
            return try await !client.artifacts(query(digest: digest)).isEmpty
        } catch let error as ProducerError where error.serverCode == .notFound {
            return false
        }
    }

    static func artifact(_ client: SlipwayClient, _ digest: String) async throws -> Slipway_V1_ArtifactInfo {
        try #require(try await client.artifacts(query(digest: digest)).first)
    }

    static func waitFor(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw ClusterTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
