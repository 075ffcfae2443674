import ArgumentParser
import Foundation
import Logging
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire
#if canImport(Glibc)
import Glibc
#endif

/// What one real region tracker sustains: thousands of protocol-level agents
/// (``SimulatedFleet``, in this process) register and heartbeat against one real
/// `slipway region`, behind a real coordinator on PostgreSQL. Prints the
/// tracker's CPU at a steady state, then for each new build deployed the time
/// until every agent saw its target, against the same agents receiving a message
/// from a bare ZeroMQ PUB in this process (the same sockets, sent at the same
/// moment: the floor this machine and the measuring set), and the time until
/// the rollout succeeded (every machine reported on it).
struct TrackerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker",
        abstract: "N simulated agents against one real region: tracker CPU, and the time for a target change to reach them all.")

    @Option(name: .customLong("database-url"), help: "A database on the server to use; the bench creates its own database there.")
    var databaseURL: String
    @Option(help: "Simulated agents.") var agents = 10_000
    @Option(help: "Heartbeat interval in seconds (the agent's default is 2).") var heartbeat = 2.0
    @Option(help: "Simulated agents per process (each needs five open files there).") var agentsPerProcess = 3_000
    @Option(help: "Seconds of steady heartbeats over which the tracker's CPU is measured.") var steadySeconds = 20.0
    @Option(help: "New builds deployed and timed.") var changes = 5

    func validate() throws {
        guard (1...100_000).contains(agents), heartbeat >= 0.1, (100...10_000).contains(agentsPerProcess), steadySeconds >= 1,
              (1...50).contains(changes) else {
            throw ValidationError("--agents 1…100000, --heartbeat at least 0.1, --agents-per-process 100…10000, --steady-seconds at least 1, --changes 1…50")
        }
    }

    func run() async throws {
        // The region holds two connections per agent (tracker and targets); this process one per agent (the bare PUB).
        try raiseDescriptorLimit(to: rlim_t(agents) * 2 + 512)
        let binary = try siblingExecutable("slipway")
        let logger = Logger(label: "bench")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-tracker-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let database = try await createBenchDatabase(adminURL: databaseURL, suffix: "tracker", logger: logger)
        let digests = try Self.recordArtifacts(count: changes + 1, database: database, logger: logger)

        let port = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
        let (intake, dispatch, events, snapshot) = (port(), port(), port(), port())
        let (tracker, targets, store, baseline) = (port(), port(), port(), port())
        var processes: [Process] = []
        defer { stopAll(processes, grace: 20) }
        processes.append(try launchLogged([binary, "coordinator", "--database-url", database, "--intake", intake, "--dispatch", dispatch,
                                           "--events", events, "--snapshot", snapshot, "--regions", "bench",
                                           "--report-stale-after", "60s", "--insecure", "--log-level", "warning"],
                                          log: scratch.appendingPathComponent("coordinator.log")))
        let region = try launchLogged([binary, "region", "--name", "bench", "--store-dir", scratch.appendingPathComponent("store").path,
                                       "--store", store, "--tracker", tracker, "--targets", targets, "--coordinator-intake", intake,
                                       "--coordinator-events", events, "--coordinator-snapshot", snapshot,
                                       "--log-level", "warning", "--insecure"],
                                      log: scratch.appendingPathComponent("region.log"))
        processes.append(region)
        let publisher = try await BaselinePublisher(endpoint: baseline)
        defer { publisher.close() }

        let processCount = (agents + agentsPerProcess - 1) / agentsPerProcess
        say("\(agents) simulated agents in \(processCount) processes, heartbeat every \(heartbeat) s (\(Int(Double(agents) / heartbeat)) registrations/s)")
        let start = ContinuousClock.now
        var fleets: [FleetProcess] = []
        defer { for fleet in fleets { fleet.stop() } }
        for number in 0..<processCount {
            let first = number * agentsPerProcess
            fleets.append(try FleetProcess(first: first, count: min(agentsPerProcess, agents - first), tracker: tracker,
                                           targets: [targets, baseline], heartbeat: heartbeat))
        }
        let client = try SlipwayClient(endpoint: intake, requestTimeout: .seconds(10))
        defer { Task { await client.close() } }
        _ = try await deploy(client, digests[0])
        try await waitFor("the region to report every agent", timeout: 120 + Double(agents) / 500) {
            (try? await client.status(service: "bench").regions.first?.machines) == UInt32(agents)
        }
        say(String(format: "every agent registered and reported to the coordinator %.1f s after the first connected", elapsed(since: start)))
        try await waitFor("the first rollout to succeed", timeout: 120) {
            (try? await client.rollout(service: "bench").state) == .succeeded
        }

        let sent = { try fleets.reduce(0) { $0 + (try $1.stats().heartbeats) } }
        let before = (cpuSeconds(of: region.processIdentifier), try sent(), ContinuousClock.now)
        try await Task.sleep(for: .seconds(steadySeconds))
        let after = (cpuSeconds(of: region.processIdentifier), try sent(), ContinuousClock.now)
        let window = seconds(after.2 - before.2)
        let used = ((after.0?.user ?? 0) + (after.0?.system ?? 0)) - ((before.0?.user ?? 0) + (before.0?.system ?? 0))
        say(String(format: "steady state over %.0f s: %.0f heartbeats/s, region process %.1f %% of a core (%.1f µs per heartbeat)",
                   window, Double(after.1 - before.1) / window, used / window * 100, used / Double(max(1, after.1 - before.1)) * 1e6))

        var reached: [Double] = [], floor: [Double] = [], rolled: [Double] = []
        for change in 1...changes {
            // The floor: a bare PUB in this process to the same sockets.
            let marker = String(format: "%064x", change)
            let probeAt = monotonicNanoseconds()
            for fleet in fleets { try fleet.watch(marker, since: probeAt) }
            var probe = Slipway_V1_TargetChange()
            probe.service = "bench"
            probe.region = SimulatedFleet.baselineRegion
            probe.artifactDigest = marker
            try await publisher.send(probe)
            floor.append(try await everyAgentSaw(fleets).last ?? 0)

            let deployAt = monotonicNanoseconds()
            for fleet in fleets { try fleet.watch(digests[change], since: deployAt) }
            let deployed = ContinuousClock.now
            _ = try await deploy(client, digests[change])
            let seen = try await everyAgentSaw(fleets)
            let last = seen.last ?? 0
            reached.append(last)
            try await waitFor("rollout \(change) to succeed", timeout: 120) {
                (try? await client.rollout(service: "bench").state) == .succeeded
            }
            rolled.append(elapsed(since: deployed))
            say(String(format: "change %d: bare PUB reached all in %.3f s; the target reached p50 %.3f s, p99 %.3f s, all %.3f s; rollout succeeded after %.2f s",
                       change, floor.last!, percentile(seen, 0.5), percentile(seen, 0.99), last, rolled.last!))
        }
        let status = try fleets.map { try $0.stats() }
        say("heartbeats sent \(status.reduce(0) { $0 + $1.heartbeats }), replies \(status.reduce(0) { $0 + $1.replies }), "
            + "refusals \(status.reduce(0) { $0 + $1.refusals })")
        say(String(format: "medians: every agent has the target %.3f s after deploy (goal p99 <= 1 s at >= 10000 agents); bare PUB %.3f s; ratio %.1f",
                   median(reached), median(floor), median(reached) / max(median(floor), 0.000_1)))
        say(String(format: "median deploy -> rollout succeeded on every machine: %.2f s", median(rolled)))
    }

    /// Waits until every agent saw the watched build. - Returns: each one's seconds from the watch's start, sorted.
    private func everyAgentSaw(_ fleets: [FleetProcess]) async throws -> [Double] {
        try await waitFor("every agent to see the watched build", timeout: 60) {
            (try? fleets.reduce(0) { $0 + (try $1.seen()) }) == agents
        }
        return try fleets.flatMap { try $0.values() }.sorted()
    }

    private func deploy(_ client: SlipwayClient, _ digest: String) async throws -> Slipway_V1_DeployReply {
        var request = Slipway_V1_DeployRequest()
        request.service = "bench"
        request.artifactDigest = digest
        request.newService = true
        request.setBy = "bench"
        return try await client.deploy(request)
    }

    /// Tiny deployable artifacts, recorded as the coordinator records them (agents here download nothing).
    private static func recordArtifacts(count: Int, database: String, logger: Logger) throws -> [String] {
        let db = try PGConnection(url: database, logger: logger)
        return try (0..<count).map { index in
            let digest = String(format: "%064x", 0xbe_0000 + index)
            try db.query("""
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, origin_region, deployable_at)
                VALUES ($1, 'bench', 1, 1, $2, 'bench', now())
                """, [.text(digest), .bytes(Array(repeating: 0, count: 32))])
            try db.query("INSERT INTO replicas (artifact_digest, region, status) VALUES ($1, 'bench', 'complete')", [.text(digest)])
            return digest
        }
    }

    /// Raises this process's open-file limit (the region inherits it) to `wanted`.
    private func raiseDescriptorLimit(to wanted: rlim_t) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_max = max(limit.rlim_max, wanted)
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw ValidationError("""
                \(agents) agents need \(wanted) open files in the region (two connections each); the hard limit here is lower \
                and cannot be raised (errno \(errno), CAP_SYS_RESOURCE); use fewer agents
                """)
        }
    }

    private func percentile(_ sorted: [Double], _ share: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * share))]
    }

    private func waitFor(_ what: String, timeout: Double, _ condition: () async -> Bool) async throws {
        let start = ContinuousClock.now
        while await !condition() {
            guard elapsed(since: start) < timeout else { throw ValidationError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A bare PUB on a thread of its own (a socket stays on the thread that made it).
final class BaselinePublisher: @unchecked Sendable {
    // @unchecked: `socket` is touched only on `thread`.
    private let thread = OwnedThread(name: "baseline-pub")
    private var socket: ZMQSocket?

    init(endpoint: String) async throws {
        try await thread.run {
            let socket = try ZMQSocket(context: try ZMQContext(), type: .pub)
            try socket.set(.sendHighWaterMark(0))
            try socket.bind(endpoint)
            self.socket = socket
        }
    }

    /// Publishes `change` under the topic agents subscribe to.
    func send(_ change: Slipway_V1_TargetChange) async throws {
        try await thread.run {
            _ = try self.socket?.send(WireCodec().encode(WireMessage(change, sender: "bench", topic: "target.\(change.service)")), wait: .never)
        }
    }

    func close() {
        Task { try? await thread.run { self.socket?.close() } }
        thread.shutdown()
    }
}
