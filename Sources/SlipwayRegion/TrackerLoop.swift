import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// The region controller's agent side, on a thread of its own: a ROUTER where
/// agents register and heartbeat (answered with their services' targets) and ask
/// for peers holding an artifact's pieces, a PUB that pushes target changes at
/// once, and the region's aggregated counts sent to the coordinator.
///
/// Heartbeat replies carry the targets too, so an agent that missed a PUB
/// message (slow joiner, reconnect) still converges within one heartbeat.
final class TrackerLoop: ServingLoop {
    private let config: RegionConfig
    private let board: RegionTargetBoard
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private var tracker: AgentTracker
    private var router: ZMQSocket!
    private var connections: ConnectionGuard!
    private var publisher: ZMQSocket!
    /// Answers the tracker's and the target PUB's CURVE handshakes (nil when insecure).
    private var zap: ZAPHandler?
    private var reports: ReportSender<Slipway_V1_RegionReport>!
    /// The last report the coordinator recorded, and when.
    private var delivered: (report: Slipway_V1_RegionReport, at: ContinuousClock.Instant)?
    private var published: [String: Slipway_V1_TargetChange] = [:]
    /// The coordinator's word that the targets are still current, passed on with them.
    private var vouches: RegionVouches
    /// Per service in a rollout: the cutoff of this region's wave, and how its machines stand.
    private var waves: [String: (cutoff: UInt64, progress: Slipway_V1_WaveProgress)] = [:]
    private var seenGeneration: UInt64 = .max
    private var rejections = RejectionLog(daemon: "region", socket: "tracker")
    private var random = SystemRandomNumberGenerator()

    /// Until every machine alive had a chance to register (one agent timeout
    /// after start), the region does not know its machines, so it cannot place
    /// a wave's cutoff: rollout targets are held back (agents keep what they
    /// run) and no wave progress is reported.
    private let startedAt = ContinuousClock.now
    private var knowsItsMachines: Bool { ContinuousClock.now - startedAt >= config.agentTimeout }

    /// A turn of the loop takes a little over its 100 ms wait; a gap this long
    /// between turns is a stall of the process, not a silence of its machines.
    private let stallLimit: Duration = .seconds(2)

    /// Reports go out when the counts change, at most this often...
    private let reportInterval: Duration = .seconds(1)
    /// ...and at least this often, so the coordinator sees the region is alive.
    /// A third of the smallest `--report-stale-after` (16 s): one late or lost
    /// refresh must not make a quiet, healthy region look stale to a rollout.
    private let reportRefresh: Duration = .seconds(5)

    init(config: RegionConfig, board: RegionTargetBoard, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.board = board
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        self.tracker = AgentTracker(timeout: config.agentTimeout)
        vouches = RegionVouches(interval: config.vouchInterval, now: .now)
        zap = try config.security.startZAP(context: context, daemon: "region", logger: logger)
        (router, connections) = try ZMQSocket.boundedRouter(context: context, endpoint: config.trackerEndpoint, limits: .control,
                                                            security: config.security.server, daemon: "region", name: "tracker", logger: logger)
        publisher = try ZMQSocket(context: context, type: .pub)
        for option in config.security.server.options { try publisher.set(option) }
        try publisher.bind(config.targetsEndpoint)
        reports = ReportSender(context: context, endpoint: config.coordinatorIntake, sender: config.id,
                               security: config.coordinatorSecurity, logger: logger) { $0.region }
        reports.answered = { [unowned self] sent, answer in
            let ended = vouches.roundsEnded
            vouches.received(answer, for: sent, now: .now)
            if vouches.roundsEnded > ended { SlipwayMetrics.vouches(targets: vouches.count, roundEndedAt: Date().timeIntervalSince1970) }
        }
        reports.acknowledged = { [unowned self] report in
            delivered = (report, .now)
            config.refusals.acknowledge(through: report.refusalsThrough)
        }
    }

    var opened: [String: String] {
        ["tracker": "\(config.trackerEndpoint)", "targets": "\(config.targetsEndpoint)"]
    }

    func serve() throws {
        defer {
            connections.stop()
            router.close()
            publisher.close()
            reports.socket?.close()
        }
        var nextReport = ContinuousClock.now
        var lastTurn = ContinuousClock.now
        while !stop.isStopped {
            connections.poll()
            rejections.flush(logger: logger)
            publishTargetChanges(force: false)
            try serve(wait: .timeout(.milliseconds(100)))
            try reports.receive()
            let now = ContinuousClock.now
            // Looked at just before expiry: a stall anywhere in the turn (even inside the wait) is caught before it counts.
            if now - lastTurn > stallLimit {
                tracker.stalled(for: now - lastTurn, now: now)
                logger.warning("tracker stalled; the stall is not counted against its machines",
                               metadata: ["seconds": "\((now - lastTurn).components.seconds)"])
            }
            lastTurn = now
            if now >= nextReport {
                nextReport = now + reportInterval
                let (silenced, forgotten) = tracker.expire(now: now)
                for machine in silenced {
                    logger.warning("machine went silent; reported missing", metadata: ["machine": "\(machine)"])
                }
                for machine in forgotten { logger.info("silent machine forgotten", metadata: ["machine": "\(machine)"]) }
                // Machines came and went: a wave's cutoff may have moved.
                publishTargetChanges(force: true)
                var report = tracker.report(region: config.region)
                report.waves = knowsItsMachines ? waves.keys.sorted().map { waves[$0]!.progress } : []
                let refusals = config.refusals.pending()
                report.refusals = refusals.entries
                report.refusalsThrough = refusals.through
                report.refusalsNotListed = refusals.notListed
                report.refusalsEpoch = refusals.epoch
                (report.vouchesWanted, report.vouchesAfter) = vouches.request(now: now)
                exportAgentCounts(report)
                let stale = delivered.map { now - $0.at >= reportRefresh } ?? true
                if report != delivered?.report || stale || report.vouchesWanted { reports.report(report) }
            }
            try reports.pump(now: now)
        }
    }

    /// Machines per service, build and state as gauges; series that vanished are
    /// dropped, so builds long gone (or names a hostile agent made up) do not pile up.
    private var exported: Set<[String]> = []
    private func exportAgentCounts(_ report: Slipway_V1_RegionReport) {
        var now: Set<[String]> = []
        for count in report.counts {
            let key = [count.service, count.artifactDigest, "\(count.state)"]
            now.insert(key)
            SlipwayMetrics.agents(service: key[0], build: key[1], state: key[2]).record(count.machines)
        }
        for key in exported.subtracting(now) {
            SlipwayMetrics.agents(service: key[0], build: key[1], state: key[2]).destroy()
        }
        exported = now
    }

    // MARK: targets

    /// Pushes every service's target whose form for agents changed: on a new
    /// board generation, or (`force`) when machines may have moved a wave's cutoff.
    private func publishTargetChanges(force: Bool) {
        let (targets, generation) = board.read()
        guard generation != seenGeneration || force else { return }
        seenGeneration = generation
        waves = [:]
        for service in targets.services {
            guard let change = targets.agentTarget(service, region: config.region, cutoff: cutoff(service, in: targets)),
                  change.rolloutID == 0 || knowsItsMachines, published[service] != change else { continue }
            published[service] = change
            let message = WireMessage(vouches.vouched(change), sender: config.id, topic: "target.\(service)")
            _ = try? publisher.send(codec.encode(message), wait: .never)
            logger.info("target pushed to agents", metadata: ["service": "\(service)", "digest": "\(change.artifactDigest)",
                                                             "version": "\(change.version)", "rollout": "\(change.rolloutID)",
                                                             "wave_machines": "\(waves[service].map { "\($0.progress.selected)/\($0.progress.machines)" } ?? "all")"])
        }
    }

    private func targets(for services: [String]) -> Slipway_V1_AgentTargets {
        let (targets, _) = board.read()
        var reply = Slipway_V1_AgentTargets()
        reply.region = config.region
        reply.seedEndpoint = "\(config.advertisedStoreEndpoint ?? config.storeEndpoint)"
        let wanted = services.isEmpty ? targets.services : services
        reply.targets = wanted.compactMap { targets.agentTarget($0, region: config.region, cutoff: cutoff($0, in: targets)) }
            .filter { $0.rolloutID == 0 || knowsItsMachines }.map(vouches.vouched)
        return reply
    }

    /// The cutoff of `service`'s rollout here, for exactly the rollout target on
    /// the board: a heartbeat answered between a new target and the next
    /// recomputation must not pair it with the previous rollout's cutoff.
    private func cutoff(_ service: String, in targets: RegionTargets) -> UInt64 {
        guard let rollout = targets.rolloutTarget(service, region: config.region) else { return 0 }
        if let cached = waves[service], cached.progress.rolloutID == rollout.rolloutID, cached.progress.targetVersion == rollout.version {
            return cached.cutoff
        }
        let computed = tracker.wave(rollout, region: config.region)
        waves[service] = computed
        return computed.cutoff
    }

    // MARK: agents

    private func serve(wait: ZMQWait) throws {
        // New connections wake the loop too: the guard must know them at once.
        let poller = ZMQPoller()
        try poller.add(router)
        try poller.add(connections.events)
        guard try poller.poll(wait: wait)[0].contains(.readable) else { return }
        // Up to 1000 messages per turn, so targets and reports are not starved.
        for _ in 0..<1_000 {
            let received = try codec.receiveRouted(from: router, wait: .never, maxFrames: 4) { error in
                rejections.record(error, logger: logger)
            }
            guard let (peer, message) = received else { return }
            let sender = DaemonSecurity.sender(of: router)
            if let refusal = config.security.refusal(message.type, from: sender, on: router) ?? machineRefusal(message, from: sender) {
                config.refusals.refused(message.type, from: sender, daemon: "region", at: RefusalPlace.tracker(region: config.region), reason: refusal,
                                        log: &rejections, logger: logger)
                reply(peer, to: message, error: .permissionDenied, refusal)
                continue
            }
            do {
                try handle(peer, message)
            } catch {
                rejections.record(reason: "bad_request", detail: "\(error)", logger: logger)
                reply(peer, to: message, error: .invalidArgument, "\(error)")
            }
        }
    }

    private func handle(_ peer: [UInt8], _ message: WireMessage) throws {
        let now = ContinuousClock.now
        switch message.type {
        case .agentRegister:
            let register = try message.body(as: Slipway_V1_AgentRegister.self)
            if let problem = Self.problem(with: register, region: config.region) {
                return reply(peer, to: message, error: .invalidArgument, problem)
            }
            if tracker.machines[register.machineID] == nil {
                logger.info("machine registered", metadata: ["machine": "\(register.machineID)", "services": "\(register.services.joined(separator: ","))"])
            }
            // The key the handshake proved, not one the message names: peers pin it to reach this agent.
            let key = register.peerEndpointCurve ? router.peerCurveKey.flatMap(CurveKey.init(z85:))?.bytes : nil
            tracker.register(register, curveKey: key, now: now)
            passOn(tracker.newRefusals(register, now: now), of: register.machineID)
            reply(peer, to: message, targets(for: register.services))
        case .peerListRequest:
            let request = try message.body(as: Slipway_V1_PeerListRequest.self)
            guard Manifest.isDigest(request.digest), SafeText.isName(request.machineID, max: 128) else {
                return reply(peer, to: message, error: .invalidArgument, "a peer list request needs a 64-hex digest and a machine id")
            }
            guard request.have.count <= AgentTracker.maxHave else {
                return reply(peer, to: message, error: .invalidArgument, "at most \(AgentTracker.maxHave) piece indices")
            }
            tracker.noteHave(request, now: now)
            var list = Slipway_V1_PeerList()
            list.digest = request.digest
            list.peers = tracker.peers(for: request.digest, asking: request.machineID, using: &random)
            list.seedEndpoint = "\(config.advertisedStoreEndpoint ?? config.storeEndpoint)"
            reply(peer, to: message, list)
        case .peerKeyQuery:
            let query = try message.body(as: Slipway_V1_PeerKeyQuery.self)
            let keys = query.curveKeys.compactMap { CurveKey(bytes: Array($0)) }
            guard keys.count == query.curveKeys.count, keys.count <= VouchedKeys.perQuery else {
                return reply(peer, to: message, error: .invalidArgument, "a peer key query holds at most \(VouchedKeys.perQuery) keys of 32 bytes")
            }
            guard case .authenticated(_, let trust?) = config.security else {
                return reply(peer, to: message, error: .unsupported, "this region runs --insecure: it vouches for no key")
            }
            reply(peer, to: message, Self.verdicts(on: keys, by: trust))
        default:
            reply(peer, to: message, error: .unsupported, "the tracker does not handle \(message.type)")
        }
    }

    /// The tracker's word on each key: whether the region's trust folder holds it as an agent key.
    static func verdicts(on keys: [CurveKey], by trust: TrustDirectory) -> Slipway_V1_PeerKeyAnswer {
        var answer = Slipway_V1_PeerKeyAnswer()
        answer.verdicts = keys.map { key in
            var verdict = Slipway_V1_PeerKeyVerdict()
            verdict.curveKey = Data(key.bytes)
            if let identity = trust.identity(of: key), identity.role == .agent {
                verdict.trusted = true
                verdict.name = identity.name
            }
            return verdict
        }
        return answer
    }

    /// Puts the refusals an agent's piece server reported in the region's journal (the
    /// coordinator's audit log gets them with the next report), as that machine's: the
    /// place is the tracker's to name, the rest is cut to size and checked.
    private func passOn(_ refusals: (fresh: [Slipway_V1_AuditEntry], unlisted: UInt64), of machine: String) {
        let now = WireMessage.nowUnixMicros()
        for reported in refusals.fresh {
            var entry = Slipway_V1_AuditEntry()
            // An agent's clock may be off, not by more than a day (compared without arithmetic on its number).
            let day: Int64 = 86_400_000_000
            entry.atUnixMicros = reported.atUnixMicros > now - day && reported.atUnixMicros < now + day ? reported.atUnixMicros : now
            entry.identity = Identity(userID: reported.identity)?.userID ?? ""
            entry.action = SafeText.printable(reported.action, limit: 64)
            entry.object = RefusalPlace.pieceServer(machine: machine, region: config.region)
            entry.outcome = "refused"
            // The machine's word: who it says it refused is not checked by anyone else.
            entry.detail = "reported by machine \(machine): " + SafeText.printable(reported.detail, limit: 300)
            config.refusals.record(entry)
        }
        config.refusals.countUnlisted(refusals.unlisted)
    }

    /// An agent key speaks only for the machine it is named after: why `message`
    /// claims another machine, or nil (also when the region runs insecure).
    private func machineRefusal(_ message: WireMessage, from sender: Identity?) -> String? {
        guard config.security.isAuthenticated, let sender else { return nil }
        let machine: String
        switch message.type {
        case .agentRegister: machine = (try? message.body(as: Slipway_V1_AgentRegister.self).machineID) ?? ""
        case .peerListRequest: machine = (try? message.body(as: Slipway_V1_PeerListRequest.self).machineID) ?? ""
        default: return nil
        }
        guard machine == sender.name else {
            return "\(sender) may speak only for machine \(sender.name), not for \(SafeText.printable(machine, limit: 128))"
        }
        return nil
    }

    /// Why a registration cannot be accepted, or nil.
    static func problem(with register: Slipway_V1_AgentRegister, region: String) -> String? {
        guard SafeText.isName(register.machineID, max: 128) else { return "machine id must be 1 to 128 characters of A-Z a-z 0-9 . _ -" }
        guard register.region == region else {
            return "machine \(register.machineID) says region '\(SafeText.printable(register.region, limit: 64))'; this is region \(region)"
        }
        guard register.peerEndpoint.isEmpty || (register.peerEndpoint.utf8.count <= 256 && (try? Endpoint(parsing: register.peerEndpoint)) != nil) else {
            return "peer endpoint must be empty or a tcp:// or ipc:// endpoint of at most 256 bytes"
        }
        guard register.services.count <= 64, register.statuses.count <= 64, register.completeDigests.count <= 256 else {
            return "at most 64 services and 256 held artifacts per machine"
        }
        guard register.services.allSatisfy({ SafeText.isName($0, max: 128) }),
              register.statuses.allSatisfy({ SafeText.isName($0.service, max: 128) }) else {
            return "service names must be 1 to 128 characters of A-Z a-z 0-9 . _ -"
        }
        guard register.completeDigests.allSatisfy(Manifest.isDigest),
              register.statuses.allSatisfy({ ($0.artifactDigest.isEmpty || Manifest.isDigest($0.artifactDigest))
                                                 && ($0.failedDigest.isEmpty || Manifest.isDigest($0.failedDigest)) }) else {
            return "artifact digests must be 64 lowercase hex characters"
        }
        guard register.statuses.allSatisfy({ $0.reason.utf8.count <= 1_024 }) else { return "a status reason is limited to 1024 bytes" }
        guard register.refusals.count <= RefusalJournal.perRegistration else {
            return "at most \(RefusalJournal.perRegistration) refusals per registration"
        }
        return nil
    }

    private func reply(_ peer: [UInt8], to request: WireMessage, _ body: some WireBody) {
        let message = WireMessage(body, sender: config.id, inReplyTo: request.envelope.messageID)
        do {
            _ = try router.send(codec.encode(message, to: peer), wait: .never)
        } catch {
            logger.info("could not reply; agent gone", metadata: ["error": "\(error)"])
        }
    }

    private func reply(_ peer: [UInt8], to request: WireMessage, error code: Slipway_V1_ErrorCode, _ text: String) {
        reply(peer, to: request, Slipway_V1_ErrorReply(code, text))
    }
}
