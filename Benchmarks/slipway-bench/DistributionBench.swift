import ArgumentParser
import Foundation
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto

/// One artifact to N agents, each in its own network namespace with its upload
/// capped by `tc` (the store's too), so links, not CPUs, set the pace.
/// Peer-to-peer distribution is compared, in the same run, with a stock
/// BitTorrent swarm over the same namespaces, caps and file (``BitTorrentSwarm``),
/// optionally with every agent fetching from the regional store only or with
/// CURVE on every socket (keys, trust folder and a signed target; in mode
/// `vouched` the agents' own trust folder is empty and they admit each other
/// on the tracker's word, as production runs them; the other Slipway modes run
/// `--insecure`), and with
/// the lower bound F/u (with a seed and N peers all uploading at u, no schedule
/// finishes before the seed has sent every byte once).
///
/// Needs root, `ip` and `tc` (and aria2c, opentracker and mktorrent for the
/// baseline); it creates namespaces `sw-st` and `sw-a1`…, a bridge `swbr0` and
/// 10.77.0.0/24 addresses, and removes them on exit.
struct DistributionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distribution",
        abstract: "P2P distribution of one artifact to agents in network namespaces with tc upload caps, vs store-only.")

    @Option(help: "Artifact size in MiB.") var sizeMib = 256
    @Option(help: "Agents, one namespace each.") var agents = 16
    @Option(help: "Upload cap of every namespace (agents and store), in Mbit/s.") var rateMbit = 80
    @Option(help: "How each uplink is shared among its connections: per-peer (a queue per destination, as a flow-fair qdisc shares it) or drop-tail (one tbf queue).") var egress: EgressQueue = .perPeer
    @Option(help: "Fixed piece size in KiB; 0: cut by content as workers cut (1 MiB average, a quarter to four times that).") var pieceKib = 0
    @Option(help: "What to run, comma-separated: p2p (Slipway), curve (p2p with CURVE on every socket, the agents admitting the keys of the region's trust folder), vouched (curve, each agent's own trust folder empty: peers admitted on the tracker's word), bittorrent (aria2c and opentracker), seed (Slipway, store only).")
    var mode = "p2p,bittorrent"
    @Option(help: "Piece size of the BitTorrent baseline in KiB (its best here: 256).") var btPieceKib = 256
    @Option(help: "Scratch folder (needs about 2 × (agents + 2) × the artifact size).") var directory: String?
    @Option(help: "Keep the region's and agents' logs in this folder.") var logs: String?
    @Flag(help: "Agents log every piece and store request, the store every agent request, slot and piece sent (with --logs: a timeline per agent and one of the store).") var verbose = false
    @Option(help: "Peers each agent uploads to at once (--upload-slots; 0: every asker at once; unset: the agent's default).") var uploadSlots: Int?
    @Option(help: "Agents the store sends to at once (the region's --store-upload-slots; 0: every asker at once; unset: its default).") var storeSlots: Int?

    private var modes: [String] { mode.split(separator: ",").map { String($0) } }

    func validate() throws {
        guard sizeMib >= 1, (1...200).contains(agents), rateMbit >= 1, pieceKib == 0 || (64...65_536).contains(pieceKib), (16...65_536).contains(btPieceKib) else {
            throw ValidationError("--size-mib and --rate-mbit must be at least 1, --agents 1…200, --piece-kib 0 or 64…65536, --bt-piece-kib 16…65536")
        }
        guard (0...64).contains(uploadSlots ?? 0) else { throw ValidationError("--upload-slots is 0 (none) or 1…64") }
        guard (0...64).contains(storeSlots ?? 0) else { throw ValidationError("--store-slots is 0 (none) or 1…64") }
        guard !modes.isEmpty, modes.allSatisfy(["p2p", "curve", "vouched", "seed", "bittorrent"].contains) else {
            throw ValidationError("--mode is a comma-separated list of p2p, curve, vouched, seed and bittorrent")
        }
        guard btPieceKib.nonzeroBitCount == 1 else { throw ValidationError("--bt-piece-kib must be a power of two") }
    }

    func run() async throws {
        guard getuid() == 0 else { throw ValidationError("needs root (network namespaces and tc)") }
        var tools = ["/usr/sbin/ip", "/usr/sbin/tc"]
        if modes.contains("bittorrent") { tools += BitTorrentSwarm.tools }
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ValidationError("\(tool) is missing (apt-get install -y iproute2 aria2 opentracker mktorrent)")
        }
        let binary = try siblingExecutable("slipway")
        let scratch = URL(fileURLWithPath: directory ?? FileManager.default.temporaryDirectory.path)
            .appendingPathComponent("slipway-distribution-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        say("writing a \(sizeMib) MiB random artifact into the regional store…")
        let source = scratch.appendingPathComponent("artifact")
        try writeRandom(to: source, bytes: UInt64(sizeMib) << 20)
        let manifest = try Manifest.build(fileAt: source.path, name: "bench",
                                          cutting: pieceKib == 0 ? .standard : .fixed(UInt32(pieceKib) << 10))
        let store = scratch.appendingPathComponent("store")
        try seed(manifest, from: source, into: store)
        // The region serves this target to its agents; no coordinator is needed. Signed, for agents with keys.
        let keys = try BenchKeys(in: scratch.appendingPathComponent("keys"), agents: agents)
        try keys.writeSignedTarget(digest: manifest.digest, into: store)

        let network = Network(agents: agents, rateMbit: rateMbit, egress: egress)
        defer { network.tearDown() }
        try network.setUp()

        let bytes = Double(UInt64(sizeMib) << 20)
        let bound = bytes * 8 / (Double(rateMbit) * 1e6)
        say(String(format: "%d agents, upload cap %d Mbit/s everywhere (%@ queue): lower bound F/u = %.1f s", agents, rateMbit, egress.rawValue, bound))
        // The cap counts whole Ethernet frames; a full TCP segment at MTU 1500 with
        // timestamps carries 1448 of its 1514 bytes (measured through this queue:
        // 19.15 Mbit/s of payload at 20). No schedule sends F from the origin sooner.
        let framing = 1514.0 / 1448.0
        say(String(format: "   the origin alone sends F in %.1f s at best (%.3f × bound): TCP carries 1448 of every 1514 bytes the cap counts", bound * framing, framing))
        let timeout = bound * Double(agents) * 2 + 120
        var results: [String: SwarmOutcome] = [:]
        for name in modes {
            let outcome: SwarmOutcome
            if name == "bittorrent" {
                say("== bittorrent (aria2c, \(btPieceKib) KiB pieces, opentracker)")
                let run = scratch.appendingPathComponent("run-bittorrent")
                try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
                defer { keepLogs(of: run) }
                outcome = try await BitTorrentSwarm(network: network, pieceKib: btPieceKib).distribute(file: source, run: run, timeout: timeout)
            } else {
                let title = ["seed": "store only", "p2p": "p2p", "curve": "p2p, CURVE on every socket",
                             "vouched": "p2p, CURVE on every socket, peers admitted on the tracker's word"][name]!
                say("== \(title) (Slipway, \(manifest.pieceSha256.count) pieces, \(pieceKib == 0 ? "cut by content" : "\(pieceKib) KiB"))")
                outcome = try await distribute(binary: binary, scratch: scratch, store: store, network: network,
                                               mode: name, keys: keys, timeout: timeout)
            }
            report(outcome, bytes: bytes, bound: bound)
            results[name] = outcome
        }
        if let curve = results["curve"], let vouched = results["vouched"] {
            say(String(format: "ratio vouched / curve: p50 %.2f, p99 %.2f, downloaders' CPU %.2f",
                       percentile(vouched.seconds.sorted(), 0.5) / percentile(curve.seconds.sorted(), 0.5),
                       percentile(vouched.seconds.sorted(), 0.99) / percentile(curve.seconds.sorted(), 0.99), vouched.cpuSeconds / curve.cpuSeconds))
        }
        guard let p2p = results["p2p"] else { return }
        let p50 = percentile(p2p.seconds.sorted(), 0.5), p99 = percentile(p2p.seconds.sorted(), 0.99)
        say(String(format: "goals: p50 %.2f × bound (≤ 1.1), p99 %.2f × bound (≤ 1.2), origin egress %.2f F (≤ 1.1), uplink use %.0f %% (≥ 85)",
                     p50 / bound, p99 / bound, Double(p2p.sent[0]) / bytes, uplinkUse(p2p) * 100))
        if let torrent = results["bittorrent"] {
            say(String(format: "vs bittorrent: p99 %.0f %% sooner (≥ 15), p50 ratio %.2f, downloaders' CPU ratio %.2f (≤ 1)",
                         (1 - p99 / percentile(torrent.seconds.sorted(), 0.99)) * 100, p50 / percentile(torrent.seconds.sorted(), 0.5),
                         p2p.cpuSeconds / torrent.cpuSeconds))
        }
        if let seed = results["seed"] {
            say(String(format: "ratio store-only p50 / p2p p50 = %.2f", percentile(seed.seconds.sorted(), 0.5) / p50))
        }
        if let curve = results["curve"] {
            say(String(format: "ratio CURVE / plain: p50 %.2f, p99 %.2f, downloaders' CPU %.2f",
                       percentile(curve.seconds.sorted(), 0.5) / p50, percentile(curve.seconds.sorted(), 0.99) / p99, curve.cpuSeconds / p2p.cpuSeconds))
        }
    }

    private func report(_ outcome: SwarmOutcome, bytes: Double, bound: Double) {
        let times = outcome.seconds.sorted()
        say(String(format: "   per downloader (s): %@", times.map { String(format: "%.1f", $0) }.joined(separator: " ")))
        say(String(format: "   p50 %.1f s = %.2f × bound, p99 %.1f s = %.2f × bound; origin egress %.2f F; uplink use %.0f %%; downloaders' CPU %.1f s (%.0f %% of a core, %.0f %% in the kernel, %.1f ns per byte received)",
                     percentile(times, 0.5), percentile(times, 0.5) / bound, percentile(times, 0.99), percentile(times, 0.99) / bound,
                     Double(outcome.sent[0]) / bytes, uplinkUse(outcome) * 100, outcome.cpuSeconds, outcome.cpuSeconds / outcome.window * 100, outcome.cpu.system / outcome.cpuSeconds * 100,
                     outcome.cpuSeconds / (bytes * Double(times.count)) * 1e9))
    }

    /// What every machine sent until the last downloader finished, over what their links could have carried meanwhile.
    private func uplinkUse(_ outcome: SwarmOutcome) -> Double {
        Double(outcome.sent.reduce(0, +)) / (Double(agents + 1) * Double(rateMbit) * 1e6 / 8 * outcome.window)
    }

    private func keepLogs(of run: URL) {
        defer { try? FileManager.default.removeItem(at: run) }
        guard let logs else { return }
        let kept = URL(fileURLWithPath: logs).appendingPathComponent(run.lastPathComponent)
        try? FileManager.default.createDirectory(at: kept, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? [] where name.hasSuffix(".log") {
            try? FileManager.default.copyItem(at: run.appendingPathComponent(name), to: kept.appendingPathComponent(name))
        }
    }

    /// Starts the region in its namespace and every agent in theirs; waits until each has the artifact.
    private func distribute(binary: String, scratch: URL, store: URL, network: Network, mode: String, keys: BenchKeys,
                            timeout: Double) async throws -> SwarmOutcome {
        let run = scratch.appendingPathComponent("run-\(mode)")
        let curve = mode == "curve" || mode == "vouched"
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        defer { keepLogs(of: run) }
        let storeHost = network.address(of: 0)
        let unused = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
        var processes: [Process] = []
        defer { stopAll(processes, grace: 20) }
        var region = ["/usr/sbin/ip", "netns", "exec", network.namespace(0), binary, "region", "--name", "bench",
                      "--store-dir", store.path, "--store", "tcp://\(storeHost):7710",
                      "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                      "--coordinator-intake", unused(), "--coordinator-events", unused(),
                      "--coordinator-snapshot", unused(), "--log-level", verbose ? "debug" : "warning"] + (curve ? keys.regionFlags : ["--insecure"])
        // The store-only baseline is every agent fetching from the store at once, as before slots.
        if let storeSlots = storeSlots ?? (mode == "seed" ? 0 : nil) { region += ["--store-upload-slots", "\(storeSlots)"] }
        processes.append(try launchLogged(region, log: run.appendingPathComponent("region.log")))
        usleep(500_000)
        let logs = (1...agents).map { run.appendingPathComponent("agent-\($0).log") }
        for index in 1...agents {
            let host = network.address(of: index)
            var arguments = ["/usr/sbin/ip", "netns", "exec", network.namespace(index), binary, "agent", "--machine-id", "a\(index)",
                             "--region", "bench", "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                             "--listen", "tcp://\(host):7730", "--root", run.appendingPathComponent("a\(index)").path,
                             "--service", "bench", "--run", "bench=exec sleep 100000", "--heartbeat", "1s"]
                + (curve ? keys.agentFlags(index, vouched: mode == "vouched") : ["--insecure"])
            if mode == "seed" { arguments.append("--seed-only") }
            if let uploadSlots { arguments += ["--upload-slots", "\(uploadSlots)"] }
            if verbose { arguments += ["--log-level", "debug"] }
            processes.append(try launchLogged(arguments, log: logs[index - 1]))
        }
        let before = network.sentBytes()
        let startedAt = ContinuousClock.now
        let deadline = startedAt + .seconds(timeout)
        while true {
            let lines = logs.compactMap { log in
                ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").last { $0.contains("download complete") }
            }
            if lines.count == agents {
                let timeouts = logs.map { ((try? String(contentsOf: $0, encoding: .utf8)) ?? "").components(separatedBy: "piece request timed out").count - 1 }
                if timeouts.contains(where: { $0 > 0 }) { say("   piece requests timed out (per agent): \(timeouts)") }
                let agentProcesses = processes.dropFirst()
                return SwarmOutcome(seconds: lines.map { Double(field("seconds", in: $0)) ?? .nan },
                                    sent: zip(network.sentBytes(), before).map { $0 - $1 }, window: elapsed(since: startedAt),
                                    cpu: cpuSeconds(of: agentProcesses))
            }
            guard ContinuousClock.now < deadline else { throw ValidationError("only \(lines.count) of \(agents) agents finished; logs in \(run.path)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    private func field(_ name: String, in line: Substring) -> String {
        guard let range = line.range(of: " \(name)=") else { return "" }
        return String(line[range.upperBound...].prefix { $0 != " " })
    }

    private func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }
}
