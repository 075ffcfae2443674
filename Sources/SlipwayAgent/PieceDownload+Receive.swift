import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayWire
import SlipwayMetrics

/// What comes back: the manifest, pieces (verified before they are kept),
/// refusals, chokes and haves; and the commit once every piece is here.
extension PieceDownload {
    /// Reads every message waiting from `source`.
    func receive(from source: PieceSource, now: ContinuousClock.Instant) throws {
        guard let socket = connections[source] else { return }
        while let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: { rejected += 1 }) {
            guard let message = try? codec.decode(frames) else {
                rejected += 1
                continue
            }
            if case .peer(let machine) = source { heard(from: machine, message) }
            switch message.type {
            case .artifactManifest where source == .seed && picker == nil:
                try accept(manifest: message)
            case .pieceData:
                try accept(piece: message, from: source)
                // A banned source's socket is closed by now.
                if connections[source] == nil { return }
            case .pieceHave:
                guard case .peer(let machine) = source, let have = try? message.body(as: Slipway_V1_PieceHave.self) else {
                    rejected += 1
                    continue
                }
                learned(have, from: machine)
            case .pieceChoke where source == .seed:
                guard var picker, let choke = try? message.body(as: Slipway_V1_PieceChoke.self), choke.digest == digest else {
                    rejected += 1
                    continue
                }
                // The store's upload slots: wait for its unchoke, then ask afresh; peers meanwhile.
                logger.debug("store slot", metadata: ["digest": "\(digest)", "choked": "\(choke.choked)", "seconds": "\(clock(now))"])
                if choke.choked {
                    storeChokes += 1
                    SlipwayMetrics.choke("received")
                    restStore(refusing: message.envelope.inReplyTo, picker: &picker, now: now)
                } else {
                    requests.storeUnchoked(picker: &picker)
                }
                self.picker = picker
            case .pieceChoke:
                guard case .peer(let machine) = source, var picker, let choke = try? message.body(as: Slipway_V1_PieceChoke.self),
                      choke.digest == digest else {
                    rejected += 1
                    continue
                }
                if choke.choked {
                    SlipwayMetrics.choke("received")
                    // In reply to a request: that one was not taken. Others it took are still coming.
                    let refused = outstanding.settle(message.envelope.inReplyTo, from: source)
                    requests.choked(by: machine, refused: refused, now: clock(now), picker: &picker)
                } else {
                    requests.unchoked(by: machine, picker: &picker)
                }
                self.picker = picker
            case .errorReply where source == .seed:
                // The store could not serve a request (busy, or it lacks the piece): the piece
                // goes back to missing, and the store rests as if it had choked this download,
                // rather than being asked again at once or waited on until the request times out.
                guard var picker, let refused = outstanding.piece(answering: message.envelope.inReplyTo, from: .seed) else { continue }
                dropAssembly(of: refused, from: .seed)
                restStore(refusing: message.envelope.inReplyTo, picker: &picker, now: now)
                self.picker = picker
                logger.info("the store could not serve a piece; asking peers, and the store again later", metadata: [
                    "digest": "\(digest)", "piece": "\(refused)",
                    "error": "\(SafeText.printable((try? message.body(as: Slipway_V1_ErrorReply.self))?.message ?? "", limit: 200))"])
            case .errorReply:
                guard case .peer(let machine) = source, var picker else { continue }
                let code = (try? message.body(as: Slipway_V1_ErrorReply.self))?.code
                if code == .busy, let piece = outstanding.settle(message.envelope.inReplyTo, from: source) {
                    // Its upload is taken, or a piece it was passing on stopped arriving: ask
                    // another holder; it is back with the next peer list.
                    dropAssembly(of: piece, from: source)
                    requests.declined(piece, by: machine, picker: &picker)
                    self.picker = picker
                    continue
                }
                // "Not here": its piece set changed (it restarted, or collected the artifact).
                requests.notHeld(by: machine, picker: &picker)
                self.picker = picker
                closeConnection(source)
                return
            default:
                rejected += 1
            }
            if isComplete { return }
        }
    }

    /// The store turned this download away (a choke, or an error answering
    /// `requestID`): ``PieceRequests/storeRested(refused:now:picker:)``.
    func restStore(refusing requestID: String, picker: inout PiecePicker, now: ContinuousClock.Instant) {
        requests.storeRested(refused: outstanding.settle(requestID, from: .seed), now: clock(now), picker: &picker)
    }

    func accept(manifest message: WireMessage) throws {
        let manifest = try message.body(as: Slipway_V1_ArtifactManifest.self)
        guard manifest.digest == digest, (try? Manifest.validate(manifest)) != nil else {
            logger.warning("the store sent a manifest for another artifact or a malformed one", metadata: ["digest": "\(digest)"])
            return
        }
        _ = try store.begin(manifest)
        let held = store.receivedPieces(digest)
        self.manifest = manifest
        self.manifestAt = .now
        self.resumedPieces = held.count
        // One request per peer (measured: two, even only to peers that gave this
        // downloader a slot, were no faster). Alone with the store, two requests in
        // flight keep its link busy between pieces.
        picker = PiecePicker(pieceCount: manifest.pieceSha256.count, held: held, perPeerLimit: 1, seedLimit: seedOnly ? 2 : 1)
        requests = requests.forPieces((0..<manifest.pieceSha256.count).map { Manifest.pieceLength(manifest, index: $0) })
        let taken = store.takeReused(digest)
        if taken.pieces > 0 {
            SlipwayMetrics.piecesReused(by: "agent", pieces: taken.pieces, bytes: taken.bytes)
            logger.info("download shares pieces with earlier builds", metadata: [
                "digest": "\(digest)", "reused": "\(taken.pieces)", "bytes": "\(taken.bytes)", "pieces": "\(manifest.pieceSha256.count)"])
        }
        if held.count > taken.pieces {
            logger.info("download resumed", metadata: ["digest": "\(digest)", "held": "\(held.count)", "pieces": "\(manifest.pieceSha256.count)"])
        }
        try commitIfComplete()
    }

    func accept(piece message: WireMessage, from source: PieceSource) throws {
        guard var picker, let header = try? message.body(as: Slipway_V1_PieceData.self), header.digest == digest else {
            rejected += 1
            return
        }
        let index = Int(header.index)
        var valid = true, reason = "it does not match its manifest digest"
        if header.blocks {
            switch try take(run: header, payload: message.payload ?? [], from: source, asked: outstanding.piece(answering: message.envelope.inReplyTo, from: source),
                            held: picker.held.contains(index)) {
            case .more: return
            case .complete: break
            case .corrupt(let why): (valid, reason) = (false, why)
            }
        }
        let asked = outstanding.settle(message.envelope.inReplyTo, from: source)
        requests.arrived(index, from: source, asked: asked, now: clock(.now), picker: &picker)
        if !header.blocks, !picker.held.contains(index), (0..<picker.pieceCount).contains(index) {
            do {
                try store.store(digest, index: index, bytes: message.payload ?? [])
            } catch let error as ArtifactError where error.code == .pieceMismatch {
                valid = false
            }
        }
        switch picker.received(index, from: source, valid: valid) {
        case .accepted:
            arrived.append(index)
            // Other sources' copies in assembly are moot; peers are served this one from disk.
            if !assemblies.isEmpty { assemblies = assemblies.filter { $0.value.index != index } }
            if source == .seed { fromSeed += 1 } else { fromPeers += 1 }
            SlipwayMetrics.pieceDownloaded(from: source == .seed ? "seed" : "peer")
            logger.debug("piece", metadata: ["digest": "\(digest)", "piece": "\(index)", "source": "\(source)",
                                             "held": "\(picker.held.count)", "seconds": "\((.now - startedAt).inSeconds)"])
        case .rejected:
            rejected += 1
            if case .peer(let machine) = source {
                logger.warning("peer served a corrupt piece; banned for this artifact", metadata: [
                    "digest": "\(digest)", "peer": "\(machine)", "piece": "\(index)", "reason": "\(reason)"])
                requests.banned(machine)
                closeConnection(source)
            } else {
                logger.error("the regional store served a corrupt piece", metadata: [
                    "digest": "\(digest)", "piece": "\(index)", "reason": "\(reason)"])
            }
        case .ignored:
            break
        }
        self.picker = picker
        try commitIfComplete()
    }

    /// Takes one run of a piece sent in blocks (``BlockAssembly``): `more` until its
    /// last run, which stores the piece if it is still needed. A piece held meanwhile
    /// (another source was faster) is no longer assembled; its runs only count down to
    /// the last, which answers the request. A piece nobody asked this source for
    /// (`asked` is the piece its request named) is not assembled, and the runs of a
    /// piece no longer assembled (not asked for, found corrupt, or its request timed
    /// out) are dropped quietly: its request was settled when that happened.
    func take(run header: Slipway_V1_PieceData, payload: [UInt8], from source: PieceSource, asked: Int?,
              held: Bool) throws -> BlockAssembly.Outcome {
        let index = Int(header.index)
        if held || !(0..<(picker?.pieceCount ?? 0)).contains(index) {
            if assemblies[source]?.index == index { assemblies[source] = nil }
            return endsItsPiece(header, payloadCount: payload.count) ? .complete(index: index) : .more
        }
        if header.firstBlock == 0 {
            // The store may send one of the request's alternatives instead of the piece it names.
            guard asked == index || (source == .seed && asked != nil) else {
                assemblies[source] = nil
                return .more
            }
            do {
                assemblies[source] = try BlockAssembly(header: header, of: manifest!)
            } catch {
                assemblies[source] = nil
                return .corrupt(error.description)
            }
        }
        guard assemblies[source]?.index == index, var assembly = assemblies.removeValue(forKey: source) else { return .more }
        let outcome = assembly.take(firstBlock: Int(header.firstBlock), payload: payload)
        switch outcome {
        case .more:
            if header.firstBlock == 0 { startedArriving.append(index) }
            assemblies[source] = assembly
        case .complete:
            try store.store(assembly.piece()!)
        case .corrupt:
            break
        }
        return outcome
    }

    /// Whether a `PieceData` carries the end of its piece: the whole piece, or its last run.
    func endsItsPiece(_ header: Slipway_V1_PieceData, payloadCount: Int) -> Bool {
        !header.blocks || UInt64(header.firstBlock) * UInt64(manifest?.blockSize ?? 0) + UInt64(payloadCount) >= UInt64(header.length)
    }

    /// Forgets what `source` had sent of `piece` (its request was refused or timed out).
    func dropAssembly(of piece: Int, from source: PieceSource) {
        if assemblies[source]?.index == piece { assemblies[source] = nil }
    }

    /// Commits once every piece is here and the store's digest queue has checked
    /// the whole artifact; until then the loop goes on serving peers.
    func commitIfComplete() throws {
        guard picker?.isComplete == true, !isComplete, try store.commitIfVerified(digest) else { return }
        isComplete = true
        close()
    }
}
