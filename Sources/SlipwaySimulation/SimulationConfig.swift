import SlipwayArtifact
import SlipwayCore

/// What a distribution simulation models: the fleet, the artifact, the links.
public struct SimulationConfig: Sendable {
    /// Regions; the first is where the build lands. With more than one, the
    /// artifact is replicated to every region before it is deployed.
    public var regions = 1
    /// Agents in each region.
    public var agentsPerRegion = 16
    /// The artifact's size, bytes.
    public var artifactBytes: Int64 = 256 << 20
    /// Every piece's size, bytes (the last one may be shorter), unless ``pieceLengths`` says otherwise.
    public var pieceBytes = 1 << 20
    /// Each piece's length, when pieces are cut by content (empty: every piece is ``pieceBytes``).
    /// ``cutByContent()`` sets it as the agents' artifacts are cut.
    public var pieceLengths: [Int] = []
    /// Each machine's upload and download cap, bits per second.
    public var hostUpBits: Double = 80e6
    public var hostDownBits: Double = 10e9
    /// The regional store's upload cap towards its agents, bits per second.
    public var storeUpBits: Double = 80e6
    /// Each region's link to the other regions (both ways), bits per second.
    public var interRegionBits: Double = 10e9
    /// One-way delay inside a region and between regions, seconds.
    public var latency = 0.0002
    public var interRegionLatency = 0.04
    /// `--upload-slots` of every agent (0: serve every downloader as it asks), the agent's default.
    public var uploadSlots = UploadSlotDefaults.agent
    /// The regional store's `--store-upload-slots` (0: off, it sends to every
    /// agent that asks at once): it gives N upload slots to the agents that ask,
    /// with the agents' ``UploadChoker`` and `PieceChoke` rules, so a waiting
    /// agent asks afresh when its turn comes.
    public var storeSlots = UploadSlotDefaults.store
    /// Share of agents that fail (stop for good) during the download, at random times.
    public var failShare = 0.0
    /// How fast an agent verifies and writes a piece that arrived (SHA-256 and
    /// a page-cache write), bytes per second; pieces are verified one at a time.
    public var verifyBytesPerSecond: Double = 1.2e9
    /// Cores every agent of a region shares (0: each machine has its own, not
    /// modelled), and the CPU time an agent spends per byte it receives (and
    /// sends on): what bounds the distribution benchmark, whose agents all run
    /// on one machine.
    public var sharedCores = 0.0
    public var cpuSecondsPerByte = 0.0
    /// The target reaches the agents spread evenly over this many seconds.
    public var targetSpread = 0.05
    /// Seeds the random choices (the picker's ties, peer lists, failures).
    public var seed: UInt64 = 1
    /// Take a ``SimulationResult/Sample`` of the first region every this many
    /// virtual seconds from the deploy (0: none).
    public var sampleEvery = 0.0

    public init() {}

    /// Pieces in the artifact.
    public var pieceCount: Int {
        pieceLengths.isEmpty ? Int((artifactBytes + Int64(pieceBytes) - 1) / Int64(pieceBytes)) : pieceLengths.count
    }

    /// No schedule finishes before the store has sent every byte once: F/u.
    public var boundSeconds: Double { Double(artifactBytes) * 8 / min(hostUpBits, storeUpBits) }

    func pieceLength(_ index: Int) -> Double { Double(lengthOfPiece(index)) }

    func lengthOfPiece(_ index: Int) -> Int {
        guard pieceLengths.isEmpty else { return pieceLengths[index] }
        return Int(min(Int64(pieceBytes), artifactBytes - Int64(index) * Int64(pieceBytes)))
    }

    /// Cuts the artifact into pieces as a build's is cut (``ContentChunker``, averaging
    /// ``pieceBytes``), its content random bytes from `content` (the distribution
    /// benchmark's artifact is random): lengths from a quarter to four times the average.
    public mutating func cutByContent(content: UInt64 = 1) {
        let chunker = ContentChunker(average: pieceBytes)
        var generator = SplitMix64(seed: content)
        var buffer: [UInt8] = []
        var generated: Int64 = 0
        var lengths: [Int] = []
        var start = 0
        while true {
            let atEnd = generated == artifactBytes
            let cut = buffer.withUnsafeBytes { chunker.cut(UnsafeRawBufferPointer(rebasing: $0[start...]), atEnd: atEnd) }
            if let cut, cut > 0 {
                lengths.append(cut)
                start += cut
                continue
            }
            if atEnd { break }
            buffer.removeFirst(start)
            start = 0
            let more = Int(min(Int64(chunker.maximum * 4), artifactBytes - generated))
            var word: UInt64 = 0
            for index in 0..<more {
                if index % 8 == 0 { word = generator.next() }
                buffer.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(index % 8))))
            }
            generated += Int64(more)
        }
        pieceLengths = lengths
    }
}

/// What a simulation measured, in virtual seconds.
public struct SimulationResult: Sendable {
    /// Per region, when the artifact was whole in its store (0 for the first).
    public var replicatedAt: [Double] = []
    /// When the deploy began (every region held the artifact).
    public var deployedAt = 0.0
    /// Per agent that did not fail, from the target reaching it to the artifact complete.
    public var downloadSeconds: [Double] = []
    /// When the last live agent completed, from the deploy.
    public var lastCompleteAfterDeploy = 0.0
    /// Agents that failed on purpose, and live agents that never completed.
    public var failedAgents = 0, incomplete = 0
    /// Bytes the regional stores sent to agents, in all.
    public var storeEgressBytes = 0.0
    /// Pieces a regional store sent that it had sent before, in all regions.
    public var storeRepeats = 0
    /// Bytes every agent and store sent to agents, in all.
    public var agentBytesSent = 0.0
    /// Pieces from the store and from peers; requests that timed out, and requests
    /// given up as slow (their pieces asked elsewhere).
    public var fromSeed = 0, fromPeers = 0, timeouts = 0, slowRequests = 0
    /// Events processed.
    public var events = 0
    /// The first region's state over time (``SimulationConfig/sampleEvery``).
    public var samples: [Sample] = []

    /// The first region at one instant: where its links' time goes.
    public struct Sample: Sendable {
        /// Virtual seconds since the deploy.
        public var at = 0.0
        /// Agents sending at least one piece, of those that started.
        public var uploading = 0, started = 0
        /// Pieces being sent by agents, and by the store.
        public var agentTransfers = 0, storeTransfers = 0
        /// Pieces held, summed over the agents; distinct pieces held by at least one agent.
        public var piecesHeld = 0, distinctHeld = 0
        /// Agents complete.
        public var complete = 0
        /// Requests in flight, summed over the downloading agents, and how many of them are to the store.
        public var requests = 0, storeRequests = 0
        /// Downloading agents with no request in flight.
        public var idleDownloaders = 0
    }
}

extension SimulationResult {
    /// The nearest-rank percentile of the download times (`share` 0.5: p50), as
    /// the distribution benchmark computes it from real agents.
    public func downloadPercentile(_ share: Double) -> Double {
        guard !downloadSeconds.isEmpty else { return .nan }
        return downloadSeconds[min(downloadSeconds.count - 1, max(0, Int((Double(downloadSeconds.count) * share).rounded(.up)) - 1))]
    }
}
