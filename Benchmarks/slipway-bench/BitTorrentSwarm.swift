import ArgumentParser
import Foundation

/// The distribution benchmark's baseline: the same file over the same namespaces
/// and caps with a stock BitTorrent swarm (Debian's opentracker and aria2c: one
/// seeder in the store's namespace, one leecher per agent namespace, every
/// leecher seeding on after it finishes, as agents serve after they finish).
struct BitTorrentSwarm {
    let network: Network
    let pieceKib: Int

    static let tools = ["/usr/bin/aria2c", "/usr/bin/opentracker", "/usr/bin/mktorrent"]

    /// Seeds `file` from the store's namespace and waits until every leecher has it (or `timeout`).
    func distribute(file: URL, run: URL, timeout: Double) async throws -> SwarmOutcome {
        let tracker = "http://\(network.address(of: 0)):6969/announce"
        let torrent = run.appendingPathComponent("artifact.torrent")
        let pieceLog2 = Int(log2(Double(pieceKib << 10)))
        try await runToEnd(["/usr/bin/mktorrent", "-a", tracker, "-l", "\(pieceLog2)", "-o", torrent.path, file.path],
                           log: run.appendingPathComponent("mktorrent.log"))
        // Debian's opentracker serves only torrents on its whitelist.
        let whitelist = run.appendingPathComponent("whitelist")
        try (try await infoHash(of: torrent, log: run.appendingPathComponent("info.log")) + "\n").write(to: whitelist, atomically: true, encoding: .utf8)
        // aria2c runs this when a leecher has the whole file verified; it seeds on.
        let hook = run.appendingPathComponent("done.sh")
        try "#!/bin/sh\ndate +%s.%N > \"$3.done\"\n".write(to: hook, atomically: true, encoding: .utf8)
        chmod(hook.path, 0o755)
        let common = ["--seed-ratio=0.0", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--disable-ipv6=true",
                      "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn"]
        var processes: [Process] = []
        defer { stopAll(processes) }
        processes.append(try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(0), "/usr/bin/opentracker",
                                           "-i", network.address(of: 0), "-p", "6969", "-P", "6969", "-d", "/", "-w", whitelist.path],
                                          log: run.appendingPathComponent("opentracker.log")))
        processes.append(try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(0), "/usr/bin/aria2c", "--dir",
                                           file.deletingLastPathComponent().path, "--bt-seed-unverified=true"] + common + [torrent.path],
                                          log: run.appendingPathComponent("seeder.log")))
        try await Task.sleep(for: .seconds(1))
        let before = network.sentBytes()
        let startedAt = ContinuousClock.now
        var started: [Double] = []
        var leechers: [Process] = []
        for index in 1...network.agents {
            let folder = run.appendingPathComponent("l\(index)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            started.append(Date().timeIntervalSince1970)
            let leecher = try launchLogged(["/usr/sbin/ip", "netns", "exec", network.namespace(index), "/usr/bin/aria2c", "--dir", folder.path,
                                            "--on-bt-download-complete=\(hook.path)"] + common + [torrent.path],
                                           log: run.appendingPathComponent("leecher-\(index).log"))
            processes.append(leecher)
            leechers.append(leecher)
        }
        let marks = (1...network.agents).map { run.appendingPathComponent("l\($0)/\(file.lastPathComponent).done") }
        while true {
            let doneTimes = marks.map { mark in
                (try? String(contentsOf: mark, encoding: .utf8)).flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            let finished = doneTimes.compactMap { $0 }
            if finished.count == network.agents {
                let after = network.sentBytes()
                return SwarmOutcome(seconds: zip(finished, started).map { $0 - $1 },
                                    sent: zip(after, before).map { $0 - $1 },
                                    window: elapsed(since: startedAt),
                                    cpu: cpuSeconds(of: leechers))
            }
            guard ContinuousClock.now < startedAt + .seconds(timeout) else {
                throw ValidationError("only \(finished.count) of \(network.agents) BitTorrent leechers finished; logs in \(run.path)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The torrent's info hash in hex, as aria2c shows it.
    private func infoHash(of torrent: URL, log: URL) async throws -> String {
        try await runToEnd(["/usr/bin/aria2c", "--show-files=true", torrent.path], log: log)
        let shown = try String(contentsOf: log, encoding: .utf8)
        guard let line = shown.split(separator: "\n").first(where: { $0.hasPrefix("Info Hash: ") }) else {
            throw ValidationError("aria2c showed no info hash for \(torrent.path)")
        }
        return String(line.dropFirst("Info Hash: ".count))
    }

    private func runToEnd(_ arguments: [String], log: URL) async throws {
        let process = try launchLogged(arguments, log: log)
        while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        guard process.terminationStatus == 0 else { throw ValidationError("\(arguments[0]) failed; see \(log.path)") }
    }
}

/// What one distribution run measured, for Slipway and for the baseline alike.
struct SwarmOutcome {
    /// Per downloader: seconds from its start to the whole file verified.
    var seconds: [Double]
    /// Bytes each namespace sent during the run (index 0 the store or seeder).
    var sent: [UInt64]
    /// Seconds from the start until the last downloader finished.
    var window: Double
    /// CPU seconds the downloaders used together, in user and in kernel mode.
    var cpu: (user: Double, system: Double)

    /// CPU seconds the downloaders used together.
    var cpuSeconds: Double { cpu.user + cpu.system }
}
