import ArgumentParser
import Crypto
import Foundation
import SlipwayAgent

/// What choosing pieces costs an agent per piece, for artifacts of many pieces
/// (10 GB cut by content is about 40,000), against the work every piece costs
/// anyway: its SHA-256, in the same run. One agent, `peers` peers that hold
/// everything, one request in flight per peer as agents run; the agent's loop
/// asks the picker every turn, and most turns bring nothing new. With
/// `idlePeers`, the agent also knows peers that hold only what it has already
/// (a tenth of the pieces, as from a resumed download): connected, never
/// busy, never of use, as most of a large swarm's peers are to a late agent.
struct PickerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "picker",
        abstract: "Piece-picking CPU per piece at tens of thousands of pieces vs SHA-256 of a piece.")

    @Option(help: "Pieces in the artifact.") var pieces = 40_000
    @Option(help: "Peers holding every piece.") var peers = 16
    @Option(help: "Peers holding only what the agent has already (a tenth of the pieces).") var idlePeers = 0
    @Option(help: "Loop turns per piece that bring nothing new.") var idleTurns = 4
    @Option(help: "Pieces between two peer-list refreshes.") var refreshEvery = 100
    @Option(help: "Piece size for the SHA-256 baseline, KiB.") var pieceKib = 256

    func validate() throws {
        guard (1...1_000_000).contains(pieces), (1...1_000).contains(peers), (0...1_000).contains(idlePeers), idleTurns >= 0,
              refreshEvery >= 1, pieceKib >= 1 else {
            throw ValidationError("--pieces 1…1000000, --peers 1…1000, --idle-peers 0…1000, --idle-turns ≥ 0, --refresh-every ≥ 1, --piece-kib ≥ 1")
        }
    }

    func run() throws {
        var random = SystemRandomNumberGenerator()
        let resumed = idlePeers > 0 ? Set(0..<pieces / 10) : []
        var picker = PiecePicker(pieceCount: pieces, held: resumed, perPeerLimit: 1, seedLimit: 1)
        let everything = Set(0..<pieces)
        let names = (0..<peers).map { "peer-\($0)" }
        for name in names { picker.peer(name, has: everything) }
        for index in 0..<idlePeers { picker.peer("idle-\(index)", has: resumed) }
        let fetched = pieces - resumed.count
        var inFlight: [PiecePicker.Request] = []
        var delivered = 0
        let start = ContinuousClock.now
        while !picker.isComplete {
            inFlight += picker.next(using: &random)
            for _ in 0..<idleTurns { inFlight += picker.next(using: &random) }
            guard !inFlight.isEmpty else { throw ValidationError("the picker asked for nothing with \(pieces - picker.held.count) pieces missing") }
            let arrived = inFlight.removeFirst()
            _ = picker.received(arrived.piece, from: arrived.source, valid: true)
            delivered += 1
            if delivered % refreshEvery == 0 { for name in names { picker.peer(name, has: everything) } }
        }
        let picking = elapsed(since: start) / Double(fetched)

        let piece = [UInt8](repeating: 0x5a, count: pieceKib << 10)
        let rounds = 200
        let hashStart = ContinuousClock.now
        var sink: UInt8 = 0
        for _ in 0..<rounds { sink ^= Array(SHA256.hash(data: piece))[0] }
        let hashing = elapsed(since: hashStart) / Double(rounds)
        say(String(format: "%d pieces (%d fetched), %d peers and %d idle ones, %d idle turns per piece: picking %.1f µs per piece; SHA-256 of a %d KiB piece %.1f µs (%d)",
                   pieces, fetched, peers, idlePeers, idleTurns, picking * 1e6, pieceKib, hashing * 1e6, sink & 1))
        say(String(format: "ratio picking / hashing per piece = %.3f (goal: well under 1, so picking never bounds an agent)", picking / hashing))
    }
}
