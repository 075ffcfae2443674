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
    struct Slot {
        var rollout: Rollout
        let runner: ServiceRunner
        let installer: Installer
        var retryAt: ContinuousClock.Instant?
    }

    let config: AgentConfig
    let logger: Logger
    let stop: StopSignal
    let codec = WireCodec()
    let context: ZMQContext
    let store: BlobStore
    var slots: [String: Slot] = [:]
    var downloads: [String: PieceDownload] = [:]
    var prefetches = Prefetches()
    var downloadStarted: [String: ContinuousClock.Instant] = [:]
    var tracker: ZMQSocket?
    var targets: ZMQSocket!
    var server: PieceServer!
    var seedEndpoint: Endpoint?
    var lastHeartbeat: ContinuousClock.Instant?
    var lastTrackerReply: ContinuousClock.Instant = .now
    var lastPeerList: [String: ContinuousClock.Instant] = [:]
    var reported: [Slipway_V1_AgentStatus] = []
    var gate: TargetGate
    /// Admits peers to the piece server by the trust folder (nil: insecure).
    let zap: ZAPHandler?
    /// The last questions about peer keys sent to the tracker, by message id: an error reply refuses their keys.
    var keyQueries: [(messageID: String, keys: [CurveKey])] = []
    var keyQueryErrors = RepeatedEvent(interval: .seconds(60))
    /// The registration that carried the piece server's refusals, and the last of them: acknowledged by its reply.
    var refusalsSent: (messageID: String, through: UInt64)?
    var rejected = 0 {
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
        gate = TargetGate(region: config.region, keys: config.targetVerifiers, maxAge: config.targetMaxAge,
                          versions: try SignedVersions.load(versionsFile), file: versionsFile)
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
        if case .curve(let regionKeys, _) = config.regionSecurity, case .authenticated(let own, _) = config.security, own.keyPair != regionKeys {
            // The tracker hands peers the key the registration proved: the piece server must hold the same.
            throw StartupError(setting: "--key", reason: "the piece server's key differs from the one the agent registers with")
        }
        zap = try config.security.startZAP(context: context, daemon: "agent", logger: logger)
        server = try PieceServer(context: context, endpoint: config.listenEndpoint, store: store, machineID: config.machineID,
                                 sender: config.id, logger: logger, security: config.security, uploadSlots: config.uploadSlots)
        server.arriving = { [unowned self] digest, index in downloads[digest]?.arriving(index) }
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
            askAboutPeerKeys(now: now)
            try pumpDownloads(now: now)
            superviseServices(now: now)
            try poll(wait: .timeout(isIdle ? .milliseconds(500) : .milliseconds(50)))
        }
    }

    /// Nothing to fetch, upload or health-check: the loop wakes twice a second (messages wake it at once).
    var isIdle: Bool {
        downloads.isEmpty && server.queued == 0 && slots.values.allSatisfy { $0.runner.isSettled && $0.retryAt == nil }
    }

    // MARK: rollouts

    /// Feeds one input to a service's rollout and carries out what it asks.
    func perform(_ service: String, _ input: (inout Rollout) -> [Rollout.Action]) {
        guard var slot = slots[service] else { return }
        var actions = input(&slot.rollout)
        slots[service] = slot
        while !actions.isEmpty {
            let action = actions.removeFirst()
            actions += carryOut(action, for: service)
        }
    }

    func carryOut(_ action: Rollout.Action, for service: String) -> [Rollout.Action] {
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

    func superviseServices(now: ContinuousClock.Instant) {
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
    func collectGarbage() {
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
}
