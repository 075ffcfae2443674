import ArgumentParser
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayRegion
import SlipwayRegionStore
import SlipwayThreads
import SlipwayWire

/// Region-to-region replication of one large artifact over loopback vs the two
/// things it has to do anyway: move the bytes over TCP (`socat` to a file) and
/// hash them (`sha256sum`), each on the same file in the same run.
struct ReplicationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication",
        abstract: "Piece transfer + SHA-256 verification between two region stores vs socat and sha256sum.")

    @Option(help: "Artifact size in MiB.") var sizeMib = 1_024
    @Option(help: "Rounds of each side, alternating; medians are compared.") var rounds = 3
    @Option(help: "Pieces in flight.") var window = 16
    @Option(help: "Scratch folder (needs about 4x the artifact size).") var directory: String?

    func validate() throws {
        guard sizeMib >= 1, rounds >= 1, (1...256).contains(window) else {
            throw ValidationError("--size-mib and --rounds must be at least 1, --window 1…256")
        }
    }

    func run() async throws {
        for tool in ["/usr/bin/socat", "/usr/bin/sha256sum"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ValidationError("\(tool) is missing; install it (apt-get install -y socat coreutils)")
        }
        let scratch = URL(fileURLWithPath: directory ?? FileManager.default.temporaryDirectory.path)
            .appendingPathComponent("slipway-replication-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let bytes = UInt64(sizeMib) << 20
        let source = scratch.appendingPathComponent("artifact")
        print("writing a \(sizeMib) MiB random artifact and seeding region a's store…")
        try writeRandom(to: source, bytes: bytes)
        let manifest = try Manifest.build(fileAt: source.path, name: "bench")
        try seed(manifest, from: source, into: scratch.appendingPathComponent("store-a"))

        let endpoint = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let region = try startStoreRegion(store: scratch.appendingPathComponent("store-a"), endpoint: endpoint)
        defer { region.terminate(); region.waitUntilExit() }

        var ours: [Double] = [], socat: [Double] = [], hashing: [Double] = []
        for round in 1...rounds {
            let destination = scratch.appendingPathComponent("store-b")
            try? FileManager.default.removeItem(at: destination)
            let copy = try await replicate(manifest, from: endpoint, into: destination, window: window).seconds
            try FileManager.default.removeItem(at: destination)
            let tcp = try socatCopy(source, to: scratch.appendingPathComponent("socat-out"))
            let hash = try sha256sum(source, expecting: manifest.digest)
            ours.append(copy); socat.append(tcp); hashing.append(hash)
            print(String(format: "round %d: replication %.2f s, socat %.2f s, sha256sum %.2f s", round, copy, tcp, hash))
        }
        let mib = Double(sizeMib)
        let (replication, tcp, hash) = (median(ours), median(socat), median(hashing))
        let slower = max(tcp, hash), faster = min(tcp, hash)
        print(String(format: "%d MiB, %d pieces cut by content, window %d: replication %.0f MiB/s, socat %.0f MiB/s, sha256sum %.0f MiB/s",
                     sizeMib, manifest.pieceSha256.count, window, mib / replication, mib / tcp, mib / hash))
        print(String(format: "ratio replication / slower baseline (%@) = %.2f (goal >= 0.7)", tcp > hash ? "socat" : "sha256sum", slower / replication))
        print(String(format: "ratio replication / faster baseline (%@) = %.2f", tcp > hash ? "sha256sum" : "socat", faster / replication))
    }

    private func socatCopy(_ file: URL, to destination: URL) throws -> Double {
        try? FileManager.default.removeItem(at: destination)
        let port = freeLoopbackPort()
        let receiver = try launch("/usr/bin/socat", ["-u", "TCP-LISTEN:\(port),bind=127.0.0.1,reuseaddr", "CREATE:\(destination.path)"])
        usleep(200_000)
        let start = ContinuousClock.now
        let sender = try launch("/usr/bin/socat", ["-u", "FILE:\(file.path)", "TCP:127.0.0.1:\(port)"])
        sender.waitUntilExit()
        receiver.waitUntilExit()
        let seconds = elapsed(since: start)
        let size = (try FileManager.default.attributesOfItem(atPath: destination.path)[.size] as? NSNumber)?.uint64Value
        guard sender.terminationStatus == 0, receiver.terminationStatus == 0, size == UInt64(sizeMib) << 20 else {
            throw ValidationError("socat copy failed")
        }
        try FileManager.default.removeItem(at: destination)
        return seconds
    }

    private func sha256sum(_ file: URL, expecting digest: String) throws -> Double {
        let output = Pipe()
        let start = ContinuousClock.now
        let process = try launch("/usr/bin/sha256sum", [file.path], output: output)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let seconds = elapsed(since: start)
        guard text.hasPrefix(digest) else { throw ValidationError("sha256sum disagrees with the manifest: \(text)") }
        return seconds
    }
}

