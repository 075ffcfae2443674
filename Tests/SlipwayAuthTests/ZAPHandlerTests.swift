import Foundation
import Logging
import SlipwayAuth
import SlipwayThreads
import SlipwayWire
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real CURVE sockets over TCP on 127.0.0.1, with the ZAP handler and a trust folder.
@Suite("ZAP handler: who gets in")
struct ZAPHandlerTests {
    static let logger = Logger(label: "slipway.test.auth")

    /// A CURVE server (ROUTER, domain "slipway") that echoes each request's user id, and a way to ask it.
    final class Bench {
        let folder: String
        let trustFolder: String
        let context: ZMQContext
        let server: Certificate
        let router: ZMQSocket
        let endpoint: String

        init() throws {
            folder = try CertificateTests.folder()
            trustFolder = folder + "/trusted"
            try FileManager.default.createDirectory(atPath: trustFolder, withIntermediateDirectories: true)
            context = try ZMQContext()
            server = try Certificate.generate(for: try Identity(role: .coordinator, name: "c1"))
            router = try ZMQSocket(context: context, type: .router)
            try router.set(.linger(.zero))
            try router.set(.curveServer(true))
            try router.set(.curveSecretKey(server.secretKey!))
            try router.set(.zapDomain("slipway"))
            try router.set(.zapEnforceDomain(true))
            try router.bind("tcp://127.0.0.1:0")
            endpoint = try router.lastEndpoint()
        }

        /// A key pair; with `trusted`, its certificate goes into the trust folder.
        func key(_ name: String, trusted: Bool) throws -> Certificate {
            let certificate = try Certificate.generate(for: try Identity(role: .worker, name: name))
            try certificate.write(to: folder)
            if trusted { try grant(certificate) }
            return certificate
        }

        func grant(_ certificate: Certificate) throws {
            try FileManager.default.copyItem(atPath: folder + "/\(certificate.fileStem).cert", toPath: trustFolder + "/\(certificate.fileStem).cert")
        }

        func revoke(_ certificate: Certificate) throws {
            try FileManager.default.removeItem(atPath: trustFolder + "/\(certificate.fileStem).cert")
        }

        /// Connects a client (CURVE with `key`, or plain without), sends one request and
        /// returns the user id the server saw, or nil if the server did not get it within `wait`:
        /// long for a request that must get through (a loaded machine may take seconds for the
        /// handshake), short for one that must not.
        func ask(as key: Certificate?, serverKey: CurveKey? = nil, wait: Duration = .seconds(10)) throws -> String? {
            let client = try ZMQSocket(context: context, type: .dealer)
            defer { client.close() }
            try client.set(.linger(.zero))
            if let key {
                try client.set(.curvePublicKey(key.publicKey))
                try client.set(.curveSecretKey(key.secretKey!))
                try client.set(.curveServerKey(serverKey ?? server.publicKey))
            }
            try client.connect(endpoint)
            _ = try client.send([Array("hello".utf8)], wait: .timeout(.seconds(2)))
            guard let request = try router.receive(wait: .timeout(wait)) else { return nil }
            let seen = router.peerUserID ?? "(none)"
            _ = try router.send([request[0], Array(seen.utf8)], wait: .timeout(.seconds(2)))
            let reply = try client.receive(wait: .timeout(wait))
            #expect(reply == [Array(seen.utf8)])
            return seen
        }

        /// How long a request that must not get through is given.
        static let refusedWait: Duration = .milliseconds(1_500)

        func close() {
            router.close()
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    @Test("only keys in the trust folder get a request through; the user id is role/name; grants and revocations need no restart")
    func admission() async throws {
        let thread = OwnedThread(name: "zap-test")
        defer { thread.shutdown() }
        try await thread.run {
            let bench = try Bench()
            defer { bench.close() }
            let handler = try ZAPHandler(context: bench.context,
                                         domains: ["slipway": try TrustDirectory(path: bench.trustFolder, logger: Self.logger)],
                                         daemon: "test", logger: Self.logger)
            defer { handler.stop() }
            let trusted = try bench.key("w1", trusted: true)
            let stranger = try bench.key("w2", trusted: false)

            #expect(try bench.ask(as: trusted) == "worker/w1")
            #expect(try bench.ask(as: stranger, wait: Bench.refusedWait) == nil, "a key outside the trust folder got in")
            #expect(try bench.ask(as: nil, wait: Bench.refusedWait) == nil, "a client without CURVE got in")
            #expect(try bench.ask(as: trusted, serverKey: stranger.publicKey, wait: Bench.refusedWait) == nil, "a client pinned to the wrong server key got in")

            try bench.grant(stranger)
            #expect(try bench.ask(as: stranger) == "worker/w2")
            try bench.revoke(trusted)
            #expect(try bench.ask(as: trusted, wait: Bench.refusedWait) == nil, "a revoked key got in")
            #expect(try bench.ask(as: stranger) == "worker/w2")
        }
    }

    @Test("a second handler on the same context is refused; once stopped, nobody gets in")
    func oneHandler() async throws {
        let thread = OwnedThread(name: "zap-test")
        defer { thread.shutdown() }
        try await thread.run {
            let bench = try Bench()
            defer { bench.close() }
            let trust = try TrustDirectory(path: bench.trustFolder, logger: Self.logger)
            let handler = try ZAPHandler(context: bench.context, domains: ["slipway": trust], daemon: "test", logger: Self.logger)
            let second = #expect(throws: AuthError.self) {
                _ = try ZAPHandler(context: bench.context, domains: ["slipway": trust], daemon: "test", logger: Self.logger)
            }
            #expect(second?.message.contains(ZAPHandler.endpoint) == true)
            let trusted = try bench.key("w1", trusted: true)
            #expect(try bench.ask(as: trusted) == "worker/w1")
            handler.stop()
            #expect(try bench.ask(as: trusted, wait: Bench.refusedWait) == nil, "with the handler gone, a client still got in")
        }
    }

    /// Keys a test's stand-in tracker was asked about.
    final class Asked: Sendable {
        let keys = Mutex<[CurveKey]>([])
    }

    /// The lines a logger wrote, with their metadata.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var text: String { lines.withLock { $0.joined(separator: "\n") } }

        struct Handler: LogHandler {
            let sink: Lines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                sink.lines.withLock { $0.append("\(event.message) \(event.metadata ?? [:])") }
            }
        }

        var logger: Logger { Logger(label: "slipway.test.zap") { _ in Handler(sink: self) } }
    }

    @Test("where the folder takes the tracker's word, an agent key it vouches for gets in after its answer; others are refused")
    func vouched() async throws {
        let vouches = try VouchedKeys()
        let agent = try Certificate.generate(for: try Identity(role: .agent, name: "m2"))
        let refused = try Certificate.generate(for: try Identity(role: .agent, name: "m3"))
        let unanswered = try Certificate.generate(for: try Identity(role: .agent, name: "m4"))
        let asked = Asked()
        let lines = Lines()
        // The agent loop and its tracker, in one: woken by a question, it vouches for m2, refuses m3, never answers for m4.
        let tracker = OwnedThread(name: "tracker")
        let stop = StopSignal()
        defer {
            stop.stop()
            tracker.shutdown()
        }
        _ = tracker.execute {
            while !stop.isStopped {
                var entry = pollfd(fd: vouches.wakeDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, 20)
                for key in vouches.questions() {
                    asked.keys.withLock { $0.append(key) }
                    if key == agent.publicKey { vouches.answered(key, vouchedFor: agent.identity) }
                    if key == refused.publicKey { vouches.answered(key, vouchedFor: nil) }
                }
            }
        }
        let thread = OwnedThread(name: "zap-test")
        defer { thread.shutdown() }
        let inFolder = try await thread.run {
            let bench = try Bench()
            defer { bench.close() }
            let trust = try TrustDirectory(path: bench.trustFolder, vouches: vouches, logger: Self.logger)
            // Every refusal logged at once, with its reason and key.
            let handler = try ZAPHandler(context: bench.context, domains: ["slipway": trust], daemon: "test", summaryInterval: .zero,
                                         logger: lines.logger)
            defer { handler.stop() }
            let inFolder = try bench.key("w1", trusted: true)
            #expect(try bench.ask(as: inFolder) == "worker/w1", "the folder's keys need no word from the tracker")
            #expect(try bench.ask(as: agent) == "agent/m2")
            #expect(try bench.ask(as: agent) == "agent/m2", "and again, on the verdict kept")
            #expect(try bench.ask(as: refused, wait: Bench.refusedWait) == nil, "a key the tracker refused got in")
            #expect(lines.text.contains("untrusted_key") && lines.text.contains(refused.publicKey.z85), "\(lines.text)")
            #expect(try bench.ask(as: unanswered, wait: Bench.refusedWait) == nil, "a key nobody vouched for got in")
            #expect(!lines.text.contains("vouch_timeout"), "refused before the wait ended")
            // Past the wait, the handshake is refused, not left hanging.
            let deadline = ContinuousClock.now + ZAPHandler.waitLimit + .seconds(3)
            while !lines.text.contains("vouch_timeout"), ContinuousClock.now < deadline { usleep(50_000) }
            #expect(lines.text.contains("vouch_timeout"), "\(lines.text)")
            #expect(try bench.ask(as: nil, wait: Bench.refusedWait) == nil)
            return inFolder.publicKey
        }
        let keys = asked.keys.withLock { $0 }
        #expect(!keys.contains(inFolder), "a key of the folder was asked about")
        #expect(Set(keys).isSuperset(of: [agent.publicKey, refused.publicKey, unanswered.publicKey]), "\(keys)")
        #expect(keys.filter { $0 == agent.publicKey }.count == 1, "a trusted key was asked about again within its freshness")
    }

    @Test("a trust folder that is missing or not a folder is an error naming it")
    func badFolder() throws {
        let error = #expect(throws: AuthError.self) { try TrustDirectory(path: "/nonexistent/slipway-trust", logger: Self.logger) }
        #expect(error?.message.hasPrefix("/nonexistent/slipway-trust") == true)
    }
}
