import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// The agent's single I/O loop. One poll covers the tracker DEALER (register,
/// heartbeat, targets, peer lists), the region's target SUB, this machine's
/// piece ROUTER (serving peers) and the sockets of the download in progress;
/// between polls it advances the downloads, the services' processes and
/// health checks, and each service's ``Rollout``.
final class AgentLoop: ServingLoop {
    private struct Slot {
        var rollout: Rollout
        let runner: ServiceRunner
        let installer: Installer
        var retryAt: ContinuousClock.Instant?
    }

    private let config: AgentConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private let store: BlobStore
    private var slots: [String: Slot] = [:]
    private var downloads: [String: PieceDownload] = [:]
    private var prefetches = Prefetches()
    private var downloadStarted: [String: ContinuousClock.Instant] = [:]
    private var tracker: ZMQSocket?
    private var targets: ZMQSocket!
    private var server: PieceServer!
    private var seedEndpoint: Endpoint?
    private var lastHeartbeat: ContinuousClock.Instant?
    private var lastTrackerReply: ContinuousClock.Instant = .now
    private var lastPeerList: [String: ContinuousClock.Instant] = [:]
    private var reported: [Slipway_V1_AgentStatus] = []
    private var gate: TargetGate
    private var rejected = 0 {
        didSet { SlipwayMetrics.rejected(daemon: "agent", socket: "tracker+targets", reason: "bad_message") }
    }

    /// Opens the piece store and every service's folder, binds the piece server
    /// and subscribes to the region's targets: everything the agent needs before it serves.
    init(config: AgentConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        var logger = logger
        logger[metadataKey: "machine"] = "\(config.machineID)"
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        try StartupCheck.writableDirectory(config.root, setting: "--root")
        let root = URL(fileURLWithPath: config.root)
        let versionsFile = root.appendingPathComponent("signed-versions.json")
        gate = TargetGate(region: config.region, keys: config.targetVerifiers, versions: try SignedVersions.load(versionsFile), file: versionsFile)
        self.store = try BlobStore(root: root.appendingPathComponent("store"))
        var environment: [String: String] = [:]
        for key in ["PATH", "HOME", "LANG", "TZ"] { environment[key] = ProcessInfo.processInfo.environment[key] }
        for spec in config.services {
            let installer = try Installer(service: spec.name, root: root)
            let (current, previous) = installer.links()
            slots[spec.name] = Slot(rollout: Rollout(service: spec.name, active: current, previous: previous),
                                    runner: ServiceRunner(spec: spec, folder: installer.folder, environment: environment),
                                    installer: installer)
        }
        server = try PieceServer(context: context, endpoint: config.listenEndpoint, store: store, machineID: config.machineID,
                                 sender: config.id, logger: logger)
        targets = try ZMQSocket(context: context, type: .sub)
        try targets.set(.subscribe(Array("target.".utf8)))
        for option in config.regionSecurity.options { try targets.set(option) }
        try targets.connect(config.targetsEndpoint)
    }

    var opened: [String: String] {
        ["machine": config.machineID, "region": config.region, "services": slots.keys.sorted().joined(separator: ","),
         "pieces": "\(config.listenEndpoint)", "tracker": "\(config.trackerEndpoint)", "root": config.root]
    }

    func serve() throws {
        defer { shutdown() }
        for name in slots.keys.sorted() {
            slots[name]!.runner.stopLeftover()
            if let active = slots[name]!.rollout.active {
                logger.info("starting the installed build", metadata: ["service": "\(name)", "digest": "\(active)"])
            }
            let confirmed = slots[name]!.rollout.active.map { slots[name]!.installer.isHealthy($0) } ?? true
            perform(name) { $0.resume(confirmed: confirmed) }
        }
        while !stop.isStopped {
            server.connections.poll()
            let now = ContinuousClock.now
            try heartbeat(now: now)
            try pumpDownloads(now: now)
            superviseServices(now: now)
            try poll(wait: .timeout(isIdle ? .milliseconds(500) : .milliseconds(50)))
        }
    }

    /// Nothing to fetch, upload or health-check: the loop wakes twice a second (messages wake it at once).
    private var isIdle: Bool {
        downloads.isEmpty && server.queued == 0 && slots.values.allSatisfy { $0.runner.isSettled && $0.retryAt == nil }
    }

    // MARK: rollouts

    /// Feeds one input to a service's rollout and carries out what it asks.
    private func perform(_ service: String, _ input: (inout Rollout) -> [Rollout.Action]) {
        guard var slot = slots[service] else { return }
        var actions = input(&slot.rollout)
        slots[service] = slot
        while !actions.isEmpty {
            let action = actions.removeFirst()
            actions += carryOut(action, for: service)
        }
    }

    private func carryOut(_ action: Rollout.Action, for service: String) -> [Rollout.Action] {
        guard var slot = slots[service] else { return [] }
        defer { slots[service] = slot }
        switch action {
        case .download(let digest):
            logger.info("new target", metadata: ["service": "\(service)", "digest": "\(digest)"])
            if store.has(digest) { return slot.rollout.downloaded(digest) }
            startDownload(digest)
            return []
        case .activate(let digest):
            do {
                try slot.installer.install(digest, from: store)
                try slot.installer.link(current: digest, previous: slot.rollout.previous)
                try slot.runner.start(digest: digest, binary: slot.installer.binary(digest), now: .now)
                logger.info("build installed and started", metadata: ["service": "\(service)", "digest": "\(digest)"])
                return []
            } catch {
                logger.error("could not install or start", metadata: ["service": "\(service)", "digest": "\(digest)", "error": "\(error)"])
                return slot.rollout.unhealthy(digest, reason: "install failed: \(error)")
            }
        case .stop:
            slot.runner.stop()
            slot.installer.unlinkCurrent()
            return []
        case .restart(let digest):
            logger.info("restarting the running build", metadata: ["service": "\(service)", "digest": "\(digest)"])
            do {
                try slot.runner.start(digest: digest, binary: slot.installer.binary(digest), now: .now)
            } catch {
                logger.error("could not restart", metadata: ["service": "\(service)", "digest": "\(digest)", "error": "\(error)"])
            }
            return []
        }
    }

    private func superviseServices(now: ContinuousClock.Instant) {
        for name in slots.keys.sorted() {
            // A crashed build always has a restart coming, also when its last activation itself failed.
            if case .crashed = slots[name]!.rollout.phase, slots[name]!.retryAt == nil { slots[name]!.retryAt = now + .seconds(5) }
            let slot = slots[name]!
            if let retryAt = slot.retryAt, now >= retryAt {
                slots[name]!.retryAt = nil
                perform(name) { $0.retry() }
            }
            guard let event = slot.runner.tick(now: now) else { continue }
            switch event {
            case .healthy(let digest):
                perform(name) { $0.healthy(digest) }
                if slots[name]!.rollout.phase == .running(digest) { slots[name]!.installer.markHealthy(digest) }
                let rollout = slots[name]!.rollout
                logger.info(rollout.state == .rolledBack ? "rolled back; previous build healthy" : "build healthy; running",
                            metadata: ["service": "\(name)", "digest": "\(digest)", "reason": "\(rollout.reason)"])
                collectGarbage()
            case .unhealthy(let digest, let reason):
                logger.error("build failed its health check", metadata: ["service": "\(name)", "digest": "\(digest)", "reason": "\(reason)"])
                perform(name) { $0.unhealthy(digest, reason: reason) }
                if case .crashed = slots[name]!.rollout.phase { slots[name]!.retryAt = now + .seconds(5) }
            case .exited(let digest, let status):
                logger.error("service exited; restarting", metadata: ["service": "\(name)", "digest": "\(digest)", "status": "\(status)"])
                perform(name) { $0.exited(digest, status: status) }
                slots[name]!.retryAt = now + .seconds(2)
            }
        }
    }

    /// Keeps the builds a service may need (current, previous, target) and the
    /// artifacts being fetched; everything else leaves the disk.
    private func collectGarbage() {
        var keep = Set(downloads.keys).union(prefetches.digests)
        for slot in slots.values {
            let builds = Set([slot.rollout.active, slot.rollout.previous, slot.rollout.target?.digest].compactMap { $0 })
            slot.installer.prune(keeping: builds)
            keep.formUnion(builds)
        }
        for digest in ((try? store.committedDigests()) ?? []) + store.incomingDigests() where !keep.contains(digest) {
            try? store.remove(digest)
            server.forget(digest)
        }
    }

    // MARK: downloads

    private func startDownload(_ digest: String) {
        guard downloads[digest] == nil, let seedEndpoint else { return }
        downloads[digest] = PieceDownload(digest: digest, machineID: config.machineID, store: store, context: context, sender: config.id,
                                          seedEndpoint: seedEndpoint, seedSecurity: config.regionSecurity, logger: logger,
                                          maxBytesPerSecond: config.maxDownloadBytesPerSecond, seedOnly: config.seedOnly)
        downloadStarted[digest] = .now
        lastPeerList[digest] = nil
    }

    private func wanted() -> Set<String> {
        let now = ContinuousClock.now
        // One in progress stays wanted until it is finished (and logged), though the store already has it.
        let ahead = prefetches.digests.filter { downloads[$0] != nil } + prefetches.due(now: now).filter { !store.has($0) }
        return Set(slots.values.compactMap { if case .downloading(let digest) = $0.rollout.phase { digest } else { nil } }).union(ahead)
    }

    private func pumpDownloads(now: ContinuousClock.Instant) throws {
        let wanted = wanted()
        for digest in downloads.keys where !wanted.contains(digest) {
            // The target moved on; pieces stay on disk in case it comes back.
            downloads.removeValue(forKey: digest)?.close()
        }
        for digest in wanted where downloads[digest] == nil { startDownload(digest) }
        for (digest, download) in downloads {
            if download.isComplete {
                finish(digest, download, now: now)
                continue
            }
            do {
                try download.pump(now: now)
            } catch {
                failDownload(digest, download, reason: "\(error)", now: now)
                continue
            }
            // Peers named by the tracker tell of new pieces themselves (PieceHave); the list
            // brings new peers and corrects what is known: soon when idle, else once a second.
            let refresh: Duration = download.isIdle ? .milliseconds(250) : .seconds(1)
            if !config.seedOnly, download.manifest != nil, lastPeerList[digest].map({ now - $0 >= refresh }) ?? true {
                lastPeerList[digest] = now
                send(toTracker: download.peerListRequest)
            }
        }
    }

    private func finish(_ digest: String, _ download: PieceDownload, now: ContinuousClock.Instant) {
        downloads[digest] = nil
        if let arrived = download.takeArrived() { server.announce(digest, arrived) }
        let seconds = downloadStarted.removeValue(forKey: digest).map { now - $0 } ?? .zero
        logger.info("download complete", metadata: [
            "digest": "\(digest)", "pieces": "\(download.progress.total)", "resumed": "\(download.resumedPieces)",
            "from_seed": "\(download.fromSeed)", "from_peers": "\(download.fromPeers)", "rejected": "\(download.rejected)",
            "banned": "\(download.banned.sorted().joined(separator: ","))", "seconds": "\(seconds)"])
        for name in slots.keys.sorted() where slots[name]!.rollout.phase == .downloading(digest) {
            perform(name) { $0.downloaded(digest) }
        }
    }

    private func failDownload(_ digest: String, _ download: PieceDownload, reason: String, now: ContinuousClock.Instant) {
        download.close()
        downloads[digest] = nil
        logger.error("download failed", metadata: ["digest": "\(digest)", "error": "\(reason)"])
        prefetches.failed(digest, now: now)
        for name in slots.keys.sorted() where slots[name]!.rollout.phase == .downloading(digest) {
            perform(name) { $0.failed(digest, reason: "download failed: \(reason)") }
            slots[name]!.retryAt = now + .seconds(10)
        }
    }

    // MARK: the tracker

    private func heartbeat(now: ContinuousClock.Instant) throws {
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
        register.statuses = statuses
        register.completeDigests = Array(((try? store.committedDigests()) ?? []).prefix(256))
        send(toTracker: register)
        reported = statuses
        lastHeartbeat = now
    }

    private func currentStatuses() -> [Slipway_V1_AgentStatus] {
        slots.keys.sorted().map { name in
            let rollout = slots[name]!.rollout
            return AgentStatusReport.status(machineID: config.machineID, region: config.region, service: name, rollout: rollout,
                                            refusal: gate.refusal(for: name), progress: downloads[rollout.statusDigest]?.progress)
        }
    }

    private func send(toTracker body: some WireBody) {
        do {
            let socket = try tracker ?? ZMQSocket.requestDealer(context: context, connectedTo: config.trackerEndpoint,
                                                                        options: config.regionSecurity.options)
            tracker = socket
            _ = try socket.send(codec.encode(WireMessage(body, sender: config.id)), wait: .never)
        } catch {
            logger.warning("cannot reach the region tracker", metadata: ["error": "\(error)"])
        }
    }

    private func handleTracker() throws {
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
                if let seed = try? Endpoint(parsing: reply.seedEndpoint, origin: "the tracker's seed") { seedEndpoint = seed }
                for target in reply.targets { apply(target) }
            case .peerList:
                guard let list = try? message.body(as: Slipway_V1_PeerList.self) else { continue }
                downloads[list.digest]?.update(peers: list)
            case .errorReply:
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                logger.error("the region tracker refused a request", metadata: ["code": "\(error?.code.name ?? "?")", "error": "\(SafeText.printable(error?.message ?? "", limit: 300))"])
            default:
                rejected += 1
            }
        }
    }

    private func apply(_ target: Slipway_V1_TargetChange) {
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

    private func handleTargets() throws {
        while let frames = try targets.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) {
            guard let message = try? codec.decode(frames), let change = try? message.body(as: Slipway_V1_TargetChange.self) else {
                rejected += 1
                continue
            }
            apply(change)
        }
    }

    // MARK: polling

    private func poll(wait: ZMQWait) throws {
        let poller = ZMQPoller()
        _ = try poller.add(server.socket)
        _ = try poller.add(targets)
        if let tracker { _ = try poller.add(tracker) }
        // New connections wake the loop too: the guard must know them at once.
        _ = try poller.add(server.connections.events)
        var sources: [(digest: String, source: PieceSource, index: Int)] = []
        for (digest, download) in downloads {
            for (source, socket) in download.sockets { sources.append((digest, source, try poller.add(socket))) }
        }
        let ready = try poller.poll(wait: wait)
        if !ready[0].isEmpty {
            try server.serve { digest in
                if store.has(digest) { return PieceHolding(complete: true) }
                return downloads[digest].map { PieceHolding(pieces: $0.heldSet) }
            }
        } else {
            server.flush()
        }
        if !ready[1].isEmpty { try handleTargets() }
        if tracker != nil, !ready[2].isEmpty { try handleTracker() }
        for entry in sources where !ready[entry.index].isEmpty {
            guard let download = downloads[entry.digest] else { continue }
            do {
                try download.receive(from: entry.source, now: .now)
            } catch {
                // A download's trouble (disk, a socket) ends that download, never the agent.
                failDownload(entry.digest, download, reason: "\(error)", now: .now)
            }
        }
        // Peers that asked hear of each new piece now, not at their next tracker list.
        var told = false
        for (digest, download) in downloads {
            guard let arrived = download.takeArrived() else { continue }
            server.announce(digest, arrived)
            told = true
        }
        if told { server.flush() }
    }

    private func shutdown() {
        for slot in slots.values { slot.runner.stop() }
        for download in downloads.values { download.close() }
        tracker?.close()
        targets?.close()
        server?.socket.close()
        logger.info("agent stopped", metadata: ["pieces_served": "\(server?.piecesServed ?? 0)", "dropped": "\(rejected + (server?.rejected ?? 0))"])
    }
}
