import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayMetrics
import SlipwayProto
import SlipwayRegionStore
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
///
/// It never opens the store: everything it reads or writes there goes through
/// the store's owner (``BlobStoreMailbox``), so a check and the change that
/// depends on it (has it? then begin; committed? else commit) run together on
/// the owner's thread, never interleaved with an upload of the same bytes.
final class Replicator: ServingLoop {
    private let config: RegionConfig
    private let logger: Logger
    private let stop: StopSignal
    private let context: ZMQContext
    private let store: BlobStoreMailbox
    private let ledger: ReplicationLedger
    private let peerNames: [String]
    private var events: EventSubscriber!
    private var reporter: ReportSender<Slipway_V1_ReplicationStatus>!
    private var queue: [Slipway_V1_ArtifactManifest] = []
    private var retryLater: [(manifest: Slipway_V1_ArtifactManifest, at: ContinuousClock.Instant)] = []
    private var transfer: Transfer?
    private var savedSequence: UInt64 = 0
    /// The newest event whose ``apply(_:)`` returned (durably done, or in ``unfinished``).
    /// Not the subscriber's count: that includes events received and not yet applied.
    private var appliedSequence: UInt64 = 0
    /// Events whose effect is not durable yet (disk trouble): retried every
    /// second, and the saved position stays below the oldest of them.
    private var unfinished: [(sequence: UInt64, work: Unfinished)] = []

    private enum Unfinished {
        case begin(Slipway_V1_ArtifactManifest)
        case remove(String)
    }

    /// The copy in progress, when it last reported progress, and when the store was last asked whether it already has it.
    private struct Transfer {
        let fetcher: PieceFetcher
        var lastReport: ContinuousClock.Instant
        var lastHeldCheck: ContinuousClock.Instant
    }

    init(config: RegionConfig, store: BlobStoreMailbox, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.store = store
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        do {
            self.ledger = try ReplicationLedger(storeRoot: URL(fileURLWithPath: config.storePath))
        } catch {
            throw StartupError(setting: "--store-dir \(config.storePath)", reason: "cannot open the replication ledger: \(error)")
        }
        self.peerNames = config.peers.keys.filter { $0 != config.region }.sorted()
        savedSequence = ledger.lastSequence
        appliedSequence = savedSequence
        events = try EventSubscriber(context: context, publisher: config.coordinatorEvents, snapshot: config.coordinatorSnapshot,
                                     after: savedSequence, sender: config.id, security: config.coordinatorSecurity)
        reporter = ReportSender(context: context, endpoint: config.coordinatorIntake, sender: config.id,
                                  security: config.coordinatorSecurity, logger: logger) { $0.digest }
        reporter.acknowledged = { [ledger] report in
            if report.state == .complete { ledger.markReported(report.digest) }
        }
    }

    var opened: [String: String] {
        ["events": "\(config.coordinatorEvents)", "after_sequence": "\(savedSequence)", "peers": peerNames.joined(separator: ",")]
    }

    func serve() throws {
        defer {
            saveSequence()
            close()
        }
        do {
            try replicate()
        } catch let closed as BlobStoreMailbox.Closed {
            // The store thread stops when the daemon does; anything else that stops it is the daemon's failure.
            let deadline = ContinuousClock.now + .seconds(2)
            while !stop.isStopped, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
            guard stop.isStopped else { throw closed }
        }
    }

    private func replicate() throws {
        try resumeAfterRestart()
        var nextSave = ContinuousClock.now
        while !stop.isStopped {
            try drainEvents()
            let now = ContinuousClock.now
            if transfer == nil { try startNext(now: now) }
            try pumpTransfer(now: now)
            try poll(wait: transfer == nil ? .milliseconds(200) : .milliseconds(50))
            try reporter.pump(now: .now)
            if now >= nextSave {
                nextSave = now + .seconds(1)
                saveSequence()
            }
        }
    }

    // MARK: events

    private func drainEvents() throws {
        for _ in 0..<1_000 {
            guard let event = try events.next(wait: .never) else { return }
            try apply(event)
            appliedSequence = event.sequence
        }
    }

    private func apply(_ event: Slipway_V1_Event) throws {
        switch event.type {
        case .artifactPublished:
            guard let manifest = try? Slipway_V1_ArtifactManifest(serializedBytes: event.payload),
                  (try? Manifest.validate(manifest)) != nil else {
                return logger.warning("artifact.published with a bad manifest ignored", metadata: ["sequence": "\(event.sequence)"])
            }
            if !(try enqueue(manifest)) { unfinished.append((event.sequence, .begin(manifest))) }
        case .artifactDeleted:
            let digest = event.artifactDigest
            guard Manifest.isDigest(digest) else { return }
            queue.removeAll { $0.digest == digest }
            retryLater.removeAll { $0.manifest.digest == digest }
            unfinished.removeAll { if case .begin(let manifest) = $0.work { manifest.digest == digest } else { false } }
            if transfer?.fetcher.manifest.digest == digest { endTransfer() }
            if !(try remove(digest)) { unfinished.append((event.sequence, .remove(digest))) }
        default:
            break
        }
    }

    /// Records the intent durably (the manifest in `incoming/`) so a restart resumes it.
    /// - Returns: false if that could not be written (retried later).
    private func enqueue(_ manifest: Slipway_V1_ArtifactManifest) throws(BlobStoreMailbox.Closed) -> Bool {
        if manifest.originRegion == config.region || queue.contains(where: { $0.digest == manifest.digest })
            || transfer?.fetcher.manifest.digest == manifest.digest {
            return true
        }
        do {
            let (held, reused) = try store.perform { store -> (Bool, ReusedPieces) in
                if store.has(manifest.digest) { return (true, ReusedPieces()) }
                _ = try store.begin(manifest)
                return (false, store.takeReused(manifest.digest))
            }
            noteReused(reused, of: manifest)
            if held {
                if !ledger.isReported(manifest.digest) { reporter.report(status(manifest, .complete)) }
            } else {
                queue.append(manifest)
            }
            return true
        } catch let closed as BlobStoreMailbox.Closed {
            throw closed
        } catch {
            logger.error("cannot start replicating an artifact; will retry", metadata: ["digest": "\(manifest.digest)", "error": "\(error)"])
            return false
        }
    }

    /// Drops a collected artifact, except an upload by this region's own workers
    /// that is still in progress (a rebuild of the same bytes).
    /// - Returns: false if the files could not be removed (retried later).
    private func remove(_ digest: String) throws(BlobStoreMailbox.Closed) -> Bool {
        do {
            let removed = try store.perform { store in
                if !store.has(digest), store.incomingManifestIfAny(digest)?.originRegion.isEmpty == true { return false }
                try store.remove(digest)
                return true
            }
            guard removed else {
                logger.info("kept a local upload of a collected digest", metadata: ["digest": "\(digest)"])
                return true
            }
            ledger.forget(digest)
            logger.info("artifact deleted by garbage collection", metadata: ["digest": "\(digest)", "region": "\(config.region)"])
            return true
        } catch let closed as BlobStoreMailbox.Closed {
            throw closed
        } catch {
            logger.error("could not delete a collected artifact; will retry", metadata: ["digest": "\(digest)", "error": "\(error)"])
            return false
        }
    }

    /// Queues transfers interrupted by a restart and re-reports commits the coordinator never acknowledged.
    private func resumeAfterRestart() throws {
        let region = config.region
        let (interrupted, committed) = try store.perform { store in
            // Uploads by this region's workers sit in incoming/ too; they have no origin elsewhere.
            let interrupted = store.incomingDigests().compactMap(store.incomingManifestIfAny).filter {
                !$0.originRegion.isEmpty && $0.originRegion != region
            }
            return (interrupted, ((try? store.committedDigests()) ?? []).compactMap { try? store.manifest($0) })
        }
        queue.append(contentsOf: interrupted)
        for manifest in committed where !ledger.isReported(manifest.digest) {
            reporter.report(status(manifest, .complete))
        }
    }

    /// Retries unfinished work, then saves the position up to (not past) the oldest event still unfinished.
    private func saveSequence() {
        let retrying = unfinished
        unfinished = []
        for item in retrying {
            // With the store stopped (the daemon is stopping) the item stays unfinished and the event is replayed.
            let done = switch item.work {
            case .begin(let manifest): (try? enqueue(manifest)) ?? false
            case .remove(let digest): (try? remove(digest)) ?? false
            }
            if !done { unfinished.append(item) }
        }
        let position = unfinished.map { $0.sequence - 1 }.min() ?? appliedSequence
        guard position != savedSequence else { return }
        do {
            try ledger.save(lastSequence: position)
            savedSequence = position
        } catch {
            logger.error("cannot save the replication position", metadata: ["error": "\(error)"])
        }
    }

    // MARK: transfers

    private func startNext(now: ContinuousClock.Instant) throws {
        if let due = retryLater.firstIndex(where: { now >= $0.at }) {
            let manifest = retryLater.remove(at: due).manifest
            let begun = try store.perform { store in store.incomingManifestIfAny(manifest.digest) != nil || (try? store.begin(manifest)) != nil }
            if begun { queue.append(manifest) }
        }
        while transfer == nil, !queue.isEmpty {
            let manifest = queue.removeFirst()
            let (held, reused) = try store.perform { store -> (Bool, ReusedPieces) in
                if store.has(manifest.digest) { return (true, ReusedPieces()) }
                // Begun again: earlier builds committed since it was queued may share pieces.
                _ = try? store.begin(manifest)
                return (false, store.takeReused(manifest.digest))
            }
            if held {
                reporter.report(status(manifest, .complete))
                continue
            }
            noteReused(reused, of: manifest)
            let sources = ([manifest.originRegion] + peerNames).reduce(into: [String]()) { list, name in
                if name != config.region, config.peers[name] != nil, !list.contains(name) { list.append(name) }
            }
            guard !sources.isEmpty else {
                logger.error("no peer region to copy from; configure --peer", metadata: ["digest": "\(manifest.digest)"])
                reporter.report(status(manifest, .failed, error: "region \(config.region) knows no peer that could have it"))
                retryLater.append((manifest, now + config.retryAfterFailure))
                continue
            }
            let fetcher = try PieceFetcher(manifest: manifest, sources: sources.map { ($0, config.peers[$0]!, config.peerSecurity[$0] ?? .plain) },
                                           store: store,
                                           context: context, sender: config.id, logger: logger, window: config.replicationWindow,
                                           batch: config.replicationBatch, maxBytesPerSecond: config.replicationMaxBytesPerSecond, now: now)
            transfer = Transfer(fetcher: fetcher, lastReport: now, lastHeldCheck: now)
            logger.info("replicating", metadata: ["digest": "\(manifest.digest)", "name": "\(manifest.name)",
                                                  "from": "\(sources.joined(separator: ","))", "pieces": "\(fetcher.pieceCount)",
                                                  "already_held": "\(fetcher.piecesHeld)"])
            reporter.report(status(manifest, .copying, done: fetcher.piecesHeld))
        }
    }

    /// Pieces linked from earlier builds instead of copied: counted and logged.
    private func noteReused(_ reused: ReusedPieces, of manifest: Slipway_V1_ArtifactManifest) {
        guard reused.pieces > 0 else { return }
        SlipwayMetrics.piecesReused(by: "region", pieces: reused.pieces, bytes: reused.bytes)
        logger.info("replica shares pieces with earlier builds", metadata: [
            "digest": "\(manifest.digest)", "pieces": "\(reused.pieces)", "bytes": "\(reused.bytes)"])
    }

    private func pumpTransfer(now: ContinuousClock.Instant) throws {
        guard let fetcher = transfer?.fetcher else { return }
        let manifest = fetcher.manifest
        if !fetcher.isComplete, now - transfer!.lastHeldCheck >= .seconds(1) {
            transfer!.lastHeldCheck = now
            if try store.perform({ $0.has(manifest.digest) }) {
                // Committed meanwhile by an upload of the same bytes from this region's workers.
                reporter.report(status(manifest, .complete))
                return endTransfer()
            }
        }
        if fetcher.isComplete {
            do {
                try fetcher.commit()
                let seconds = (now - fetcher.startedAt).inSeconds
                logger.info("replica committed", metadata: [
                    "digest": "\(manifest.digest)", "region": "\(config.region)", "bytes": "\(fetcher.bytesReceived)",
                    "seconds": "\(String(format: "%.2f", seconds))"])
                reporter.report(status(manifest, .complete))
            } catch let closed as BlobStoreMailbox.Closed {
                throw closed
            } catch {
                logger.error("replica failed its final verification", metadata: ["digest": "\(manifest.digest)", "error": "\(error)"])
                reporter.report(status(manifest, .failed, error: "\(error)"))
                // Pieces that each match the manifest but not the digest: the manifest itself is wrong, and
                // the store has dropped them. Anything else (disk trouble) is worth another try.
                if (error as? ArtifactError)?.code != .digestMismatch { retryLater.append((manifest, now + config.retryAfterFailure)) }
            }
            return endTransfer()
        }
        if now - fetcher.lastProgress >= config.stallTimeout {
            let reason = "no piece from \(fetcher.sourceNames.joined(separator: ", ")) for \(config.stallTimeout); retrying after the rest of the queue"
            logger.warning("replication stalled; stepping aside", metadata: ["digest": "\(manifest.digest)", "held": "\(fetcher.piecesHeld)"])
            reporter.report(status(manifest, .pending, done: fetcher.piecesHeld, error: reason))
            retryLater.append((manifest, now + config.retryAfterFailure))
            return endTransfer()
        }
        if fetcher.isHopeless {
            logger.error("replication failed: no source left", metadata: ["digest": "\(manifest.digest)", "reason": "\(fetcher.failureReason)"])
            reporter.report(status(manifest, .failed, done: fetcher.piecesHeld, error: fetcher.failureReason))
            retryLater.append((manifest, now + config.retryAfterFailure))
            return endTransfer()
        }
        try fetcher.pump(now: now)
        if now - transfer!.lastReport >= .seconds(5) {
            transfer!.lastReport = now
            reporter.report(status(manifest, .copying, done: fetcher.piecesHeld))
        }
    }

    private func endTransfer() {
        transfer?.fetcher.close()
        transfer = nil
    }

    // MARK: polling

    private func poll(wait: Duration) throws {
        let poller = ZMQPoller()
        let sources = transfer?.fetcher.sockets ?? []
        for item in sources { _ = try poller.add(item.socket) }
        let reporterIndex = try reporter.socket.map { try poller.add($0) }
        guard !sources.isEmpty || reporterIndex != nil else {
            if let event = try events.next(wait: .timeout(wait)) {
                try apply(event)
                appliedSequence = event.sequence
            }
            return
        }
        let ready = try poller.poll(wait: .timeout(wait))
        if let reporterIndex, ready[reporterIndex].contains(.readable) { try reporter.receive() }
        for (position, item) in sources.enumerated() where ready[position].contains(.readable) {
            try transfer?.fetcher.receive(from: item.source)
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
        transfer?.fetcher.close()
    }
}
