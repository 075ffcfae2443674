import ArgumentParser
import Foundation
import SlipwayArtifact

/// One artifact to N agents, each in its own network namespace with its upload
/// capped by `tc` (the store's too), so links, not CPUs, set the pace.
/// Peer-to-peer distribution is compared with the baseline of every agent
/// fetching from the regional store only, in the same run, and with the lower
/// bound F/u (with a seed and N peers all uploading at u, no schedule finishes
/// before the seed has sent every byte once).
///
/// Needs root, `ip` and `tc`; it creates namespaces `sw-st` and `sw-a1`…, a
/// bridge `swbr0` and 10.77.0.0/24 addresses, and removes them on exit.
struct DistributionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distribution",
        abstract: "P2P distribution of one artifact to agents in network namespaces with tc upload caps, vs store-only.")

    @Option(help: "Artifact size in MiB.") var sizeMib = 256
    @Option(help: "Agents, one namespace each.") var agents = 16
    @Option(help: "Upload cap of every namespace (agents and store), in Mbit/s.") var rateMbit = 80
    @Option(help: "Piece size in KiB (the manifest's; workers use 4096).") var pieceKib = 4_096
    @Option(help: "Which distribution to run: p2p, seed (store only) or both.") var mode = "both"
    @Option(help: "Scratch folder (needs about 2 × (agents + 1) × the artifact size).") var directory: String?
    @Option(help: "Keep the region's and agents' logs in this folder.") var logs: String?
    @Flag(help: "Agents log every piece (with --logs: a timeline per agent).") var verbose = false

    func validate() throws {
        guard sizeMib >= 1, (1...200).contains(agents), rateMbit >= 1, (64...65_536).contains(pieceKib) else {
            throw ValidationError("--size-mib and --rate-mbit must be at least 1, --agents 1…200, --piece-kib 64…65536")
        }
        guard ["p2p", "seed", "both"].contains(mode) else { throw ValidationError("--mode is p2p, seed or both") }
    }

    func run() async throws {
        guard getuid() == 0 else { throw ValidationError("needs root (network namespaces and tc)") }
        for tool in ["/usr/sbin/ip", "/usr/sbin/tc"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ValidationError("\(tool) is missing (apt-get install -y iproute2)")
        }
        let binary = try siblingExecutable("slipway")
        let scratch = URL(fileURLWithPath: directory ?? FileManager.default.temporaryDirectory.path)
            .appendingPathComponent("slipway-distribution-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        print("writing a \(sizeMib) MiB random artifact into the regional store…")
        let source = scratch.appendingPathComponent("artifact")
        try writeRandom(to: source, bytes: UInt64(sizeMib) << 20)
        let manifest = try Manifest.build(fileAt: source.path, name: "bench", pieceSize: UInt32(pieceKib) << 10)
        let store = scratch.appendingPathComponent("store")
        try seed(manifest, from: source, into: store)
        try FileManager.default.removeItem(at: source)
        // The region serves this target to its agents; no coordinator is needed.
        let targets = #"{"appliedThrough":0,"targets":{"global":{"bench":{"digest":"\#(manifest.digest)","version":1,"setBy":"bench","setAtUnixMicros":0}},"regional":{}}}"#
        try targets.write(to: store.appendingPathComponent("targets.json"), atomically: true, encoding: .utf8)

        let network = Network(agents: agents, rateMbit: rateMbit)
        defer { network.tearDown() }
        try network.setUp()

        let bytes = Double(UInt64(sizeMib) << 20)
        let bound = bytes * 8 / (Double(rateMbit) * 1e6)
        print(String(format: "%d agents, %d KiB pieces, upload cap %d Mbit/s everywhere: lower bound F/u = %.1f s",
                     agents, pieceKib, rateMbit, bound))
        var results: [String: Outcome] = [:]
        for seedOnly in mode == "both" ? [false, true] : [mode == "seed"] {
            let name = seedOnly ? "store only" : "p2p"
            print("== \(name)")
            let outcome = try await distribute(binary: binary, scratch: scratch, store: store, network: network,
                                               seedOnly: seedOnly, timeout: bound * Double(agents) * 2 + 120)
            let egress = Double(outcome.fromSeed) * Double(manifest.pieceSize) / bytes
            let times = outcome.seconds.sorted()
            print(String(format: "   per agent (s): %@", times.map { String(format: "%.1f", $0) }.joined(separator: " ")))
            print(String(format: "   p50 %.1f s = %.2f × bound, p99 %.1f s = %.2f × bound; store egress %.2f F",
                         percentile(times, 0.5), percentile(times, 0.5) / bound, percentile(times, 0.99),
                         percentile(times, 0.99) / bound, egress))
            results[name] = outcome
        }
        if let p2p = results["p2p"] {
            let p50 = percentile(p2p.seconds.sorted(), 0.5), p99 = percentile(p2p.seconds.sorted(), 0.99)
            let egress = Double(p2p.fromSeed) * Double(manifest.pieceSize) / bytes
            print(String(format: "goals: p50 %.2f × bound (≤ 1.1), p99 %.2f × bound (≤ 1.5), store egress %.2f F (≤ 2)",
                         p50 / bound, p99 / bound, egress))
            if let seed = results["store only"] {
                print(String(format: "ratio store-only p50 / p2p p50 = %.2f", percentile(seed.seconds.sorted(), 0.5) / p50))
            }
        }
    }

    private struct Outcome {
        var seconds: [Double] = []
        var fromSeed = 0
    }

    /// Starts the region in its namespace and every agent in theirs; waits until each has the artifact.
    private func distribute(binary: String, scratch: URL, store: URL, network: Network, seedOnly: Bool,
                            timeout: Double) async throws -> Outcome {
        let run = scratch.appendingPathComponent(seedOnly ? "run-seed" : "run-p2p")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        defer {
            if let logs {
                let kept = URL(fileURLWithPath: logs).appendingPathComponent(run.lastPathComponent)
                try? FileManager.default.createDirectory(at: kept, withIntermediateDirectories: true)
                for name in (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? [] where name.hasSuffix(".log") {
                    try? FileManager.default.copyItem(at: run.appendingPathComponent(name), to: kept.appendingPathComponent(name))
                }
            }
            try? FileManager.default.removeItem(at: run)
        }
        let storeHost = network.address(of: 0)
        let unused = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
        var processes: [Process] = []
        defer {
            for process in processes { process.terminate() }
            for process in processes { process.waitUntilExit() }
        }
        processes.append(try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(0), binary, "region", "--name", "bench",
                                           "--store-dir", store.path, "--store", "tcp://\(storeHost):7710",
                                           "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                                           "--coordinator-intake", unused(), "--coordinator-events", unused(),
                                           "--coordinator-snapshot", unused(), "--log-level", "warning", "--insecure"],
                                          log: run.appendingPathComponent("region.log")))
        usleep(500_000)
        let logs = (1...agents).map { run.appendingPathComponent("agent-\($0).log") }
        for index in 1...agents {
            let host = network.address(of: index)
            var arguments = ["/usr/sbin/ip", "netns", "exec", network.namespace(index), binary, "agent", "--machine-id", "a\(index)",
                             "--region", "bench", "--tracker", "tcp://\(storeHost):7720", "--targets", "tcp://\(storeHost):7721",
                             "--listen", "tcp://\(host):7730", "--root", run.appendingPathComponent("a\(index)").path,
                             "--service", "bench", "--run", "bench=exec sleep 100000", "--heartbeat", "1s", "--insecure"]
            if seedOnly { arguments.append("--seed-only") }
            if verbose { arguments += ["--log-level", "debug"] }
            processes.append(try launchLogged(arguments, log: logs[index - 1]))
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        var outcome = Outcome()
        while true {
            let lines = logs.compactMap { log in
                ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").last { $0.contains("download complete") }
            }
            if lines.count == agents {
                let timeouts = logs.map { ((try? String(contentsOf: $0, encoding: .utf8)) ?? "").components(separatedBy: "piece request timed out").count - 1 }
                if timeouts.contains(where: { $0 > 0 }) { print("   piece requests timed out (per agent): \(timeouts)") }
                for line in lines {
                    outcome.seconds.append(Double(field("seconds", in: line)) ?? .nan)
                    outcome.fromSeed += Int(field("from_seed", in: line)) ?? 0
                }
                return outcome
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
