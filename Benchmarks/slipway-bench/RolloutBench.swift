import ArgumentParser
import Foundation
import Logging
import SlipwayArtifact
import SlipwayProducer
import SlipwayProto
import SlipwayStore

/// The cost of waves themselves: the time from `deploy` until the rollout has
/// succeeded (every machine healthy on the new build, as the regions reported
/// it) with a 4-wave plan and zero bake time, against the `all` plan, in the
/// same run, on the distribution benchmark's network (each agent in its own
/// namespace, every upload capped by `tc`). Runs a real coordinator (on the
/// bridge, with PostgreSQL), the region controller and the agents; each
/// measured deploy brings a new artifact of the same size, from a fleet that
/// runs the previous one.
///
/// Plans: `all`; `four` (25 %, 50 %, 75 %, 100 % of the region; a wave's
/// machines download only once it starts); `four-prefetch` (the same waves,
/// machines outside them fetch the build ahead without installing it).
struct RolloutBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Deploy-to-all-healthy with a 4-wave plan (zero bake) vs the all plan, agents in tc-capped namespaces.")

    @Option(name: .customLong("database-url"), help: "A database on the server to use; the bench creates its own database there.")
    var databaseURL: String
    @Option(help: "Artifact size in MiB.") var sizeMib = 128
    @Option(help: "Agents, one namespace each.") var agents = 16
    @Option(help: "Upload cap of every namespace (agents and store), in Mbit/s.") var rateMbit = 80
    @Option(help: "How each uplink is shared among its connections: per-peer (a queue per destination, as a flow-fair qdisc shares it) or drop-tail (one tbf queue).") var egress: EgressQueue = .perPeer
    @Option(help: "Piece size in KiB.") var pieceKib = 4_096
    @Option(help: "Rounds of the three plans (each round deploys three new artifacts).") var rounds = 1
    @Option(help: "Scratch folder (needs about (agents + 1) × 3 × rounds × the artifact size).") var directory: String?

    static let plans = ["all", "four", "four-prefetch"]

    func validate() throws {
        guard sizeMib >= 1, (1...200).contains(agents), rateMbit >= 1, (64...65_536).contains(pieceKib), (1...10).contains(rounds) else {
            throw ValidationError("--size-mib and --rate-mbit must be at least 1, --agents 1…200, --piece-kib 64…65536, --rounds 1…10")
        }
    }

    func run() async throws {
        guard getuid() == 0 else { throw ValidationError("needs root (network namespaces and tc)") }
        let binary = try siblingExecutable("slipway")
        let logger = Logger(label: "bench")
        let scratch = URL(fileURLWithPath: directory ?? FileManager.default.temporaryDirectory.path)
            .appendingPathComponent("slipway-rollout-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let database = try await createBenchDatabase(adminURL: databaseURL, suffix: "rollout", logger: logger)

        // The artifacts: a small first build, then one per measured deploy, each in the store and deployable.
        let store = scratch.appendingPathComponent("store")
        let db = try PGConnection(url: database, logger: logger)  // closed when it goes
        print("writing \(1 + Self.plans.count * rounds) artifacts of \(sizeMib) MiB into the regional store…")
        var digests: [String] = []
        for index in 0...(Self.plans.count * rounds) {
            let source = scratch.appendingPathComponent("artifact")
            try writeRandom(to: source, bytes: index == 0 ? 4_096 : UInt64(sizeMib) << 20)
            let manifest = try Manifest.build(fileAt: source.path, name: "bench", pieceSize: UInt32(pieceKib) << 10)
            try seed(manifest, from: source, into: store)
            try FileManager.default.removeItem(at: source)
            try db.query("""
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, origin_region, deployable_at)
                VALUES ($1, 'bench', $2, $3, $4, 'bench', now())
                """, [.text(manifest.digest), .int(manifest.size), .int(manifest.pieceSize), .bytes(manifest.pieceSha256.flatMap { Array($0) })])
            try db.query("INSERT INTO replicas (artifact_digest, region, status) VALUES ($1, 'bench', 'complete')", [.text(manifest.digest)])
            digests.append(manifest.digest)
        }

        let network = Network(agents: agents, rateMbit: rateMbit, egress: egress)
        defer { network.tearDown() }
        try network.setUp()
        let bytes = Double(UInt64(sizeMib) << 20)
        let bound = bytes * 8 / (Double(rateMbit) * 1e6)
        print(String(format: "%d agents, %d KiB pieces, upload cap %d Mbit/s everywhere (%@ queue): lower bound F/u = %.1f s", agents, pieceKib, rateMbit, egress.rawValue, bound))

        let coordinatorHost = "10.77.0.1", storeHost = network.address(of: 0)
        let endpoints = (intake: "tcp://\(coordinatorHost):7800", dispatch: "tcp://\(coordinatorHost):7801",
                         events: "tcp://\(coordinatorHost):7802", snapshot: "tcp://\(coordinatorHost):7803")
        let waves = "bench:25%; bench:50%; bench:75%; bench:100%"
        var processes: [Process] = []
        defer { stopAll(processes, grace: 20) }
        let logs = scratch.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        processes.append(try launchLogged([binary, "coordinator", "--database-url", database, "--intake", endpoints.intake,
                                           "--dispatch", endpoints.dispatch, "--events", endpoints.events, "--snapshot", endpoints.snapshot,
                                           "--regions", "bench", "--rollout-plan", "four=\(waves)", "--rollout-plan", "four-prefetch=\(waves); prefetch",
                                           "--report-stale-after", "60s", "--insecure", "--log-level", "warning"],
                                          log: logs.appendingPathComponent("coordinator.log")))
        processes.append(try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(0), binary, "region", "--name", "bench",
                                           "--store-dir", store.path, "--store", "tcp://\(storeHost):7710",
                                           "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                                           "--coordinator-intake", endpoints.intake, "--coordinator-events", endpoints.events,
                                           "--coordinator-snapshot", endpoints.snapshot, "--log-level", "warning", "--insecure"],
                                          log: logs.appendingPathComponent("region.log")))
        for index in 1...agents {
            processes.append(try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(index), binary, "agent", "--machine-id", "a\(index)",
                                               "--region", "bench", "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                                               "--listen", "tcp://\(network.address(of: index)):7730",
                                               "--root", scratch.appendingPathComponent("a\(index)").path, "--service", "bench",
                                               "--run", "bench=exec sleep 100000", "--heartbeat", "1s", "--health-grace", "1s", "--insecure",
                                               "--log-level", "warning"],
                                              log: logs.appendingPathComponent("agent-\(index).log")))
        }
        let client = try SlipwayClient(endpoint: endpoints.intake, requestTimeout: .seconds(5))
        defer { Task { await client.close() } }
        try await waitFor("every agent to report", timeout: 60) {
            (try? await client.status(service: "bench").regions.first?.machines) == UInt32(agents)
        }
        _ = try await deploy(client, digests[0], plan: "all", timeout: 120)

        var times: [String: [Double]] = [:]
        var next = 1
        for round in 1...rounds {
            for plan in Self.plans {
                let seconds = try await deploy(client, digests[next], plan: plan, timeout: bound * Double(agents) * 2 + 300)
                next += 1
                times[plan, default: []].append(seconds)
                print(String(format: "round %d, plan %-13@ deploy → every machine healthy: %6.1f s = %.2f × bound", round, plan as NSString,
                             seconds, seconds / bound))
            }
        }
        let all = median(times["all"]!)
        print(String(format: "ratio four-wave / all = %.2f (goal ≤ 1.2)", median(times["four"]!) / all))
        print(String(format: "ratio four-wave with prefetch / all = %.2f", median(times["four-prefetch"]!) / all))
    }

    /// Deploys `digest` with `plan` and waits until the rollout ends. - Returns: the seconds it took to succeed.
    private func deploy(_ client: SlipwayClient, _ digest: String, plan: String, timeout: Double) async throws -> Double {
        var request = Slipway_V1_DeployRequest()
        request.service = "bench"
        request.artifactDigest = digest
        request.newService = true  // the first deploy may come before the regions report the agents
        request.plan = plan
        request.setBy = "bench"
        let start = ContinuousClock.now
        let id = try await client.deploy(request).rollout.id
        while true {
            let rollout = try await client.rollout(service: "bench", id: id)
            switch rollout.state {
            case .succeeded: return elapsed(since: start)
            case .progressing: break
            default: throw ValidationError("rollout \(id) (\(plan)) ended \(rollout.state): \(rollout.reason)")
            }
            guard elapsed(since: start) < timeout else { throw ValidationError("rollout \(id) (\(plan)) still progressing after \(Int(timeout)) s") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func waitFor(_ what: String, timeout: Double, _ condition: () async -> Bool) async throws {
        let start = ContinuousClock.now
        while await !condition() {
            guard elapsed(since: start) < timeout else { throw ValidationError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
