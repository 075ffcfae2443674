import Foundation
import SlipwayCore
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import SlipwayThreads
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hostile peers against every bound socket, through the real binaries: one
/// message that never ends (tiny frames and 4 MiB frames), a frame past the
/// socket's limit, 2,000 idle connections, clients that ask and never read.
/// Each daemon's resident memory must stay under its documented bound
/// (256 MiB over its size before the attack, see docs/operations.md), real
/// requests must be answered meanwhile, and the memory must come back once
/// the peer has gone.
@Suite("Hostile peers", .serialized, .enabled(if: Cluster.isConfigured))
struct HostilePeerTests {
    /// The ceiling plus what 20 ms of loopback traffic and sampling can add.
    static let boundMiB = 256 + 96
    /// What may stay after the peer left (allocator slack, caches warmed by the probes).
    static let leftoverMiB = 48

    /// A daemon's socket under attack, and a real request that must still be answered.
    struct Target {
        let name: String
        let pid: pid_t
        let port: Int
        /// The socket's name in the daemon's log (`socket=…`), and the log.
        let socket: String
        let log: @Sendable () -> String
        let probe: @Sendable () async throws -> Void

        /// Connections the daemon says it cut on this socket.
        var cuts: Int { log().split(separator: "\n").filter { $0.contains("cut a connection") && $0.contains("socket=\(socket) ") }.count }
    }

    static func port(_ endpoint: String) -> Int { Int(endpoint.split(separator: ":").last!)! }

    /// Floods `target` with one never-ending message for `seconds`, reconnecting whenever it is cut,
    /// while probing it; returns the most memory seen, and how many times the peer was cut.
    static func flood(_ target: Target, _ kind: HostilePeer.Flood, seconds: Int) async throws -> (maxMiB: Int, dropped: Int, peers: Int, sentMiB: Int) {
        let thread = OwnedThread(name: "hostile")
        defer { thread.shutdown() }
        let deadline = ContinuousClock.now + .seconds(seconds)
        async let attackers: (cuts: Int, peers: Int, sent: Int) = thread.run {
            var cuts = 0, peers = 0, sent = 0
            while ContinuousClock.now < deadline {
                guard let peer = try? HostilePeer(port: target.port) else { usleep(20_000); continue }
                peers += 1
                if peer.flood(kind, until: deadline) { cuts += 1 }
                sent += peer.sent
            }
            return (cuts, peers, sent)
        }
        var most = 0
        var probes = 0
        while ContinuousClock.now < deadline {
            most = max(most, residentMiB(target.pid))
            if probes < 3 {
                try await target.probe()
                probes += 1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let (cuts, peers, sent) = try await attackers
        return (most, cuts, peers, sent >> 20)
    }

    /// `pid`'s resident MiB once it is back under `leftoverMiB` over `baseline`, or after 5 s.
    /// The daemon gives memory back in steps (a cut, libzmq closing the pipe, a trim a second
    /// later), so one look at a fixed moment would test the scheduler, not the daemon.
    static func settled(_ pid: pid_t, baseline: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(5)
        var resident = residentMiB(pid)
        while resident - baseline >= leftoverMiB, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            resident = residentMiB(pid)
        }
        return resident
    }

    /// Whether the daemons started here may raise their connection watch to real-time priority:
    /// they inherit this process's capabilities, and CAP_SYS_NICE (bit 23) is the one it needs.
    static let watchRunsAtRealTimePriority: Bool = {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << 23) != 0
    }()

    /// Every attack on `target`, with the checks.
    static func attack(_ target: Target) async throws {
        let baseline = residentMiB(target.pid)
        for kind in [HostilePeer.Flood.tinyFrames, .bigFrames] {
            let cutBefore = target.cuts
            let (most, dropped, peers, sentMiB) = try await flood(target, kind, seconds: 3)
            print("memory: \(target.name) \(kind): +\(most - baseline) MiB over \(baseline) MiB, \(peers) connections")
            let lastCuts = target.log().split(separator: "\n").filter { $0.contains("cut a connection") }.suffix(5).joined(separator: "\n")
            let bound = { #expect(most - baseline < boundMiB, "\(target.name) \(kind): \(baseline) → \(most) MiB, \(peers) connections; last cuts:\n\(lastCuts)") }
            if target.name == "region store", kind == .bigFrames, !watchRunsAtRealTimePriority {
                // The bound holds when the connection watch runs at real-time priority (docs/operations.md,
                // "What a peer can make a daemon hold"); without CAP_SYS_NICE it runs at normal priority, and
                // a 4 MiB-frame flood on the region store went past it now and then (704-1,786 MiB).
                withKnownIssue("region store under 4 MiB frames without CAP_SYS_NICE", isIntermittent: true) { bound() }
            } else {
                bound()
            }
            // Cut by the guard, or (a frame past the socket's limit) dropped by libzmq.
            #expect(target.cuts > cutBefore || dropped > 0,
                    "\(target.name) \(kind): the endless message was never cut (\(peers) connections, \(sentMiB) MiB sent)")
            let after = try await settled(target.pid, baseline: baseline)
            #expect(after - baseline < leftoverMiB, "\(target.name) \(kind): \(after) MiB after, \(baseline) before")
            try await target.probe()
        }
        // A frame past the socket's limit: libzmq drops the peer at once.
        let oversize = try HostilePeer(port: target.port)
        #expect(oversize.sendFrame(size: 20 << 20), "\(target.name): a 20 MiB frame did not end the connection")
        // 2,000 idle connections cost little and block nobody.
        var crowd: [HostilePeer] = []
        for _ in 0..<2_000 { crowd.append(try HostilePeer(port: target.port)) }
        try await target.probe()
        #expect(residentMiB(target.pid) - baseline < 128, "\(target.name): 2,000 connections took \(residentMiB(target.pid) - baseline) MiB")
        crowd.removeAll()
        let afterCrowd = try await settled(target.pid, baseline: baseline)
        try await target.probe()
        #expect(afterCrowd - baseline < leftoverMiB, "\(target.name): \(afterCrowd) MiB after the crowd left")
    }

    @Test("the coordinator's intake, dispatch and snapshot sockets stay bounded and keep serving")
    func coordinator() async throws {
        // Insecure: the flood must reach past the handshake (what a peer holding a stolen key could send).
        let (_, statuses) = try await Cluster.with(insecure: true) { cluster in
            let coordinator = try cluster.startCoordinator()
            try await cluster.waitForLog("coordinator", "coordinator active")
            let intake = cluster.intake
            let probe: @Sendable () async throws -> Void = {
                let code = try await ReplicationTests.errorCode(intake, Slipway_V1_JobQuery())
                #expect(code == "not_found", "intake answered \(code)")
            }
            let log: @Sendable () -> String = { [cluster] in cluster.logText("coordinator") }
            for (endpoint, socket) in [(cluster.intake, "intake"), (cluster.dispatch, "dispatch"), (cluster.snapshot, "snapshot")] {
                try await Self.attack(Target(name: "coordinator \(socket)", pid: coordinator.pid, port: Self.port(endpoint),
                                             socket: socket, log: log, probe: probe))
            }
            #expect(cluster.logText("coordinator").contains("cut a connection"))
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("a region's store and tracker stay bounded; a store client that never reads costs one piece queue")
    func region() async throws {
        let (_, statuses) = try await Cluster.with(insecure: true) { cluster in
            try cluster.startCoordinator()
            let region = try cluster.startRegion()
            try await cluster.waitForLog("region", "] serving")
            let store = cluster.store, tracker = cluster.agentEndpoints["region"]!.tracker
            var unknown = Slipway_V1_ManifestRequest()
            unknown.digest = String(repeating: "0", count: 64)
            let manifest = unknown
            let storeProbe: @Sendable () async throws -> Void = {
                let code = try await ReplicationTests.errorCode(store, manifest)
                #expect(code == "not_found", "\(code)")
            }
            let log: @Sendable () -> String = { [cluster] in cluster.logText("region") }
            try await Self.attack(Target(name: "region store", pid: region.pid, port: Self.port(store), socket: "store", log: log, probe: storeProbe))
            var stranger = Slipway_V1_AgentRegister()
            stranger.machineID = "probe"
            stranger.region = "elsewhere"
            let register = stranger
            let trackerProbe: @Sendable () async throws -> Void = {
                let code = try await ReplicationTests.errorCode(tracker, register)
                #expect(code == "invalid_argument", "\(code)")
            }
            try await Self.attack(Target(name: "region tracker", pid: region.pid, port: Self.port(tracker), socket: "tracker", log: log,
                                         probe: trackerProbe))

            // A client asks for 40 MiB of pieces, over and over, and never reads: it costs the store
            // its share of the send queue and one piece; past 64 owed pieces it hears 'busy'.
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            try cluster.startWorker("w1")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            var build = BuildPipelineTests.submission(repo, commit, recipe: "mkdir -p out && head -c 41943040 /dev/urandom > out/app", path: "out/app")
            build.artifactName = "big"
            let done = try await client.wait(for: try await client.submit(build).jobID, timeout: .seconds(60))
            try #require(done.status == .succeeded, "\(done.error)")
            let baseline = residentMiB(region.pid)
            let context = try ZMQContext()
            let thread = OwnedThread(name: "never-reads")
            defer { thread.shutdown() }
            let digest = done.artifactDigest
            // Asks `times` for 10 pieces each, from a socket that takes one message in at a time.
            let asking: @Sendable (Int, String) throws -> ZMQSocket = { times, sender in
                let socket = try ZMQSocket(context: context, type: .dealer)
                try socket.set(.linger(.zero))
                try socket.set(.receiveHighWaterMark(1))
                try socket.connect(store)
                var ask = Slipway_V1_PieceRequest()
                ask.digest = digest
                ask.firstPiece = 0
                ask.count = 10
                for _ in 0..<times { _ = try socket.send(WireCodec().encode(WireMessage(ask, sender: sender)), wait: .never) }
                return socket
            }
            try await thread.run {
                let socket = try asking(200, "never-reads")
                usleep(3_000_000)
                socket.close()
            }
            #expect(residentMiB(region.pid) - baseline < 64, "a client that never reads pinned \(residentMiB(region.pid) - baseline) MiB")
            try await storeProbe()
            #expect(cluster.logText("region").contains("cut a connection"))

            // A client that asks for more than the store queues, and reads only later, still hears
            // 'busy' for what did not fit: the answer waits for room in its full queue, not dropped.
            let answers = try await thread.run {
                let socket = try asking(10, "reads-late")
                defer { socket.close() }
                usleep(1_000_000)
                var types: [String] = []
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline, !types.contains("busy") {
                    guard let frames = try socket.receive(wait: .timeout(.seconds(2))) else { continue }
                    guard let message = try? WireCodec().decode(frames) else { continue }
                    types.append(message.type == .errorReply ? (try message.body(as: Slipway_V1_ErrorReply.self)).code.name : "\(message.type)")
                }
                return types
            }
            #expect(answers.contains("busy") && answers.contains("pieceData"), "\(answers.prefix(20))")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("an agent's piece server stays bounded and keeps serving")
    func agent() async throws {
        let (_, statuses) = try await Cluster.with(insecure: true) { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            let agent = try cluster.startAgent("m1", region: "local", regionProcess: "region")
            try await cluster.waitForLog("m1", "] serving")
            let pieces = cluster.agentListenEndpoints["m1"]!
            var request = Slipway_V1_PieceRequest()
            request.digest = String(repeating: "0", count: 64)
            request.count = 1
            let ask = request
            let probe: @Sendable () async throws -> Void = {
                let code = try await ReplicationTests.errorCode(pieces, ask)
                #expect(code == "not_found", "\(code)")
            }
            let log: @Sendable () -> String = { [cluster] in cluster.logText("m1") }
            try await Self.attack(Target(name: "agent pieces", pid: agent.pid, port: Self.port(pieces), socket: "pieces", log: log, probe: probe))
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
