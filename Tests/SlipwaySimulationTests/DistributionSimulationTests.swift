@testable import SlipwaySimulation
import Testing

@Suite struct DistributionSimulationTests {
    func config(agents: Int = 8, mib: Int64 = 32) -> SimulationConfig {
        var config = SimulationConfig()
        config.agentsPerRegion = agents
        config.artifactBytes = mib << 20
        config.pieceBytes = 1 << 20
        return config
    }

    @Test("every agent gets every piece, never sooner than the bound, and the store sends each byte at least once; with and without upload slots",
          arguments: [4, 0])
    func completes(slots: Int) {
        var config = config()
        config.uploadSlots = slots
        config.storeSlots = slots
        let result = DistributionSimulation(config).run()
        #expect(result.incomplete == 0 && result.failedAgents == 0)
        #expect(result.downloadSeconds.count == 8)
        #expect(result.fromSeed + result.fromPeers == 8 * config.pieceCount)
        #expect(result.downloadSeconds.first! >= config.boundSeconds)
        #expect(result.storeEgressBytes >= Double(config.artifactBytes))
        // Peers carry most of it: far less than every agent fetching from the store.
        #expect(result.storeEgressBytes < 2 * Double(config.artifactBytes))
        #expect(result.downloadPercentile(0.99) < 3 * config.boundSeconds)
    }

    @Test("pieces cut by content as workers cut them: a quarter to four times the average, covering the artifact, the same for the same content")
    func cutByContent() {
        var config = config(mib: 24)
        config.cutByContent()
        let lengths = config.pieceLengths
        #expect(lengths.reduce(0, +) == 24 << 20)
        #expect(lengths.dropLast().allSatisfy { (256 << 10...4 << 20).contains($0) })
        #expect(Set(lengths).count > lengths.count / 2, "lengths vary: \(lengths)")
        var again = self.config(mib: 24)
        again.cutByContent()
        #expect(again.pieceLengths == lengths)
        again.cutByContent(content: 2)
        #expect(again.pieceLengths != lengths)
    }

    @Test("with pieces cut by content, and agents failing, everyone left gets every piece")
    func contentDefinedPieces() {
        var config = config()
        config.cutByContent()
        config.failShare = 0.25
        let result = DistributionSimulation(config).run()
        #expect(result.incomplete == 0)
        #expect(result.downloadSeconds.count == 8 - result.failedAgents)
        #expect(result.downloadSeconds.first! >= config.boundSeconds)
    }

    @Test("agents that fail mid-download are given up as slow by their downloaders, who finish from others")
    func failures() {
        var config = config(agents: 12)
        config.failShare = 0.25
        // Without upload slots every downloader asks every peer, so the dead hold the most requests.
        config.uploadSlots = 0
        config.storeSlots = 0
        var slowRequests = 0
        // Whether a dead peer holds a request when it dies is chance (0-18 per seed measured): three seeds.
        for seed: UInt64 in 1...3 {
            config.seed = seed
            let result = DistributionSimulation(config).run()
            #expect(result.failedAgents == 3)
            #expect(result.incomplete == 0 && result.downloadSeconds.count == 9)
            // Requests held by dead peers are given up as slow and asked elsewhere, long before the 30 s timeout.
            #expect(result.timeouts == 0)
            #expect(result.downloadPercentile(0.99) < config.boundSeconds + 15)
            slowRequests += result.slowRequests
        }
        #expect(slowRequests > 0)
    }

    @Test("with both upload slots (the default) agents that fail mid-download hold nobody up to the timeout either")
    func failuresWithSlots() {
        var config = config(agents: 12)
        config.failShare = 0.25
        let result = DistributionSimulation(config).run()
        #expect(result.failedAgents == 3)
        #expect(result.incomplete == 0 && result.downloadSeconds.count == 9 && result.timeouts == 0)
        #expect(result.downloadPercentile(0.99) < config.boundSeconds + 15)
    }

    @Test("with upload slots the agents' real UploadChoker decides, and everyone still finishes")
    func uploadSlots() {
        var config = config()
        config.uploadSlots = 2
        let result = DistributionSimulation(config).run()
        #expect(result.incomplete == 0 && result.downloadSeconds.count == 8)
        #expect(result.downloadSeconds.first! >= config.boundSeconds)
    }

    @Test("with the store's upload slots and the agents', the store keeps sending new pieces: it repeats few, and everyone finishes")
    func storeSlots() {
        var config = config(agents: 16)
        config.storeSlots = 4
        config.uploadSlots = 4
        config.sampleEvery = 0.25
        let result = DistributionSimulation(config).run()
        #expect(result.incomplete == 0 && result.downloadSeconds.count == 16)
        // Until the region holds every piece, the store is never idle once its first slot holders have asked.
        // Before slot holders asked outside their stripes it was, in 1-10 of these samples (seeds 1-8); now in none.
        let idle = result.samples.filter { $0.at >= 0.5 && $0.storeTransfers == 0 && $0.distinctHeld < config.pieceCount }
        #expect(idle.isEmpty, "the store sent nothing at \(idle.map(\.at)) s")
        // Seeds 1-8: 4-6 of 32 pieces sent again, p99 1.63-1.74 x bound. Seed 1 (this run): 4, in every process:
        // before the simulation stopped following hash order it was 4-5 here and 7 on CI's machine.
        #expect(result.storeRepeats <= 6 && result.storeEgressBytes <= 1.2 * Double(config.artifactBytes),
                "\(result.storeRepeats) pieces sent again, \(result.storeEgressBytes / Double(config.artifactBytes)) F")
    }

    @Test("a seed decides a run: the same seed gives the same times and counts, another seed other ones")
    func reproducible() {
        var config = config(agents: 12)
        config.storeSlots = 4
        config.uploadSlots = 4
        config.failShare = 0.25
        let first = DistributionSimulation(config).run(), again = DistributionSimulation(config).run()
        #expect(first.downloadSeconds == again.downloadSeconds)
        #expect(first.storeRepeats == again.storeRepeats && first.slowRequests == again.slowRequests && first.fromPeers == again.fromPeers)
        config.seed += 1
        #expect(DistributionSimulation(config).run().downloadSeconds != first.downloadSeconds)
    }

    @Test("other regions replicate the build through the real ReplicationPlan before it is deployed")
    func regions() {
        var config = config(agents: 4, mib: 16)
        config.regions = 3
        config.interRegionBits = 400e6
        let result = DistributionSimulation(config).run()
        let oneCopy = Double(config.artifactBytes) * 8 / config.interRegionBits
        #expect(result.replicatedAt[0] == 0 && result.replicatedAt[1] >= oneCopy && result.replicatedAt[2] >= oneCopy)
        #expect(result.deployedAt == result.replicatedAt.max()!)
        #expect(result.incomplete == 0 && result.downloadSeconds.count == 12)
    }

    @Test("transfers leaving one host share its upload; each runs at the smaller of its two shares")
    func fluidSharing() {
        var network = FluidNetwork()
        let a = network.addHost(up: 1_000, down: 1_000), b = network.addHost(up: 1_000, down: 1_000), c = network.addHost(up: 1_000, down: 250)
        let first = network.start(from: a, to: b, bytes: 1_000, now: 0)
        #expect(first.completions.map(\.at) == [1])
        let second = network.start(from: a, to: c, bytes: 500, now: 0)
        // a's upload is split in two (500 each); c takes only 250.
        let ends = Dictionary(uniqueKeysWithValues: second.completions.map { ($0.transfer, $0.at) })
        #expect(ends[first.id] == 2 && ends[second.id] == 2)
        let done = network.finish(FluidNetwork.Completion(transfer: first.id, version: 1, at: 1), now: 1)
        #expect(done == nil, "a completion from before a rate change is stale")
    }
}
