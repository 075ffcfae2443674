import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// Downloads the rollouts want: started, pumped, finished into the store or failed.
extension AgentLoop {
    func startDownload(_ digest: String) {
        guard downloads[digest] == nil, let seedEndpoint else { return }
        downloads[digest] = PieceDownload(digest: digest, machineID: config.machineID, store: store, context: context, sender: config.id,
                                          seedEndpoint: seedEndpoint, seedSecurity: config.regionSecurity, peerSecurity: config.security, logger: logger,
                                          maxBytesPerSecond: config.maxDownloadBytesPerSecond, seedOnly: config.seedOnly)
        downloadStarted[digest] = .now
        lastPeerList[digest] = nil
    }

    func wanted() -> Set<String> {
        let now = ContinuousClock.now
        // One in progress stays wanted until it is finished (and logged), though the store already has it.
        let ahead = prefetches.digests.filter { downloads[$0] != nil } + prefetches.due(now: now).filter { !store.has($0) }
        return Set(slots.values.compactMap { if case .downloading(let digest) = $0.rollout.phase { digest } else { nil } }).union(ahead)
    }

    func pumpDownloads(now: ContinuousClock.Instant) throws {
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

    func finish(_ digest: String, _ download: PieceDownload, now: ContinuousClock.Instant) {
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

    func failDownload(_ digest: String, _ download: PieceDownload, reason: String, now: ContinuousClock.Instant) {
        download.close()
        downloads[digest] = nil
        logger.error("download failed", metadata: ["digest": "\(digest)", "error": "\(reason)"])
        prefetches.failed(digest, now: now)
        for name in slots.keys.sorted() where slots[name]!.rollout.phase == .downloading(digest) {
            perform(name) { $0.failed(digest, reason: "download failed: \(reason)") }
            slots[name]!.retryAt = now + .seconds(10)
        }
    }
}
