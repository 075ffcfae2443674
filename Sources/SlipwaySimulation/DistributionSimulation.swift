import SlipwayAgent
import SlipwayCore
import SlipwayProto
import SlipwayRegion
import SlipwayRegionStore

/// Distributes one artifact over a modelled network in virtual time, with the
/// code the real processes decide with: each agent's ``PiecePicker``, the
/// ``UploadSlots`` of agents and stores, each region's `AgentTracker` (peer lists, heartbeats,
/// silent machines) and, between regions, the region controller's
/// `ReplicationPlan`. Messages take a fixed delay; transfers share links as
/// ``FluidNetwork`` models them.
///
/// With several regions, the build lands in the first; every other region
/// replicates it; once all hold it (deployable), it is deployed everywhere and
/// every agent fetches it from its region's store and its region's peers.
public final class DistributionSimulation {
    enum Message {
        // To an agent's piece server.
        case greet(from: Int, heedsChoke: Bool)
        case request(from: Int, piece: Int, heedsChoke: Bool)
        case interest(from: Int, interested: Bool)
        // To an agent's download.
        case have(from: Int, SimulatedAgent.Holding)
        case choke(from: Int, choked: Bool, refused: Int?)
        case notFound(from: Int)
        /// The store's choke or unchoke (`--store-upload-slots`); `refused`: the request it answered.
        case storeChoke(choked: Bool, refused: Int?)
        case manifest
        case peerList([Slipway_V1_Peer])
    }

    enum RegionMessage {
        case storeRequest(from: Int, piece: Int, alternatives: [Int])
        case register(from: Int)
        case peerListRequest(from: Int, have: [UInt32])
    }

    enum Purpose {
        case piece(to: Int, piece: Int, source: PieceSource, uploader: Int?, asked: Int? = nil)
        case replica(region: Int, source: Int, piece: Int)
    }

    enum Event {
        case toAgent(Int, Message)
        case toRegion(Int, RegionMessage)
        case transfer(FluidNetwork.Completion)
        case verified(agent: Int, piece: Int, source: PieceSource, asked: Int?)
        case targetArrives(Int)
        case tick(Int)
        /// A heartbeat of an agent with no target yet: agents register when they start, long before a deploy.
        case idleHeartbeat(Int)
        case fail(Int)
        case regionTick(Int)
        /// A turn of a store's loop: its upload slots handed on.
        case storeTick(Int)
        case replicaRequest(region: Int, source: Int, first: Int, count: Int)
        case replicaLacking(region: Int, source: Int)
        case replicaPiece(region: Int, source: Int, piece: Int)
        case replicationPump(Int)
        case sample
    }

    /// An agent's loop turn while it downloads: its poll timeout then.
    static let turn = 0.05
    /// `PieceDownload`'s request timeout (for a piece of average length) and greeting interval
    /// (its cool-down and choke lapse are ``PieceRequests``').
    static let requestTimeout = 30.0, greetingInterval = 5.0
    /// `PieceDownload`'s slow-request time (for a piece of average length) until three pieces have been timed.
    static let slowAfter = 10.0
    /// Connections a download keeps (`PieceDownload.maxPeerConnections`); subscribers a server tells (`PieceServer.maxSubscribers`).
    static let maxPeerConnections = 24, maxSubscribers = 64
    /// The agent's heartbeat interval.
    static let heartbeatInterval = 2.0

    public let config: SimulationConfig
    let digest = String(repeating: "5a", count: 32)
    var agents: [SimulatedAgent] = []
    var names: [String: Int] = [:]
    var trackers: [AgentTracker] = []
    var network = FluidNetwork()
    private var queue = EventQueue<Event>()
    var purposes: [Int: Purpose] = [:]
    var random: SplitMix64
    private let origin = ContinuousClock.now
    var now = 0.0
    private var result = SimulationResult()
    var storeHosts: [Int] = [], linkHosts: [Int] = []
    /// Per region, the store's upload slots (``SimulationConfig/storeSlots``).
    var storeSlots: [UploadSlots<Int>] = []
    /// Per region, slot holders handed a piece that have not asked again (`StoreServer.awaitingNext`).
    var storeAwaitingNext: [Set<Int>] = []
    /// Per region, how often its store sent each piece (the store's own bookkeeping).
    var storeSent: [PieceSendCounts] = []
    /// Pieces a store sent again (it had sent them before).
    var storeRepeats = 0
    private var plans: [ReplicationPlan?] = []
    private var replicaSources: [[Int]] = []
    private var regionHeld: [Set<Int>] = []
    var remaining = 0
    let everything: Set<Int>

    public init(_ config: SimulationConfig) {
        self.config = config
        self.random = SplitMix64(seed: config.seed)
        self.everything = Set(0..<config.pieceCount)
    }

    /// Runs until every live agent holds the artifact, or `horizon` virtual seconds pass.
    public func run(horizon: Double = 3_600) -> SimulationResult {
        let total = config.regions * config.agentsPerRegion
        let pools = config.sharedCores > 0 && config.cpuSecondsPerByte > 0
            ? (0..<config.regions).map { _ in network.addPool(capacity: config.sharedCores / config.cpuSecondsPerByte) } : nil
        for index in 0..<total {
            let agent = SimulatedAgent(index: index, region: index / config.agentsPerRegion, uploadSlots: config.uploadSlots)
            agents.append(agent)
            names[agent.name] = index
            _ = network.addHost(up: config.hostUpBits / 8, down: config.hostDownBits / 8, pool: pools?[agent.region])
        }
        for _ in 0..<config.regions {
            storeHosts.append(network.addHost(up: config.storeUpBits / 8, down: config.hostDownBits / 8))
            linkHosts.append(network.addHost(up: config.interRegionBits / 8, down: config.interRegionBits / 8))
            trackers.append(AgentTracker(timeout: .seconds(20)))
        }
        for region in 0..<config.regions {
            queue.schedule(.regionTick(region), at: 0)
            if config.storeSlots > 0 { queue.schedule(.storeTick(region), at: 0) }
        }
        for agent in agents { queue.schedule(.idleHeartbeat(agent.index), at: Double.random(in: 0..<Self.heartbeatInterval, using: &random)) }
        remaining = total
        regionHeld = [everything] + Array(repeating: [], count: config.regions - 1)
        plans = Array(repeating: nil, count: config.regions)
        storeSlots = Array(repeating: UploadSlots(slots: max(1, config.storeSlots)), count: config.regions)
        storeAwaitingNext = Array(repeating: [], count: config.regions)
        storeSent = Array(repeating: PieceSendCounts(), count: config.regions)
        replicaSources = Array(repeating: [], count: config.regions)
        result.replicatedAt = Array(repeating: 0, count: config.regions)
        if config.regions == 1 { deploy() }
        for region in 1..<max(1, config.regions) {
            replicaSources[region] = [0] + (1..<config.regions).filter { $0 != region }
            plans[region] = ReplicationPlan(pieceCount: config.pieceCount, sourceCount: replicaSources[region].count)
            pumpReplication(region)
        }
        while remaining > 0, let (time, event) = queue.next() {
            guard time <= horizon else { break }
            now = time
            result.events += 1
            handle(event)
        }
        return finish()
    }

    private func finish() -> SimulationResult {
        for agent in agents {
            if !agent.alive {
                result.failedAgents += 1
            } else if let completeAt = agent.completeAt, let startedAt = agent.startedAt {
                result.downloadSeconds.append(completeAt - startedAt)
                result.lastCompleteAfterDeploy = max(result.lastCompleteAfterDeploy, completeAt - result.deployedAt)
            } else {
                result.incomplete += 1
            }
            result.fromSeed += agent.fromSeed
            result.fromPeers += agent.fromPeers
            result.timeouts += agent.timeouts
            result.slowRequests += agent.slowRequests
            result.agentBytesSent += network.hosts[agent.index].sent
        }
        result.storeEgressBytes = storeHosts.reduce(0) { $0 + network.hosts[$1].sent }
        result.storeRepeats = storeRepeats
        result.agentBytesSent += result.storeEgressBytes
        result.downloadSeconds.sort()
        return result
    }

    func instant(_ time: Double) -> ContinuousClock.Instant { origin + .seconds(time) }

    func send(_ event: Event, after delay: Double) { queue.schedule(event, at: now + delay) }

    func schedule(_ completions: [FluidNetwork.Completion]) {
        for completion in completions { queue.schedule(.transfer(completion), at: completion.at) }
    }

    // MARK: - Events

    private func handle(_ event: Event) {
        switch event {
        case .toAgent(let index, let message):
            guard agents[index].alive else { return }
            receive(message, at: agents[index])
        case .toRegion(let region, let message):
            receive(message, inRegion: region)
        case .transfer(let completion):
            guard let (transfer, sped) = network.finish(completion, now: now) else { return }
            schedule(sped)
            arrived(purposes.removeValue(forKey: completion.transfer)!, bytes: transfer.bytes)
        case .verified(let index, let piece, let source, let asked):
            verified(agents[index], piece: piece, from: source, asked: asked)
        case .targetArrives(let index):
            let agent = agents[index]
            guard agent.alive else { return }
            agent.startedAt = now
            // The manifest comes from the store, a round trip away.
            send(.toAgent(index, .manifest), after: 2 * config.latency)
            send(.tick(index), after: Self.turn)
        case .tick(let index):
            let agent = agents[index]
            guard agent.alive else { return }
            turn(agent)
            // Done, it serves and heartbeats on; with upload slots it hands them on every turn.
            send(.tick(index), after: !agent.isComplete || config.uploadSlots > 0 ? Self.turn : Self.heartbeatInterval)
        case .idleHeartbeat(let index):
            let agent = agents[index]
            guard agent.alive, agent.startedAt == nil else { return }
            heartbeat(agent)
            send(.idleHeartbeat(index), after: Self.heartbeatInterval)
        case .fail(let index):
            fail(agents[index])
        case .regionTick(let region):
            _ = trackers[region].expire(now: instant(now))
            if let plan = plans[region], !plan.isComplete {
                if !(plans[region]!.expire(now: instant(now))).isEmpty { pumpReplication(region) }
            }
            send(.regionTick(region), after: 1)
        case .storeTick(let region):
            // As `StoreServer`: a slot holder handed a piece counts as busy until it asks again.
            let awaiting = storeAwaitingNext[region]
            applyStore(storeSlots[region].tick(now: instant(now)) { awaiting.contains($0) ? 1 : 0 }, region: region)
            storeAwaitingNext[region].formIntersection(storeSlots[region].served)
            send(.storeTick(region), after: Self.turn)
        case .replicaRequest(let region, let source, let first, let count):
            let from = replicaSources[region][source]
            guard (first..<(first + count)).allSatisfy({ regionHeld[from].contains($0) }) else {
                return send(.replicaLacking(region: region, source: source), after: config.interRegionLatency)
            }
            for piece in first..<(first + count) {
                let (id, completions) = network.start(from: linkHosts[from], to: linkHosts[region], bytes: config.pieceLength(piece), now: now)
                purposes[id] = .replica(region: region, source: source, piece: piece)
                schedule(completions)
            }
        case .replicaLacking(let region, let source):
            plans[region]!.lacking(source, now: instant(now))
            send(.replicationPump(region), after: 2.001)
        case .replicaPiece(let region, let source, let piece):
            guard plans[region]!.received(piece, from: source, now: instant(now)) == .accepted else { return }
            regionHeld[region].insert(piece)
            if plans[region]!.isComplete {
                result.replicatedAt[region] = now
                if plans.allSatisfy({ $0?.isComplete ?? true }) { deploy() }
            } else {
                pumpReplication(region)
            }
        case .replicationPump(let region):
            pumpReplication(region)
        case .sample:
            result.samples.append(sample())
            send(.sample, after: config.sampleEvery)
        }
    }

    private func sample() -> SimulationResult.Sample {
        var sample = SimulationResult.Sample()
        sample.at = now - result.deployedAt
        var distinct = Set<Int>()
        for agent in agents.prefix(config.agentsPerRegion) where agent.alive && agent.isInSwarm {
            sample.started += 1
            let sending = network.hosts[agent.index].sending.count
            sample.agentTransfers += sending
            if sending > 0 { sample.uploading += 1 }
            if agent.isComplete {
                sample.complete += 1
                sample.piecesHeld += config.pieceCount
                distinct = everything
            } else if let picker = agent.picker {
                sample.piecesHeld += picker.held.count
                if distinct.count < config.pieceCount { distinct.formUnion(picker.held) }
                sample.requests += agent.requests.sent.count
                sample.storeRequests += agent.requests.sent.values.count { $0.source == .seed }
                if agent.requests.isIdle { sample.idleDownloaders += 1 }
            }
        }
        sample.distinctHeld = distinct.count
        sample.storeTransfers = network.hosts[storeHosts[0]].sending.count
        return sample
    }

    private func deploy() {
        result.deployedAt = now
        if config.sampleEvery > 0 { queue.schedule(.sample, at: now) }
        let failing = Set(agents.indices.shuffled(using: &random).prefix(Int((Double(agents.count) * config.failShare).rounded())))
        for agent in agents {
            send(.targetArrives(agent.index), after: Double.random(in: 0...config.targetSpread, using: &random))
            if failing.contains(agent.index) {
                send(.fail(agent.index), after: Double.random(in: 0...config.boundSeconds, using: &random))
            }
        }
    }

    private func pumpReplication(_ region: Int) {
        guard plans[region]?.isComplete == false else { return }
        for request in plans[region]!.nextRequests(now: instant(now)) {
            send(.replicaRequest(region: region, source: request.source, first: request.first, count: request.count),
                 after: config.interRegionLatency)
        }
    }

    private func arrived(_ purpose: Purpose, bytes: Double) {
        switch purpose {
        case .replica(let region, let source, let piece):
            send(.replicaPiece(region: region, source: source, piece: piece), after: config.interRegionLatency)
        case .piece(let to, let piece, let source, let uploader, let asked):
            if let uploader {
                let server = agents[uploader]
                server.sending[agents[to].name, default: 1] -= 1
                if server.sending[agents[to].name] == 0 {
                    server.sending[agents[to].name] = nil
                    tell(server, agents[to].name)
                }
            }
            let agent = agents[to]
            guard agent.alive else { return }
            // Verified one at a time on the agent's thread, then kept, counted and announced.
            let done = max(now + config.latency, agent.verifyingUntil) + bytes / config.verifyBytesPerSecond
            agent.verifyingUntil = done
            queue.schedule(.verified(agent: to, piece: piece, source: source, asked: asked), at: done)
        }
    }

    private func fail(_ agent: SimulatedAgent) {
        guard agent.alive else { return }
        agent.alive = false
        remaining -= agent.isComplete ? 0 : 1
        let (ended, completions) = network.cut(agent.index, now: now)
        schedule(completions)
        for (id, _) in ended {
            guard case .piece(let to, _, _, let uploader, _)? = purposes.removeValue(forKey: id) else { continue }
            if let uploader, uploader != agent.index {
                agents[uploader].sending[agents[to].name, default: 1] -= 1
                if agents[uploader].sending[agents[to].name] == 0 { agents[uploader].sending[agents[to].name] = nil }
            }
        }
    }
}

