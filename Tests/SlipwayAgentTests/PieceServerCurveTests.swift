import Foundation
import Logging
@testable import SlipwayAgent
import SlipwayArtifact
import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An authenticated agent's piece server: CURVE with the machine's own key, a
/// ZAP handler admitting its trust folder, and pieces for `agent` keys only.
/// Real sockets on 127.0.0.1, in this process.
@Suite("The agent's piece server over CURVE")
struct PieceServerCurveTests {
    @Test("a trusted agent pinning the server's key is served; a trusted worker or region is refused by role; an untrusted key, a client without CURVE and a wrong pin get nothing")
    func admission() async throws {
        let runner = OwnedThread(name: "curve-pieces")
        defer { runner.shutdown() }
        try await runner.run { try Self.admissionBody() }
    }

    static func admissionBody() throws {
        let (folder, manifest) = try StoreUploadSlotsTests.seededStore(pieces: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let trust = folder.appendingPathComponent("trust").path
        try FileManager.default.createDirectory(atPath: trust, withIntermediateDirectories: true)
        func certificate(_ role: Role, _ name: String, trusted: Bool = true) throws -> Certificate {
            let made = try Certificate.generate(for: Identity(role: role, name: name))
            if trusted { _ = try made.publicPart.write(to: trust) }
            return made
        }
        let (own, peer, worker, region, stranger) = (try certificate(.agent, "m1"), try certificate(.agent, "m2"), try certificate(.worker, "w1"),
                                                     try certificate(.region, "eu"), try certificate(.agent, "m3", trusted: false))
        let logger = Logger(label: "test")
        let security = DaemonSecurity.authenticated(own: own, trust: try TrustDirectory(path: trust, logger: logger))
        let context = try ZMQContext()
        let zap = try security.startZAP(context: context, daemon: "agent", logger: logger)
        defer { zap?.stop() }
        let (server, address) = try PieceHaveTests.server(in: folder, context: context, store: try BlobStore(root: folder.appendingPathComponent("store")),
                                                          security: security, uploadSlots: 0)
        defer { server.socket.close() }

        let clients: [(name: String, security: ClientSecurity)] = [
            ("trusted agent", .curve(peer.keyPair, server: own.publicKey)),
            ("trusted worker", .curve(worker.keyPair, server: own.publicKey)),
            ("trusted region", .curve(region.keyPair, server: own.publicKey)),
            ("untrusted agent", .curve(stranger.keyPair, server: own.publicKey)),
            ("no CURVE", .plain),
            ("trusted agent pinning another key", .curve(peer.keyPair, server: stranger.publicKey)),
        ]
        let sockets = try clients.map { try ZMQSocket.requestDealer(context: context, connectedTo: address, options: $0.security.options) }
        defer { for socket in sockets { socket.close() } }
        for socket in sockets { _ = try StoreUploadSlotsTests.ask(socket, manifest.digest, piece: 0, heedsChoke: false) }

        var answers: [Int: WireMessage] = [:]
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, answers.count < 3 {
            try server.serve()
            server.flush()
            for (index, socket) in sockets.enumerated() where answers[index] == nil {
                if let frames = try socket.receive(wait: .never, maxFrames: 4) { answers[index] = try WireCodec().decode(frames) }
            }
            usleep(5_000)
        }
        let served = try #require(answers[0], "the trusted agent got no answer")
        #expect(served.type == .pieceData)
        #expect(try served.body(as: Slipway_V1_PieceData.self).index == 0)
        for index in [1, 2] {
            let refused = try #require(answers[index], "\(clients[index].name) got no answer")
            #expect(refused.type == .errorReply)
            #expect(try refused.body(as: Slipway_V1_ErrorReply.self).code == .permissionDenied, "\(clients[index].name)")
        }
        // Those the handshake turned away never reached the server: give them a moment more, then nothing.
        for _ in 0..<40 {
            try server.serve()
            server.flush()
            usleep(5_000)
        }
        for index in 3..<clients.count {
            #expect(try sockets[index].receive(wait: .never, maxFrames: 4) == nil, "\(clients[index].name)")
        }
        #expect(server.piecesServed == 1)
    }
}
