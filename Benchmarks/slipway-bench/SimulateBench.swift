import ArgumentParser
import Foundation
import SlipwayCore
import SlipwaySimulation

/// Distribution of one artifact to a whole fleet, simulated in virtual time
/// with the agents' real piece picker and upload slots and the regions' real
/// tracker and replication plan, against the bound no schedule can beat: the
/// store sending every byte once (F/u).
struct SimulateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulated distribution to many machines in many regions, against F/u.")

    @Option(help: "Regions (the build lands in the first; the others replicate it before the deploy).") var regions = 1
    @Option(help: "Agents per region.") var agents = 16
    @Option(help: "Artifact size, MiB.") var sizeMib = 256
    @Option(help: "Piece size, KiB (workers cut pieces of 1 MiB on average).") var pieceKib = 1_024
    @Flag(help: "Cut pieces by content as workers do (lengths from a quarter to four times --piece-kib), not in equal pieces.") var byContent = false
    @Option(help: "Every machine's upload cap (the store's too), Mbit/s.") var rateMbit: Double = 80
    @Option(help: "Every machine's download cap, Mbit/s.") var downMbit: Double = 10_000
    @Option(help: "Each region's link to the others, Mbit/s.") var regionMbit: Double = 10_000
    @Option(help: "One-way delay inside a region, ms.") var latencyMs = 0.2
    @Option(help: "One-way delay between regions, ms.") var regionLatencyMs: Double = 40
    @Option(help: "Agents' --upload-slots (0: off; the agent's default is \(UploadSlotDefaults.agent)).") var uploadSlots = UploadSlotDefaults.agent
    @Option(help: "The regional store's --store-upload-slots (0: off, every agent that asks is sent to at once; the region's default is \(UploadSlotDefaults.store)).") var storeSlots = UploadSlotDefaults.store
    @Option(help: "Share of agents that fail for good during the download.") var failShare = 0.0
    @Option(help: "An agent's piece verification and write rate, MB/s.") var verifyMbps: Double = 1_200
    @Option(help: "Cores a region's agents share (0: one machine each, CPU not modelled); the distribution benchmark's agents share 2.") var sharedCores = 0.0
    @Option(help: "With --shared-cores: an agent's CPU time per byte it receives, ns (the distribution benchmark prints it).") var cpuNsPerByte = 0.0
    @Option(help: "Seconds over which the target reaches the agents.") var targetSpread = 0.05
    @Option(help: "Random seeds: one run each.") var seeds = "1"
    @Option(help: "Print the first region's state every this many virtual seconds from the deploy (0: never).") var sampleEvery = 0.0

    func validate() throws {
        guard (1...100).contains(regions), (1...100_000).contains(agents), sizeMib >= 1, pieceKib >= 16, rateMbit > 0, downMbit > 0,
              regionMbit > 0, latencyMs >= 0, regionLatencyMs >= 0, (0...64).contains(uploadSlots), storeSlots >= 0, (0..<1).contains(failShare),
              verifyMbps > 0, targetSpread >= 0, sampleEvery >= 0, sharedCores >= 0, cpuNsPerByte >= 0 else {
            throw ValidationError("--regions 1…100, --agents 1…100000, --size-mib ≥ 1, --piece-kib ≥ 16, rates > 0, delays ≥ 0, --upload-slots 0…64, --fail-share in [0, 1), --shared-cores and --cpu-ns-per-byte ≥ 0")
        }
        guard !seedList.isEmpty else { throw ValidationError("--seeds: comma-separated unsigned integers") }
    }

    private var seedList: [UInt64] { seeds.split(separator: ",").compactMap { UInt64($0) } }

    func run() throws {
        var config = SimulationConfig()
        config.regions = regions
        config.agentsPerRegion = agents
        config.artifactBytes = Int64(sizeMib) << 20
        config.pieceBytes = pieceKib << 10
        config.hostUpBits = rateMbit * 1e6
        config.storeUpBits = rateMbit * 1e6
        config.hostDownBits = downMbit * 1e6
        config.interRegionBits = regionMbit * 1e6
        config.latency = latencyMs / 1_000
        config.interRegionLatency = regionLatencyMs / 1_000
        config.uploadSlots = uploadSlots
        config.storeSlots = storeSlots
        config.failShare = failShare
        config.verifyBytesPerSecond = verifyMbps * 1e6
        config.targetSpread = targetSpread
        config.sharedCores = sharedCores
        config.cpuSecondsPerByte = cpuNsPerByte / 1e9
        config.sampleEvery = sampleEvery
        if byContent { config.cutByContent() }
        let bound = config.boundSeconds
        say(String(format: "%d region(s) × %d agents, %d MiB in %d pieces%@, %.0f Mbit/s up per machine, bound F/u = %.1f s%@",
                   regions, agents, sizeMib, config.pieceCount, byContent ? " cut by content" : "", rateMbit, bound, uploadSlots > 0 ? ", \(uploadSlots) upload slots" : "")
            + (storeSlots > 0 ? ", \(storeSlots) store upload slots" : "")
            + (sharedCores > 0 ? String(format: ", agents sharing %.1f cores at %.1f ns per byte received", sharedCores, cpuNsPerByte) : ""))
        for seed in seedList {
            config.seed = seed
            let start = ContinuousClock.now
            let result = DistributionSimulation(config).run()
            let wall = elapsed(since: start)
            let window = result.lastCompleteAfterDeploy
            let linkSeconds = Double(regions * (agents + 1)) * rateMbit * 1e6 / 8 * window
            let size = Double(config.artifactBytes)
            say(String(format: "seed %llu: download p50 / p99 / last × bound = %.2f / %.2f / %.2f; store egress %.2f F per region (%d pieces sent again); uplink use %.0f %%; pieces from store %d, from peers %d; slow requests %d, timeouts %d; failed %d, incomplete %d",
                       seed, result.downloadPercentile(0.5) / bound, result.downloadPercentile(0.99) / bound, (result.downloadSeconds.last ?? .nan) / bound,
                       result.storeEgressBytes / size / Double(regions), result.storeRepeats, linkSeconds > 0 ? 100 * result.agentBytesSent / linkSeconds : 0,
                       result.fromSeed, result.fromPeers, result.slowRequests, result.timeouts, result.failedAgents, result.incomplete))
            if regions > 1 {
                say(String(format: "  replicated to every region after %.1f s (slowest region; one copy at the region link: %.1f s); every live machine holds it %.1f s after the build landed",
                           result.deployedAt, size * 8 / (regionMbit * 1e6), result.deployedAt + window))
            }
            printSamples(result.samples, pieceCount: config.pieceCount)
            say(String(format: "  %d events, %.1f s of wall time (%.1f virtual s per wall s)", result.events, wall, (result.deployedAt + window) / max(wall, 1e-9)))
        }
    }

    private func printSamples(_ samples: [SimulationResult.Sample], pieceCount: Int) {
        guard !samples.isEmpty else { return }
        say("  t (s)  started  uploading  agent sends  store sends  held (mean %)  distinct %  complete  requests (store)  idle downloaders")
        for sample in samples {
            let held = sample.started > 0 ? 100 * Double(sample.piecesHeld) / Double(sample.started * pieceCount) : 0
            say(String(format: "  %5.1f  %7d  %9d  %11d  %11d  %13.0f  %10.0f  %8d  %9d (%d)  %16d",
                       sample.at, sample.started, sample.uploading, sample.agentTransfers, sample.storeTransfers, held,
                       100 * Double(sample.distinctHeld) / Double(pieceCount), sample.complete, sample.requests, sample.storeRequests,
                       sample.idleDownloaders))
        }
    }
}
