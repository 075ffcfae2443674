import ArgumentParser
import Foundation
import SlipwayArtifact
import SlipwayProto

/// What it costs to ship a new build to a store that holds the one before, against
/// shipping it whole, in the same run: per cutting (fixed 4 MiB pieces, the old
/// way, and pieces cut by content at several averages) the bytes that must move,
/// then a real replication of the new build between two region stores, into an
/// empty store and into one holding the earlier build.
struct DeltaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta",
        abstract: "Bytes and time to ship a new build next to the one before, vs shipping it whole.")

    @Option(help: "The earlier build (a file).") var old: String
    @Option(help: "The new build (a file).") var new: String
    @Option(help: "Average piece sizes to compare, in KiB, comma-separated (pieces cut by content).") var averagesKib = "64,256,1024,4096"
    @Option(help: "Rounds of each replication, alternating; medians are compared.") var rounds = 3
    @Option(help: "Pieces in flight.") var window = 16
    @Option(help: "Cap on the replication's rate in MiB/s, as a link between regions would cap it (0: none, loopback).") var maxMibps = 0
    @Option(help: "Scratch folder (needs about 4x the builds' size).") var directory: String?

    func validate() throws {
        for file in [old, new] where !FileManager.default.isReadableFile(atPath: file) {
            throw ValidationError("cannot read \(file)")
        }
        guard rounds >= 1, (1...256).contains(window), maxMibps >= 0 else {
            throw ValidationError("--rounds must be at least 1, --window 1…256, --max-mibps at least 0")
        }
        guard let averages = try? averages(), !averages.isEmpty else {
            throw ValidationError("--averages-kib takes sizes from 4 to 4096, e.g. 64,1024")
        }
    }

    private func averages() throws -> [Int] {
        try averagesKib.split(separator: ",").map { text in
            guard let kib = Int(text.trimmingCharacters(in: .whitespaces)), (4...4_096).contains(kib) else { throw ValidationError("bad size") }
            return kib
        }
    }

    func run() async throws {
        let oldFile = URL(fileURLWithPath: old), newFile = URL(fileURLWithPath: new)
        let size = (try FileManager.default.attributesOfItem(atPath: new)[.size] as? NSNumber)?.uint64Value ?? 0
        say(String(format: "new build %.1f MiB, earlier build %.1f MiB", Double(size) / 1_048_576,
                   ((try FileManager.default.attributesOfItem(atPath: old)[.size] as? NSNumber)?.doubleValue ?? 0) / 1_048_576))
        say("cutting                                pieces   to ship      share of the new build   manifest MiB/s")
        let fixed = try compare(oldFile, newFile, cutting: .fixed(Manifest.defaultPieceSize), label: "fixed 4 MiB (before)")
        for kib in try averages() {
            let chunker = ContentChunker(average: kib << 10)
            let label = "by content, \(chunker.average >> 10) KiB average" + (chunker == ContentChunker() ? " (standard)" : "")
            let share = try compare(oldFile, newFile, cutting: .byContent(chunker), label: label)
            if chunker == ContentChunker() {
                say(String(format: "ratio shipped bytes, standard / fixed 4 MiB = %.3f", fixed > 0 ? share / fixed : 0))
            }
        }
        try await replications(oldFile, newFile)
    }

    /// Prints one cutting's row. - Returns: the share of the new build that must move.
    private func compare(_ oldFile: URL, _ newFile: URL, cutting: Manifest.Cutting, label: String) throws -> Double {
        let start = ContinuousClock.now
        let newManifest = try Manifest.build(fileAt: newFile.path, name: "bench", cutting: cutting)
        let seconds = elapsed(since: start)
        let oldManifest = try Manifest.build(fileAt: oldFile.path, name: "bench", cutting: cutting)
        let held = Set(oldManifest.pieceSha256)
        let shipped = newManifest.pieceSha256.indices.filter { !held.contains(newManifest.pieceSha256[$0]) }
        let bytes = shipped.reduce(UInt64(0)) { $0 + UInt64(Manifest.pieceLength(newManifest, index: $1)) }
        let share = newManifest.size == 0 ? 0 : Double(bytes) / Double(newManifest.size)
        say(String(format: "%@ %6d   %7.2f MiB  %6.1f %% (%d pieces)         %6.0f",
                   label.padding(toLength: 38, withPad: " ", startingAt: 0), newManifest.pieceSha256.count, Double(bytes) / 1_048_576, share * 100, shipped.count,
                   Double(newManifest.size) / 1_048_576 / seconds))
        return share
    }

    /// Replicates the new build (standard cutting) from a real region into an empty
    /// store and into one that holds the earlier build, `rounds` times each.
    private func replications(_ oldFile: URL, _ newFile: URL) async throws {
        let scratch = URL(fileURLWithPath: directory ?? FileManager.default.temporaryDirectory.path)
            .appendingPathComponent("slipway-delta-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let oldManifest = try Manifest.build(fileAt: oldFile.path, name: "bench")
        let newManifest = try Manifest.build(fileAt: newFile.path, name: "bench")
        let source = scratch.appendingPathComponent("store-a")
        try seed(oldManifest, from: oldFile, into: source)
        try seed(newManifest, from: newFile, into: source)
        let endpoint = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let region = try startStoreRegion(store: source, endpoint: endpoint)
        defer { stopAll([region]) }
        let destination = scratch.appendingPathComponent("store-b")
        var whole: [Double] = [], delta: [Double] = []
        var reused = ReusedPieces()
        for round in 1...rounds {
            try? FileManager.default.removeItem(at: destination)
            whole.append(try await replicate(newManifest, from: endpoint, into: destination, window: window, maxBytesPerSecond: maxMibps << 20).seconds)
            try FileManager.default.removeItem(at: destination)
            _ = try await replicate(oldManifest, from: endpoint, into: destination, window: window, maxBytesPerSecond: maxMibps << 20)
            let run = try await replicate(newManifest, from: endpoint, into: destination, window: window, maxBytesPerSecond: maxMibps << 20)
            delta.append(run.seconds)
            reused = run.reused
            say(String(format: "round %d: whole %.2f s, next to the earlier build %.2f s (%d of %d pieces linked)",
                       round, whole.last!, run.seconds, run.reused.pieces, newManifest.pieceSha256.count))
        }
        let shipped = newManifest.size - reused.bytes
        say("replication \(maxMibps > 0 ? "capped at \(maxMibps) MiB/s" : "over loopback, uncapped"):")
        say(String(format: "replication of the new build: shipped %.2f of %.2f MiB; ratio shipped / size = %.3f (goal <= 0.10)",
                   Double(shipped) / 1_048_576, Double(newManifest.size) / 1_048_576,
                   newManifest.size == 0 ? 0 : Double(shipped) / Double(newManifest.size)))
        say(String(format: "ratio time next to the earlier build / whole = %.3f (medians %.2f s / %.2f s)",
                   median(delta) / median(whole), median(delta), median(whole)))
    }
}
