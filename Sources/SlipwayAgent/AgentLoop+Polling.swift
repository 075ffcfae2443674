import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import SlipwayMetrics

/// One wait on every socket the agent reads, and the orderly shutdown.
extension AgentLoop {
    func poll(wait: ZMQWait) throws {
        let poller = ZMQPoller()
        _ = try poller.add(server.socket)
        _ = try poller.add(targets)
        if let tracker { _ = try poller.add(tracker) }
        // New connections wake the loop too: the guard must know them at once.
        _ = try poller.add(server.connections.events)
        // A handshake waiting for the tracker's word on its key wakes the loop to ask.
        if let vouches { _ = poller.add(fileDescriptor: vouches.wakeDescriptor) }
        var sources: [(digest: String, source: PieceSource, index: Int)] = []
        for (digest, download) in downloads {
            for (source, socket) in download.sockets { sources.append((digest, source, try poller.add(socket))) }
        }
        let ready = try poller.poll(wait: wait)
        if !ready[0].isEmpty {
            try server.serve { digest in
                if store.has(digest) { return PieceHolding(complete: true) }
                return downloads[digest].map { PieceHolding(pieces: $0.heldSet, arriving: $0.arrivingSet) }
            }
        } else {
            server.flush()
        }
        if !ready[1].isEmpty { try handleTargets() }
        if tracker != nil, !ready[2].isEmpty { try handleTracker() }
        var received = false
        for entry in sources where !ready[entry.index].isEmpty {
            guard let download = downloads[entry.digest] else { continue }
            received = true
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
        // And blocks just received go on to the peers waiting for them now, not next turn.
        if told || received { server.flush() }
    }

    func shutdown() {
        for slot in slots.values { slot.runner.stop() }
        for download in downloads.values { download.close() }
        tracker?.close()
        targets?.close()
        server?.socket.close()
        logger.info("agent stopped", metadata: ["pieces_served": "\(server?.piecesServed ?? 0)", "dropped": "\(rejected + (server?.rejected ?? 0))"])
    }
}
