import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// The region's tracker and target publisher: heartbeats with statuses, peer lists, and new targets through the gate.
extension AgentLoop {
    func heartbeat(now: ContinuousClock.Instant) throws {
        let statuses = currentStatuses()
        let due = lastHeartbeat.map { now - $0 >= config.heartbeatInterval } ?? true
        // A change of state goes out at once; download progress waits for the next heartbeat.
        guard due || statuses.map(AgentStatusReport.withoutProgress) != reported.map(AgentStatusReport.withoutProgress) else { return }
        if now - lastTrackerReply > config.heartbeatInterval * 3 + .seconds(1), tracker != nil {
            // The tracker went silent (restarted, or lost our messages): start over on a fresh socket.
            logger.info("region tracker silent; reconnecting", metadata: ["tracker": "\(config.trackerEndpoint)"])
            tracker?.close()
            tracker = nil
            lastTrackerReply = now
        }
        var register = Slipway_V1_AgentRegister()
        register.machineID = config.machineID
        register.region = config.region
        register.services = config.services.map(\.name)
        register.peerEndpoint = "\(config.advertisedEndpoint ?? config.listenEndpoint)"
        register.peerEndpointCurve = config.security.isAuthenticated
        register.statuses = statuses
        register.completeDigests = Array(((try? store.committedDigests()) ?? []).prefix(256))
        let refusals = server.refusalJournal.pending(limit: RefusalJournal.perRegistration)
        if !refusals.entries.isEmpty || refusals.notListed > 0 {
            (register.refusals, register.refusalsThrough) = (refusals.entries, refusals.through)
            (register.refusalsEpoch, register.refusalsNotListed) = (refusals.epoch, refusals.notListed)
        }
        let sent = send(toTracker: register)
        if !refusals.entries.isEmpty, let sent { refusalsSent = (sent, refusals.through) }
        reported = statuses
        lastHeartbeat = now
        if let tally = vouches?.tally { SlipwayMetrics.peerKeys(trusted: tally.trusted, refused: tally.refused, asking: tally.asking) }
    }

    /// Keys that peers' handshakes carried and the piece server's trust folder does not
    /// hold: the tracker says which of them are its region's agents (``VouchedKeys``).
    var vouches: VouchedKeys? {
        if case .authenticated(_, let trust?) = config.security { trust.vouches } else { nil }
    }

    func askAboutPeerKeys(now: ContinuousClock.Instant) {
        guard let vouches else { return }
        let keys = vouches.questions(now: now)
        guard !keys.isEmpty else { return }
        var query = Slipway_V1_PeerKeyQuery()
        query.curveKeys = keys.map { Data($0.bytes) }
        // Unsent, the keys are asked again when their handshakes look again (2 s).
        guard let sent = send(toTracker: query) else { return }
        keyQueries.append((sent, keys))
        if keyQueries.count > 16 { keyQueries.removeFirst() }
    }

    /// The tracker refused a question about keys (a tracker older than `PeerKeyQuery`):
    /// their handshakes are refused now rather than after the wait, and it is logged once a minute.
    func keyQueryRefused(_ messageID: String, _ error: Slipway_V1_ErrorReply?) -> Bool {
        guard let index = keyQueries.firstIndex(where: { $0.messageID == messageID }) else { return false }
        for key in keyQueries.remove(at: index).keys { vouches?.answered(key, vouchedFor: nil) }
        if keyQueryErrors.occurred(now: .now) != nil {
            logger.warning("the region tracker does not vouch for peer keys; only the keys of --trust-dir are admitted",
                           metadata: ["code": "\(error?.code.name ?? "?")", "error": "\(SafeText.printable(error?.message ?? "", limit: 300))"])
        }
        return true
    }

    func currentStatuses() -> [Slipway_V1_AgentStatus] {
        slots.keys.sorted().map { name in
            let rollout = slots[name]!.rollout
            return AgentStatusReport.status(machineID: config.machineID, region: config.region, service: name, rollout: rollout,
                                            refusal: gate.refusal(for: name), progress: downloads[rollout.statusDigest]?.progress)
        }
    }

    /// Sends `body` to the tracker. - Returns: its message id, if the socket took it.
    @discardableResult
    func send(toTracker body: some WireBody) -> String? {
        do {
            let socket = try tracker ?? ZMQSocket.requestDealer(context: context, connectedTo: config.trackerEndpoint,
                                                                        options: config.regionSecurity.options)
            tracker = socket
            let message = WireMessage(body, sender: config.id)
            return try socket.send(codec.encode(message), wait: .never) ? message.envelope.messageID : nil
        } catch {
            logger.warning("cannot reach the region tracker", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func handleTracker() throws {
        guard let tracker else { return }
        while let frames = try tracker.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) {
            guard let message = try? codec.decode(frames) else {
                rejected += 1
                continue
            }
            lastTrackerReply = .now
            switch message.type {
            case .agentTargets:
                guard let reply = try? message.body(as: Slipway_V1_AgentTargets.self) else { continue }
                if let sent = refusalsSent, message.envelope.inReplyTo == sent.messageID {
                    server.refusalJournal.acknowledge(through: sent.through)
                    refusalsSent = nil
                }
                if let seed = try? Endpoint(parsing: reply.seedEndpoint, origin: "the tracker's seed") { seedEndpoint = seed }
                for target in reply.targets { apply(target) }
            case .peerList:
                guard let list = try? message.body(as: Slipway_V1_PeerList.self) else { continue }
                downloads[list.digest]?.update(peers: list)
                // The peers listed will mostly ask this machine too: their keys need no question then.
                guard let vouches else { continue }
                for peer in list.peers {
                    guard let key = CurveKey(bytes: Array(peer.curveKey)),
                          let identity = try? Identity(role: .agent, name: peer.machineID) else { continue }
                    vouches.listed(key, as: identity)
                }
            case .peerKeyAnswer:
                keyQueries.removeAll { $0.messageID == message.envelope.inReplyTo }
                guard let answer = try? message.body(as: Slipway_V1_PeerKeyAnswer.self), let vouches else { continue }
                for verdict in answer.verdicts {
                    guard let key = CurveKey(bytes: Array(verdict.curveKey)) else { continue }
                    vouches.answered(key, vouchedFor: verdict.trusted ? try? Identity(role: .agent, name: verdict.name) : nil)
                }
            case .errorReply:
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                if keyQueryRefused(message.envelope.inReplyTo, error) { continue }
                logger.error("the region tracker refused a request", metadata: ["code": "\(error?.code.name ?? "?")", "error": "\(SafeText.printable(error?.message ?? "", limit: 300))"])
            default:
                rejected += 1
            }
        }
    }

    func apply(_ target: Slipway_V1_TargetChange) {
        guard target.region == config.region, let slot = slots[target.service], Manifest.isDigest(target.artifactDigest) else { return }
        // Older than what runs here (a region controller restarted with older saved targets):
        // the rollout would ignore it; no refusal to report.
        if let current = slot.rollout.target, target.version < current.version { return }
        guard gate.admit(target, logger: logger) else { return }
        // In a rollout, the region's cutoff says which of the two signed builds this machine runs.
        let (digest, ahead) = WaveMembership.assignment(for: config.machineID, in: target)
        if prefetches.set(ahead, for: target.service), let ahead {
            logger.info("prefetching a rollout's build ahead of this machine's wave", metadata: ["service": "\(target.service)", "digest": "\(ahead)"])
        }
        guard Manifest.isDigest(digest) else { return }  // outside the waves of a first rollout: nothing to run yet
        if digest != slots[target.service]?.rollout.target?.digest, target.rolloutID != 0 {
            logger.info("rollout target", metadata: ["service": "\(target.service)", "rollout": "\(target.rolloutID)", "digest": "\(digest)",
                                                    "in_wave": "\(digest == target.artifactDigest)"])
        }
        perform(target.service) { $0.targetChanged(digest: digest, version: target.version) }
    }

    func handleTargets() throws {
        while let frames = try targets.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) {
            guard let message = try? codec.decode(frames), let change = try? message.body(as: Slipway_V1_TargetChange.self) else {
                rejected += 1
                continue
            }
            apply(change)
        }
    }
}
