import Foundation
import Logging
@testable import SlipwayAgent
import SlipwayArtifact
import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An agent's piece server tells the peers that asked what it holds, then each
/// piece as it arrives: real sockets on 127.0.0.1, in this process.
@Suite("Pieces told as they arrive")
struct PieceHaveTests {
    static let digest = String(repeating: "d", count: 64)

    /// A server for machine m1 on a free loopback port, and its address.
    static func server(in folder: URL, context: ZMQContext, store: BlobStore? = nil, security: DaemonSecurity = .insecure,
                       uploadSlots: Int = 4) throws -> (PieceServer, String) {
        let store = try store ?? BlobStore(root: folder.appendingPathComponent("store"))
        for _ in 0..<20 {
            let port = scratchPort()
            let address = "tcp://127.0.0.1:\(port)"
            if let server = try? PieceServer(context: context, endpoint: Endpoint(parsing: address, origin: "test"), store: store,
                                             machineID: "m1", sender: "agent-m1", logger: Logger(label: "test"), security: security,
                                             uploadSlots: uploadSlots) {
                return (server, address)
            }
        }
        throw CancellationError()
    }

    /// Runs `body` with a server for machine m1, its context and address, and a client connected to it.
    static func withServer(_ body: (PieceServer, ZMQContext, String, ZMQSocket) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("piece-have-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let context = try ZMQContext()
        let (server, address) = try server(in: folder, context: context)
        let client = try ZMQSocket.requestDealer(context: context, connectedTo: address)
        defer { client.close() }
        try body(server, context, address, client)
    }

    static func have(_ digest: String = digest, machine: String = "m2", pieces: [UInt32] = []) -> [[UInt8]] {
        var have = Slipway_V1_PieceHave()
        have.digest = digest
        have.machineID = machine
        have.pieces = pieces
        return WireCodec().encode(WireMessage(have, sender: "agent-\(machine)"))
    }

    /// The next `PieceHave` the client gets within `wait`, or nil.
    static func heard(_ client: ZMQSocket, wait: Duration = .seconds(10)) throws -> Slipway_V1_PieceHave? {
        let deadline = ContinuousClock.now + wait
        repeat {
            // Blocking calls belong to an OwnedThread: this one looks, then sleeps.
            if let frames = try client.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
                return try WireCodec().decode(frames).body(as: Slipway_V1_PieceHave.self)
            }
            if wait > .zero { usleep(5_000) }
        } while ContinuousClock.now < deadline
        return nil
    }

    /// Flushes, as the agent loop does every turn (a pipe holds one message), until the client hears
    /// something or `wait` passed (long where something must come: a loaded machine is slow).
    static func flushed(_ server: PieceServer, _ client: ZMQSocket, wait: Duration = .seconds(10)) throws -> Slipway_V1_PieceHave? {
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            server.flush()
            if let have = try heard(client, wait: .milliseconds(20)) { return have }
        }
        return nil
    }

    /// Serves until `done` holds (or 10 s passed).
    static func serve(_ server: PieceServer, until done: () -> Bool, holdings: (String) -> PieceHolding?) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !done(), ContinuousClock.now < deadline {
            try server.serve(holdings: holdings)
            usleep(5_000)
        }
    }

    @Test("a peer that says what it holds hears what is held here, then each new piece and the end; nothing of other artifacts")
    func toldAsTheyArrive() throws {
        try Self.withServer { server, _, _, client in
            _ = try client.send(Self.have(pieces: [1]), wait: .never)
            try Self.serve(server, until: { server.subscriberCount(Self.digest) == 1 }) { $0 == Self.digest ? PieceHolding(pieces: [0, 3]) : nil }
            let first = try #require(try Self.heard(client))
            #expect(first.digest == Self.digest && first.machineID == "m1" && first.pieces == [0, 3] && !first.complete)
            #expect(server.subscriberCount(Self.digest) == 1)

            server.announce(Self.digest, PieceHolding(pieces: [5]))
            server.announce(String(repeating: "e", count: 64), PieceHolding(pieces: [9]))
            #expect(try Self.flushed(server, client)?.pieces == [5])
            server.announce(Self.digest, PieceHolding(complete: true))
            let end = try #require(try Self.flushed(server, client))
            #expect(end.complete && end.pieces.isEmpty)
            #expect(try Self.flushed(server, client, wait: .seconds(2)) == nil, "nothing about an artifact it did not ask about")
        }
    }

    @Test("a have for an artifact not here subscribes nobody; a malformed one is dropped; subscribers per artifact are bounded")
    func bounded() throws {
        try Self.withServer { server, context, address, client in
            _ = try client.send(Self.have("not-a-digest"), wait: .never)
            _ = try client.send(Self.have(machine: "bad name!"), wait: .never)
            _ = try client.send(Self.have(), wait: .never)
            try Self.serve(server, until: { server.rejected == 2 }) { _ in nil }
            #expect(server.rejected == 2)
            #expect(server.subscriberCount(Self.digest) == 0)
            #expect(try Self.heard(client, wait: .milliseconds(300)) == nil)

            var peers: [ZMQSocket] = []
            defer { for peer in peers { peer.close() } }
            for index in 0..<(PieceServer.maxSubscribers + 6) {
                let peer = try ZMQSocket.requestDealer(context: context, connectedTo: address)
                peers.append(peer)
                _ = try peer.send(Self.have(machine: "p\(index)"), wait: .never)
            }
            var answered = 0
            try Self.serve(server, until: {
                answered += peers.filter { (try? Self.heard($0, wait: .zero)) != nil }.count
                return answered >= PieceServer.maxSubscribers
            }) { _ in PieceHolding(complete: true) }
            // Those that made way before their answer left go unanswered: they greet again later.
            #expect(answered >= PieceServer.maxSubscribers, "the greetings were answered")
            #expect(server.subscriberCount(Self.digest) == PieceServer.maxSubscribers, "the oldest made way")
        }
    }
}
