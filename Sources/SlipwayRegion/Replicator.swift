import Foundation
import Logging
import SlipwayArtifact
import SlipwayProto
import SlipwayThreads
import SlipwayWire

/// The region controller's replication loop, on a thread of its own.
///
/// Follows the coordinator's event stream (catching up from the last applied
/// sequence number after a restart). On `artifact.published` from another
/// region it records the manifest in the store's incoming area (durable intent),
/// then copies the pieces from the other regions' stores — origin first, any
/// other region that has them too — verifying every piece, and commits the
/// artifact atomically. Each outcome is reported to the coordinator until
/// acknowledged. On `artifact.deleted` it drops the local copy.
///
/// One artifact is copied at a time, first come first served; its pieces may
/// come from several regions at once.
final class Replicator {
    private let config: RegionConfig
    private let logger: Logger
    private let stop: StopSignal
    private let codec = WireCodec()
    private let context: ZMQContext
    private let store: BlobStore
    private let ledger: ReplicationLedger
    private let peerNames: [String]
    private var peers: [String: ZMQSocket] = [:]
    private var events: EventSubscriber!
    private var reporter: ReplicationReporter!
    private var queue: [Slipway_V1_ArtifactManifest] = []
    private var retryLater: [(manifest: Slipway_V1_ArtifactManifest, at: ContinuousClock.Instant)] = []
    private var transfer: Transfer?
    private var savedSequence: UInt64 = 0
    private var rejected = 0

    /// One artifact being copied.
    private final class Transfer {
        let manifest: Slipway_V1_ArtifactManifest
        /// Peer names in the plan's source order.
        let sources: [String]
        var plan: ReplicationPlan
        let startedAt: ContinuousClock.Instant
        var lastReport: ContinuousClock.Instant
        var bytes: UInt64 = 0
        /// Bytes asked for so far, for the rate limit.
        var requested: UInt64 = 0

        init(manifest: Slipway_V1_ArtifactManifest, sources: [String], plan: ReplicationPlan, startedAt: ContinuousClock.Instant) {
            self.manifest = manifest
            self.sources = sources
            self.plan = plan
            self.startedAt = startedAt
            self.lastReport = startedAt
        }
    }

    init(config: RegionConfig, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        let root = URL(fileURLWithPath: config.storePath)
        self.store = try BlobStore(root: root, cleanTemporary: false)
        self.ledger = try ReplicationLedger(storeRoot: root)
        self.peerNames = config.peers.keys.filter { $0 != config.region }.sorted()
    }

    func run() throws {
        savedSequence = ledger.lastSequence
        events = try EventSubscriber(context: context, publisher: config.coordinatorEvents, snapshot: config.coordinatorSnapshot,
                                     after: savedSequence, sender: config.id)
        reporter = ReplicationReporter(context: context, endpoint: config.coordinatorIntake, sender: config.id, logger: logger)
        reporter.acknowledged = { [ledger] report in
            if report.state == .complete { ledger.markReported(report.digest) }
        }
        defer { close() }
        resumeAfterRestart()
        logger.info("replication following the coordinator", metadata: [
            "region": "\(config.region)", "after_sequence": "\(savedSequence)", "peers": "\(peerNames.joined(separator: ","))",
            "queued": "\(queue.count)"])
        var nextSave = ContinuousClock.now
        while !stop.isStopped {
            try drainEvents()
            let now = ContinuousClock.now
            if transfer == nil { startNext(now: now) }
            try pumpTransfer(now: now)
            try poll(wait: transfer == nil ? .milliseconds(200) : .milliseconds(50))
            try reporter.pump(now: .now)
            if now >= nextSave {
                nextSave = now + .seconds(1)
                saveSequence()
            }
        }
        saveSequence()
    }

    // MARK: events

    private func drainEvents() throws {
        for _ in 0..<1_000 {
            guard let event = try events.next(wait: .never) else { return }
            apply(event)
        }
    }

    private func apply(_ event: Slipway_V1_Event) {
        switch event.type {
        case .artifactPublished:
            guard let manifest = try? Slipway_V1_ArtifactManifest(serializedBytes: event.payload),
                  (try? Manifest.validate(manifest)) != nil else {
                rejected += 1
                return logger.warning("artifact.published with a bad manifest ignored", metadata: ["sequence": "\(event.sequence)"])
            }
            enqueue(manifest)
        case .artifactDeleted:
            let digest = event.artifactDigest
            guard Manifest.isDigest(digest) else { return }
            queue.removeAll { $0.digest == digest }
            retryLater.removeAll { $0.manifest.digest == digest }
            if transfer?.manifest.digest == digest { transfer = nil }
            do {
                try store.remove(digest)
                ledger.forget(digest)
                logger.info("artifact deleted by garbage collection", metadata: ["digest": "\(digest)", "region": "\(config.region)"])
            } catch {
                logger.error("could not delete a collected artifact", metadata: ["digest": "\(digest)", "error": "\(error)"])
            }
        default:
            break
        }
    }

    /// Records the intent durably (the manifest in `incoming/`) so a restart resumes it.
    private func enqueue(_ manifest: Slipway_V1_ArtifactManifest) {
        if manifest.originRegion == config.region || queue.contains(where: { $0.digest == manifest.digest })
            || transfer?.manifest.digest == manifest.digest {
            return
        }
        if store.has(manifest.digest) {
            if !ledger.isReported(manifest.digest) { reporter.report(status(manifest, .complete)) }
            return
        }
        do {
            _ = try store.begin(manifest)
            queue.append(manifest)
        } catch {
            logger.error("cannot start replicating an artifact", metadata: ["digest": "\(manifest.digest)", "error": "\(error)"])
        }
    }

    /// Queues transfers interrupted by a restart and re-reports commits the coordinator never acknowledged.
    private func resumeAfterRestart() {
        for digest in store.incomingDigests() {
            // Uploads by this region's workers sit in incoming/ too; they have no origin elsewhere.
            guard let manifest = store.incomingManifestIfAny(digest), !manifest.originRegion.isEmpty,
                  manifest.originRegion != config.region else { continue }
            queue.append(manifest)
        }
        for digest in (try? store.committedDigests()) ?? [] where !ledger.isReported(digest) {
            guard let manifest = try? store.manifest(digest) else { continue }
            reporter.report(status(manifest, .complete))
        }
    }

    private func saveSequence() {
        guard events.lastSequence != savedSequence else { return }
        do {
            try ledger.save(lastSequence: events.lastSequence)
            savedSequence = events.lastSequence
        } catch {
            logger.error("cannot save the replication position", metadata: ["error": "\(error)"])
        }
    }

    // MARK: transfers

    private func startNext(now: ContinuousClock.Instant) {
        if let due = retryLater.firstIndex(where: { now >= $0.at }) {
            let item = retryLater.remove(at: due)
            if store.incomingManifestIfAny(item.manifest.digest) != nil || (try? store.begin(item.manifest)) != nil {
                queue.append(item.manifest)
            }
        }
        while transfer == nil, !queue.isEmpty {
            let manifest = queue.removeFirst()
            if store.has(manifest.digest) {
                reporter.report(status(manifest, .complete))
                continue
            }
            let sources = ([manifest.originRegion] + peerNames).reduce(into: [String]()) { list, name in
                if name != config.region, config.peers[name] != nil, !list.contains(name) { list.append(name) }
            }
            guard !sources.isEmpty else {
                logger.error("no peer region to copy from; configure --peer", metadata: ["digest": "\(manifest.digest)"])
                reporter.report(status(manifest, .failed, error: "region \(config.region) knows no peer that could have it"))
                retryLater.append((manifest, now + config.retryAfterFailure))
                continue
            }
            let plan = ReplicationPlan(pieceCount: manifest.pieceSha256.count, sourceCount: sources.count,
                                       alreadyHeld: store.receivedPieces(manifest.digest),
                                       window: config.replicationWindow, batch: config.replicationBatch)
            transfer = Transfer(manifest: manifest, sources: sources, plan: plan, startedAt: now)
            logger.info("replicating", metadata: ["digest": "\(manifest.digest)", "name": "\(manifest.name)",
                                                  "from": "\(sources.joined(separator: ","))", "pieces": "\(plan.pieceCount)",
                                                  "already_held": "\(plan.held.count)"])
            reporter.report(status(manifest, .copying, done: plan.held.count))
        }
    }

    private func pumpTransfer(now: ContinuousClock.Instant) throws {
        guard let current = transfer else { return }
        if current.plan.isComplete { return finish(current, now: now) }
        if current.plan.isHopeless {
            let reason = current.plan.badReasons.joined(separator: "; ")
            logger.error("replication failed: no source left", metadata: ["digest": "\(current.manifest.digest)", "reason": "\(reason)"])
            reporter.report(status(current.manifest, .failed, done: current.plan.held.count, error: reason))
            retryLater.append((current.manifest, now + config.retryAfterFailure))
            transfer = nil
            return
        }
        for source in current.plan.expire(now: now) {
            logger.warning("peer region not answering; resting it", metadata: ["peer": "\(current.sources[source])"])
            peers.removeValue(forKey: current.sources[source])?.close()
        }
        if config.replicationMaxBytesPerSecond > 0 {
            let allowedAt = current.startedAt + .milliseconds(Int64(current.requested * 1_000 / config.replicationMaxBytesPerSecond))
            guard now >= allowedAt else { return }
        }
        for request in current.plan.nextRequests(now: now) {
            current.requested += UInt64(request.count) * UInt64(current.manifest.pieceSize)
            var ask = Slipway_V1_PieceRequest()
            ask.digest = current.manifest.digest
            ask.firstPiece = UInt32(request.first)
            ask.count = UInt32(request.count)
            _ = try socket(for: current.sources[request.source]).send(codec.encode(WireMessage(ask, sender: config.id)), wait: .never)
        }
        if now - current.lastReport >= .seconds(5) {
            current.lastReport = now
            reporter.report(status(current.manifest, .copying, done: current.plan.held.count))
        }
    }

    private func finish(_ current: Transfer, now: ContinuousClock.Instant) {
        let digest = current.manifest.digest
        do {
            try store.commit(digest)
            let elapsed = (now - current.startedAt).components
            let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
            logger.info("replica committed", metadata: [
                "digest": "\(digest)", "region": "\(config.region)", "bytes": "\(current.bytes)",
                "seconds": "\(String(format: "%.2f", seconds))"])
            reporter.report(status(current.manifest, .complete))
        } catch {
            // Pieces that each match the manifest but not the digest: the manifest itself is wrong.
            logger.error("replica failed its final verification", metadata: ["digest": "\(digest)", "error": "\(error)"])
            reporter.report(status(current.manifest, .failed, error: "\(error)"))
        }
        transfer = nil
    }

    // MARK: sockets

    private func socket(for peer: String) throws -> ZMQSocket {
        if let socket = peers[peer] { return socket }
        let socket = try ZMQSocket(context: context, type: .dealer)
        try socket.set(.linger(.zero))
        // A window of pieces is window × piece size; never drop any of it.
        try socket.set(.receiveHighWaterMark(0))
        try socket.connect(config.peers[peer]!)
        peers[peer] = socket
        return socket
    }

    private func poll(wait: Duration) throws {
        let poller = ZMQPoller()
        var watched: [(name: String, socket: ZMQSocket)] = []
        if let current = transfer {
            for name in current.sources { if let socket = peers[name] { watched.append((name, socket)) } }
        }
        for item in watched { _ = try poller.add(item.socket) }
        let reporterIndex = try reporter.socket.map { try poller.add($0) }
        guard !watched.isEmpty || reporterIndex != nil else {
            _ = try events.next(wait: .timeout(wait)).map(apply)
            return
        }
        let ready = try poller.poll(wait: .timeout(wait))
        if let reporterIndex, ready[reporterIndex].contains(.readable) { try reporter.receive() }
        for (position, item) in watched.enumerated() where ready[position].contains(.readable) {
            try receivePieces(from: item.name, socket: item.socket)
        }
    }

    private func receivePieces(from peer: String, socket: ZMQSocket) throws {
        for _ in 0..<64 {
            guard let current = transfer, let source = current.sources.firstIndex(of: peer) else { return }
            let received = try socket.receive(wait: .never, maxFrames: 4) { rejected += 1 }
            guard let frames = received else { return }
            guard let message = try? codec.decode(frames) else {
                rejected += 1
                continue
            }
            let now = ContinuousClock.now
            switch message.type {
            case .pieceData:
                guard let header = try? message.body(as: Slipway_V1_PieceData.self), header.digest == current.manifest.digest else { continue }
                let index = Int(header.index)
                let bytes = message.payload ?? []
                guard !current.plan.held.contains(index) else { continue }
                do {
                    try store.store(current.manifest.digest, index: index, bytes: bytes)
                } catch {
                    guard let mismatch = error as? ArtifactError, mismatch.code == .pieceMismatch else {
                        logger.error("cannot store a replicated piece; pausing this peer", metadata: [
                            "digest": "\(current.manifest.digest)", "piece": "\(index)", "error": "\(error)"])
                        current.plan.lacking(source, now: now)
                        continue
                    }
                    logger.warning("peer served a corrupt piece; not asking it again for this artifact", metadata: [
                        "peer": "\(peer)", "digest": "\(current.manifest.digest)", "piece": "\(index)"])
                    current.plan.corrupt(index, from: source, reason: "region \(peer) served a corrupt piece \(index)")
                    continue
                }
                if current.plan.received(index, from: source, now: now) == .accepted { current.bytes += UInt64(bytes.count) }
            case .errorReply:
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                logger.debug("peer lacks the artifact", metadata: ["peer": "\(peer)", "error": "\(error?.message ?? "")"])
                current.plan.lacking(source, now: now)
            default:
                rejected += 1
            }
        }
    }

    private func status(_ manifest: Slipway_V1_ArtifactManifest, _ state: Slipway_V1_ReplicaState, done: Int? = nil,
                        error: String = "") -> Slipway_V1_ReplicationStatus {
        var status = Slipway_V1_ReplicationStatus()
        status.digest = manifest.digest
        status.region = config.region
        status.state = state
        status.piecesTotal = UInt32(manifest.pieceSha256.count)
        status.piecesDone = UInt32(done ?? manifest.pieceSha256.count)
        status.error = error
        return status
    }

    private func close() {
        events?.close()
        reporter?.socket?.close()
        for socket in peers.values { socket.close() }
    }
}
