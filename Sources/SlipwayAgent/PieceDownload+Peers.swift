import SlipwayCore
import Foundation
import Logging
import SlipwayArtifact
import SlipwayAuth
import SlipwayProto
import SlipwayWire
import SlipwayMetrics

/// What a download learns of its peers and tells them: the tracker's lists,
/// greetings and `PieceHave`s, interest, and peers dropped or heard from again.
extension PieceDownload {
    /// A peer's `PieceHave`, on this download's own connection to it (so the sender is
    /// the machine at the address the tracker gave, whatever the message says).
    func learned(_ have: Slipway_V1_PieceHave, from machine: String) {
        guard have.digest == digest, var picker, endpoints[machine] != nil, !requests.isCoolingDown(machine),
              !picker.banned.contains(machine) else { return }
        // Pieces it is receiving count as held: asked for in blocks, it sends them on as they arrive.
        picker.peer(machine, adds: have.complete ? Array(0..<picker.pieceCount) : (have.pieces + have.arriving).map(Int.init))
        self.picker = picker
    }

    /// Takes in the tracker's peer list.
    func update(peers list: Slipway_V1_PeerList) {
        guard list.digest == digest, var picker else { return }
        peersKnown = true
        let now = ContinuousClock.now
        requests.endCoolDowns(now: clock(now))
        for peer in list.peers where SafeText.isName(peer.machineID, max: 128) && !picker.banned.contains(peer.machineID)
            && !requests.isCoolingDown(peer.machineID) {
            guard let endpoint = try? Endpoint(parsing: peer.endpoint, origin: "peer \(SafeText.printable(peer.machineID))") else { continue }
            let key = CurveKey(bytes: [UInt8](peer.curveKey))
            if let known = endpoints[peer.machineID], known != endpoint || peerKeys[peer.machineID] != key {
                // Moved or re-keyed: what it was asked over the old connection will never be answered.
                disconnect(peer.machineID, picker: &picker)
                requests.unchoked(by: peer.machineID, picker: &picker)
            }
            endpoints[peer.machineID] = endpoint
            peerKeys[peer.machineID] = key
            let pieces = peer.complete ? Set(0..<picker.pieceCount) : Set(peer.have.map(Int.init))
            picker.peer(peer.machineID, has: pieces)
            if !peer.complete { swarm.insert(peer.machineID) }
        }
        let members = swarm.sorted()
        picker.seedStripe = (members.firstIndex(of: machineID)!, members.count)
        self.picker = picker
        let listed = list.peers.map(\.machineID).filter { endpoints[$0] != nil && !requests.isCoolingDown($0) && !picker.banned.contains($0) }
        let again = greetedAt.map { now - $0 >= Self.greetingInterval } ?? true
        if again { greetedAt = now }
        greet(listed.filter { connections[.peer($0)] == nil } + (again ? connections.keys.compactMap(\.machine) : []))
    }

    /// Tells each of `machines` what is held here (connecting first, within
    /// ``maxPeerConnections``), which also asks it for its pieces as it verifies them.
    func greet(_ machines: [String]) {
        guard !machines.isEmpty else { return }
        var hello = Slipway_V1_PieceHave()
        hello.digest = digest
        hello.machineID = machineID
        hello.pieces = Array(heldPieces.prefix(PieceServer.indicesPerHave))
        hello.heedsChoke = true
        let message = codec.encode(WireMessage(hello, sender: sender))
        for machine in Set(machines) where connections[.peer(machine)] != nil || connections.count < Self.maxPeerConnections {
            _ = try? connection(.peer(machine)).send(message, wait: .never)
        }
    }

    /// Closes the connection to `machine` and forgets what was asked over it (``PieceRequests/disconnect(_:picker:)``).
    func disconnect(_ machine: String, picker: inout PiecePicker) {
        requests.disconnect(machine, picker: &picker)
        closeConnection(.peer(machine))
    }

    /// Any answer from `machine` shows it alive (``PieceRequests/heard(from:piece:now:)``),
    /// but a piece's first runs do not: a slow peer is heard from with the last run, which
    /// times the whole piece (the time the slow-request rule learns from).
    func heard(from machine: String, _ message: WireMessage) {
        guard requests.slow[machine] != nil else { return }
        let header = message.type == .pieceData ? try? message.body(as: Slipway_V1_PieceData.self) : nil
        if let header, !endsItsPiece(header, payloadCount: message.payload?.count ?? 0) { return }
        requests.heard(from: machine, piece: header.map { Int($0.index) }, now: clock(.now))
    }

    /// Tells each connected peer whether it holds pieces this download lacks, when
    /// that changed and every ``PeerInterest/refresh`` (``PeerInterest``).
    func tellInterest(_ picker: PiecePicker, now: ContinuousClock.Instant) {
        for (machine, wants) in interest.due(connected: connections.keys.compactMap(\.machine), picker: picker, now: clock(now)) {
            var message = Slipway_V1_PieceInterest()
            message.digest = digest
            message.interested = wants
            if (try? connections[.peer(machine)]?.send(codec.encode(WireMessage(message, sender: sender)), wait: .never)) == true {
                interest.told(machine, interested: wants)
            }
        }
    }
}
