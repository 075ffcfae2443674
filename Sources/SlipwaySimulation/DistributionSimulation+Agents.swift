import SlipwayAgent
import SlipwayCore
import SlipwayProto
import SlipwayRegionStore

/// What each simulated agent does with a message, a turn of its loop, and a
/// verified piece: `PieceDownload`, `PieceServer` and the agent loop's
/// download and tracker calls, over virtual time.
extension DistributionSimulation {
    func receive(_ message: Message, at agent: SimulatedAgent) {
        switch message {
        case .greet(let from, let heedsChoke):
            guard agent.isInSwarm else { return }
            subscribe(agents[from].name, to: agent, heedsChoke: heedsChoke)
        case .request(let from, let piece, let heedsChoke):
            serve(piece, to: agents[from], by: agent, heedsChoke: heedsChoke)
        case .interest(let from, let interested):
            guard config.uploadSlots > 0, agent.isInSwarm else { return }
            let peer = agents[from].name
            apply(agent.slots.interest(peer, digest: digest, interested: interested, now: instant(now)), by: agent)
        case .have(let from, let holding):
            let peer = agents[from].name
            if !agent.isComplete, agent.connections.contains(peer) { heard(from: peer, by: agent) }
            guard !agent.isComplete, agent.picker != nil, agent.known.contains(peer), agent.connections.contains(peer),
                  !agent.requests.isCoolingDown(peer), !agent.picker!.banned.contains(peer) else { return }
            agent.picker!.peer(peer, adds: (holding.complete ? everything : holding.pieces).sorted())
            pump(agent)
        case .choke(let from, let choked, let refused):
            let peer = agents[from].name
            guard !agent.isComplete, agent.picker != nil, agent.connections.contains(peer) else { return }
            heard(from: peer, by: agent)
            if choked {
                agent.requests.choked(by: peer, refused: refused, now: now, picker: &agent.picker!)
            } else {
                agent.requests.unchoked(by: peer, picker: &agent.picker!)
            }
            pump(agent)
        case .notFound(let from):
            let peer = agents[from].name
            guard !agent.isComplete, agent.picker != nil else { return }
            heard(from: peer, by: agent)
            agent.requests.notHeld(by: peer, picker: &agent.picker!)
            agent.connections.remove(peer)
            pump(agent)
        case .manifest:
            guard agent.picker == nil else { return }
            agent.picker = PiecePicker(pieceCount: config.pieceCount, perPeerLimit: 1, seedLimit: 1)
            agent.requests = agent.requests.forPieces((0..<config.pieceCount).map(config.lengthOfPiece))
            agent.manifestAt = now
            agent.seedConnected = true
            turn(agent)
        case .storeChoke(let choked, let refused):
            guard !agent.isComplete, agent.picker != nil else { return }
            if choked {
                agent.requests.storeRested(refused: refused, now: now, picker: &agent.picker!)
            } else {
                agent.requests.storeUnchoked(picker: &agent.picker!)
            }
            pump(agent)
        case .peerList(let peers):
            update(agent, peers: peers)
            pump(agent)
        }
    }

    func receive(_ message: RegionMessage, inRegion region: Int) {
        switch message {
        case .storeRequest(let from, let piece, let alternatives):
            guard agents[from].alive else { return }
            storeAwaitingNext[region].remove(from)
            if config.storeSlots > 0 {
                let (taken, notices) = storeSlots[region].request(from: from, digest: digest, now: instant(now))
                guard taken else {
                    return send(.toAgent(from, .storeChoke(choked: true, refused: piece)), after: config.latency)
                }
                applyStore(notices, region: region)
            }
            sendFromStore(piece, alternatives: alternatives, to: from, region: region)
            if config.storeSlots > 0 {
                storeSlots[region].answered(from, now: instant(now))
                storeAwaitingNext[region].insert(from)
            }
        case .register(let from):
            var register = Slipway_V1_AgentRegister()
            register.machineID = agents[from].name
            register.region = "r\(region)"
            register.services = ["service"]
            register.peerEndpoint = "tcp://192.0.2.1:7847"
            register.completeDigests = agents[from].isComplete ? [digest] : []
            trackers[region].register(register, now: instant(now))
        case .peerListRequest(let from, let have):
            var request = Slipway_V1_PeerListRequest()
            request.digest = digest
            request.machineID = agents[from].name
            request.have = have
            trackers[region].noteHave(request, now: instant(now))
            let peers = trackers[region].peers(for: digest, asking: agents[from].name, using: &random)
            send(.toAgent(from, .peerList(peers)), after: config.latency)
        }
    }

    /// The store sends whichever of the asked piece and its alternatives it has sent least, as `StoreServer` does.
    func sendFromStore(_ asked: Int, alternatives: [Int], to agent: Int, region: Int) {
        let piece = storeSent[region].choose(digest, asked: asked, alternatives: alternatives.map(UInt32.init), pieceCount: config.pieceCount)
        if storeSent[region].timesSent(digest, piece: piece) > 0 { storeRepeats += 1 }
        storeSent[region].count(digest, piece: piece)
        let (id, completions) = network.start(from: storeHosts[region], to: agent, bytes: config.pieceLength(piece), now: now)
        purposes[id] = .piece(to: agent, piece: piece, source: .seed, uploader: nil, asked: asked)
        schedule(completions)
    }

    func applyStore(_ notices: [UploadSlots<Int>.Notice], region: Int) {
        for notice in notices { send(.toAgent(notice.peer, .storeChoke(choked: notice.choked, refused: nil)), after: config.latency) }
    }

    /// One turn of the agent's loop: the download's pump, its peer-list
    /// refresh and heartbeat, and the server's slot hand-over.
    func turn(_ agent: SimulatedAgent) {
        pump(agent)
        if !agent.isComplete, agent.picker != nil {
            let refresh = agent.requests.isIdle ? 0.25 : 1
            if agent.lastPeerList.map({ now - $0 >= refresh }) ?? true {
                agent.lastPeerList = now
                let have = agent.picker!.held.sorted().map(UInt32.init)
                send(.toRegion(agent.region, .peerListRequest(from: agent.index, have: have)), after: config.latency)
            }
        }
        if agent.lastHeartbeat.map({ now - $0 >= Self.heartbeatInterval }) ?? true { heartbeat(agent) }
        if config.uploadSlots > 0 {
            apply(agent.slots.tick(now: instant(now)) { _ in 0 }, by: agent)
        }
    }

    func heartbeat(_ agent: SimulatedAgent) {
        agent.lastHeartbeat = now
        send(.toRegion(agent.region, .register(from: agent.index)), after: config.latency)
    }

    /// `PieceDownload.pump`: timeouts, lapsed chokes, interest, then the picker's requests.
    func pump(_ agent: SimulatedAgent) {
        guard agent.alive, !agent.isComplete, agent.picker != nil else { return }
        if !agent.peersKnown, let manifestAt = agent.manifestAt, now - manifestAt < 2 { return }
        for expiry in agent.requests.expire(now: now, picker: &agent.picker!) {
            if case .slow = expiry { agent.slowRequests += 1 } else { agent.timeouts += 1 }
            if let peer = expiry.dropped { agent.connections.remove(peer) }
        }
        tellInterest(agent)
        for request in agent.picker!.next(using: &random) {
            agent.requests.asked(request.piece, of: request.source, now: now)
            switch request.source {
            case .seed:
                send(.toRegion(agent.region, .storeRequest(from: agent.index, piece: request.piece, alternatives: request.alternatives)), after: config.latency)
            case .peer(let peer):
                connect(agent, to: peer)
                send(.toAgent(names[peer]!, .request(from: agent.index, piece: request.piece, heedsChoke: true)), after: config.latency)
            }
        }
    }

    private func connect(_ agent: SimulatedAgent, to peer: String) {
        if agent.connections.insert(peer).inserted { agent.interest.connected(peer) }
    }

    private func tellInterest(_ agent: SimulatedAgent) {
        guard let picker = agent.picker else { return }  // one copy of it, not one per peer
        for (peer, wants) in agent.interest.due(connected: agent.connections, picker: picker, now: now) {
            agent.interest.told(peer, interested: wants)
            send(.toAgent(names[peer]!, .interest(from: agent.index, interested: wants)), after: config.latency)
        }
    }

    /// `PieceDownload.heard(from:)`: any answer shows a peer given up as slow alive.
    private func heard(from peer: String, by agent: SimulatedAgent) {
        agent.requests.heard(from: peer, piece: nil, now: now)
    }

    /// `PieceDownload.update(peers:)`: who holds what, the seed stripe, greetings.
    private func update(_ agent: SimulatedAgent, peers list: [Slipway_V1_Peer]) {
        guard !agent.isComplete, agent.picker != nil else { return }
        agent.peersKnown = true
        agent.requests.endCoolDowns(now: now)
        for peer in list where !agent.picker!.banned.contains(peer.machineID) && !agent.requests.isCoolingDown(peer.machineID) {
            agent.known.insert(peer.machineID)
            agent.picker!.peer(peer.machineID, has: peer.complete ? everything : Set(peer.have.map(Int.init)))
            if !peer.complete { agent.swarm.insert(peer.machineID) }
        }
        let members = agent.swarm.sorted()
        agent.picker!.seedStripe = (members.firstIndex(of: agent.name)!, members.count)
        let listed = list.map(\.machineID).filter { agent.known.contains($0) && !agent.requests.isCoolingDown($0) && !agent.picker!.banned.contains($0) }
        let again = agent.greetedAt.map { now - $0 >= Self.greetingInterval } ?? true
        if again { agent.greetedAt = now }
        var greeting = Set(listed.filter { !agent.connections.contains($0) })
        if again { greeting.formUnion(agent.connections) }
        for peer in greeting.sorted() where agent.connections.contains(peer) || agent.connections.count + 1 < Self.maxPeerConnections {
            connect(agent, to: peer)
            send(.toAgent(names[peer]!, .greet(from: agent.index, heedsChoke: true)), after: config.latency)
        }
    }

    /// `PieceServer.serve` for one request.
    private func serve(_ piece: Int, to downloader: SimulatedAgent, by server: SimulatedAgent, heedsChoke: Bool) {
        guard server.isInSwarm, server.isComplete || server.picker?.held.contains(piece) == true else {
            return send(.toAgent(downloader.index, .notFound(from: server.index)), after: config.latency)
        }
        let peer = downloader.name
        if config.uploadSlots > 0, heedsChoke {
            let (taken, notices) = server.slots.request(from: peer, digest: digest, now: instant(now))
            guard taken else {
                return send(.toAgent(downloader.index, .choke(from: server.index, choked: true, refused: piece)), after: config.latency)
            }
            apply(notices, by: server)
        }
        let (id, completions) = network.start(from: server.index, to: downloader.index, bytes: config.pieceLength(piece), now: now)
        purposes[id] = .piece(to: downloader.index, piece: piece, source: .peer(server.name), uploader: server.index)
        server.sending[peer, default: 0] += 1
        schedule(completions)
        if config.uploadSlots > 0 { server.slots.answered(peer, now: instant(now)) }
    }

    private func apply(_ notices: [UploadSlots<String>.Notice], by server: SimulatedAgent) {
        for notice in notices {
            send(.toAgent(names[notice.peer]!, .choke(from: server.index, choked: notice.choked, refused: nil)), after: config.latency)
        }
    }

    private func subscribe(_ peer: String, to server: SimulatedAgent, heedsChoke: Bool) {
        if server.subscribers[peer] == nil, server.subscribers.count >= Self.maxSubscribers,
           let oldest = server.subscribers.min(by: { ($0.value, $0.key) < ($1.value, $1.key) })?.key {
            server.subscribers[oldest] = nil
            server.untold[oldest] = nil
        }
        server.subscribers[peer] = now
        server.untold[peer, default: SimulatedAgent.Holding()].merge(server.holding)
        if config.uploadSlots > 0, heedsChoke { server.slots.heed(peer, digest: digest) }
        if server.sending[peer] == nil { tell(server, peer) }
    }

    /// Sends a subscriber what it was not told yet; a piece being sent to it goes first.
    func tell(_ server: SimulatedAgent, _ peer: String) {
        guard let holding = server.untold.removeValue(forKey: peer) else { return }
        send(.toAgent(names[peer]!, .have(from: server.index, holding)), after: config.latency)
    }

    private func announce(_ holding: SimulatedAgent.Holding, by server: SimulatedAgent) {
        for peer in server.subscribers.keys.sorted() {
            server.untold[peer, default: SimulatedAgent.Holding()].merge(holding)
            if server.sending[peer] == nil { tell(server, peer) }
        }
    }

    func verified(_ agent: SimulatedAgent, piece: Int, from source: PieceSource, asked: Int?) {
        guard agent.alive, !agent.isComplete, agent.picker != nil else { return }
        agent.requests.arrived(piece, from: source, asked: asked, now: now, picker: &agent.picker!)
        guard agent.picker!.received(piece, from: source, valid: true) == .accepted else { return pump(agent) }
        if source == .seed { agent.fromSeed += 1 } else { agent.fromPeers += 1 }
        guard agent.picker!.isComplete else {
            announce(SimulatedAgent.Holding(pieces: [piece]), by: agent)
            return pump(agent)
        }
        agent.completeAt = now
        remaining -= 1
        announce(SimulatedAgent.Holding(complete: true), by: agent)
        // The download closes its connections; the state change goes to the tracker at once.
        agent.connections = []
        agent.requests.closedAll()
        heartbeat(agent)
    }
}
