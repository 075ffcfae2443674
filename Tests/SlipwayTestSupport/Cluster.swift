public import Foundation
public import SlipwayAuth
public import SlipwayWire
#if canImport(Glibc)
import Glibc
#endif

/// Real Slipway daemons for system tests: the built `slipway` executable
/// (`SLIPWAY_TEST_BIN`, set by ops/test), a fresh database, free loopback ports,
/// and a scratch folder. Every process it starts is stopped by `shutdown()`.
public final class Cluster: @unchecked Sendable {
    // @unchecked: used by one test at a time; `processes` is only mutated from that test.
    public static let binary = TestDatabase.environment["SLIPWAY_TEST_BIN"]
    public static var isConfigured: Bool { binary != nil && TestDatabase.isConfigured }

    public let directory: URL
    public let databaseURL: String
    /// The coordinator's intake port; its other sockets follow it.
    public let coordinatorPort: Int
    public let intake: String
    public let dispatch: String
    public let events: String
    public let snapshot: String
    public let store: String
    public let heartbeat: String
    private(set) public var processes: [String: SpawnedProcess] = [:]
    /// Each region process's agent endpoints (tracker ROUTER, target PUB), by process name.
    private(set) public var agentEndpoints: [String: (tracker: String, targets: String)] = [:]
    /// Where each agent serves its pieces, by agent name.
    private(set) public var agentListenEndpoints: [String: String] = [:]
    /// Every daemon runs authenticated: keys are made on first use, into `keys/`,
    /// and the coordinator admits the certificates in `trust/`.
    public let keyDirectory: URL
    public let trustDirectory: URL
    /// The agents' own trust folder, empty: their piece servers admit other agents on the region tracker's word.
    public let agentTrustDirectory: URL
    /// Every daemon runs `--insecure` instead (for tests of what happens past the handshake).
    public let insecure: Bool
    /// The bearer token every daemon's `/metrics` asks for (from ``metricsFlags(_:)``' file), as Prometheus sends it.
    public let metricsToken = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    private var certificates: [Identity: Certificate] = [:]

    /// Creates the folder, database (on `server`, default the shared test server) and endpoints; starts nothing.
    public init(heartbeat: String = "400ms", server: String? = nil, insecure: Bool = false) async throws {
        self.insecure = insecure
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-system-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        databaseURL = try await TestDatabase.create(migrate: false, server: server)
        // The documented layout (intake, dispatch, events, snapshot on consecutive ports), so `--coordinator 127.0.0.1:PORT` finds them all.
        coordinatorPort = freeLoopbackPorts(4)
        intake = "tcp://127.0.0.1:\(coordinatorPort)"
        dispatch = "tcp://127.0.0.1:\(coordinatorPort + 1)"
        events = "tcp://127.0.0.1:\(coordinatorPort + 2)"
        snapshot = "tcp://127.0.0.1:\(coordinatorPort + 3)"
        store = "tcp://127.0.0.1:\(freeLoopbackPort())"
        self.heartbeat = heartbeat
        keyDirectory = directory.appendingPathComponent("keys")
        trustDirectory = directory.appendingPathComponent("trust")
        agentTrustDirectory = directory.appendingPathComponent("agent-trust")
        for folder in [keyDirectory, trustDirectory, agentTrustDirectory] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        try Data((metricsToken + "\n").utf8).write(to: URL(fileURLWithPath: metricsTokenFile))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: metricsTokenFile)
    }

    /// The file holding ``metricsToken``, mode 600.
    public var metricsTokenFile: String { directory.appendingPathComponent("metrics.token").path }

    /// Serve `/metrics` on 127.0.0.1:`port`, guarded by ``metricsToken`` as an authenticated daemon must be.
    public func metricsFlags(_ port: Int) -> [String] {
        ["--metrics-listen", "127.0.0.1:\(port)"] + (insecure ? [] : ["--metrics-token-file", metricsTokenFile])
    }

    /// The key pair of `role`/`name`, made (and, unless `trusted` is false, put in the
    /// coordinator's trust folder) on first use.
    public func certificate(_ role: Role, _ name: String, trusted: Bool = true) throws -> Certificate {
        let identity = try Identity(role: role, name: name)
        if let known = certificates[identity] { return known }
        let made = try Certificate.generate(for: identity)
        try made.write(to: keyDirectory.path)
        if trusted, role != .coordinator { try made.publicPart.write(to: trustDirectory.path) }
        certificates[identity] = made
        return made
    }

    /// The secret key file of `role`/`name` (made on first use).
    public func keyFile(_ role: Role, _ name: String) throws -> String {
        let made = try certificate(role, name)
        return keyDirectory.appendingPathComponent(made.fileStem + ".secret").path
    }

    /// The coordinator's public certificate file.
    public func coordinatorCertificate() throws -> String { try publicCertificate(.coordinator, "main") }

    /// The public certificate file of `role`/`name` (made on first use).
    public func publicCertificate(_ role: Role, _ name: String) throws -> String {
        keyDirectory.appendingPathComponent(try certificate(role, name).fileStem + ".cert").path
    }

    /// How a client with the key of `role`/`name` connects to the coordinator, or to
    /// the region named `region` (its store and tracker).
    public func security(_ role: Role = .operator, _ name: String = "tester", region: String? = nil) throws -> ClientSecurity {
        if insecure { return .plain }
        let server = try region.map { try certificate(.region, $0) } ?? certificate(.coordinator, "main")
        return .curve(try certificate(role, name).keyPair, server: server.publicKey)
    }

    /// A region's key flags; its peers' certificates are made (and trusted) first.
    public func regionKeyFlags(_ region: String, peers: [String]) throws -> [String] {
        if insecure { return ["--insecure"] }
        for peer in peers { _ = try certificate(.region, peer) }
        return try clientKeyFlags(.region, region) + ["--trust-dir", trustDirectory.path]
    }

    /// `--key … --coordinator-key …` for a daemon or CLI call with the key of `role`/`name`.
    public func clientKeyFlags(_ role: Role, _ name: String) throws -> [String] {
        if insecure { return ["--insecure"] }
        return ["--key", try keyFile(role, name), "--coordinator-key", try coordinatorCertificate()]
    }

    public func log(_ name: String) -> URL { directory.appendingPathComponent("\(name).log") }

    public func logText(_ name: String) -> String { (try? String(contentsOf: log(name), encoding: .utf8)) ?? "" }

    @discardableResult
    public func start(_ name: String, _ arguments: [String]) throws -> SpawnedProcess {
        let process = try SpawnedProcess([try require_(Self.binary)] + arguments, log: log(name))
        processes[name] = process
        return process
    }

    @discardableResult
    public func startCoordinator(_ name: String = "coordinator", extra: [String] = []) throws -> SpawnedProcess {
        let keys = insecure ? ["--insecure"] : ["--key", try keyFile(.coordinator, "main"), "--trust-dir", trustDirectory.path]
        return try start(name, ["coordinator", "--database-url", databaseURL, "--intake", intake, "--dispatch", dispatch,
                                "--events", events, "--snapshot", snapshot, "--heartbeat", heartbeat, "--retry-backoff", "100ms"] + keys + extra)
    }

    @discardableResult
    public func startRegion(_ name: String = "region") throws -> SpawnedProcess {
        try startRegion(name, region: "local", store: store)
    }

    /// Starts a region controller following this cluster's coordinator, replicating from `peers`.
    @discardableResult
    public func startRegion(_ name: String, region: String, store: String, peers: [String: String] = [:],
                            storeOf storeName: String? = nil, byAddress: Bool = false, extra: [String] = []) throws -> SpawnedProcess {
        let endpoints = agentEndpoints[storeName ?? name]
            ?? ("tcp://127.0.0.1:\(freeLoopbackPort())", "tcp://127.0.0.1:\(freeLoopbackPort())")
        agentEndpoints[name] = endpoints
        agentEndpoints[storeName ?? name] = endpoints
        return try start(name, ["region", "--name", region, "--store-dir", storeDirectory(storeName ?? name).path, "--store", store,
                                "--tracker", endpoints.tracker, "--targets", endpoints.targets, "--agent-timeout", "5s"]
                  + coordinatorFlags(byAddress ? nil : ["--coordinator-intake": intake, "--coordinator-events": events,
                                                        "--coordinator-snapshot": snapshot])
                  + peers.sorted { $0.key < $1.key }.flatMap { ["--peer", "\($0.key)=\($0.value)"] }
                  + regionKeyFlags(region, peers: Array(peers.keys)) + extra)
    }

    /// Starts an agent for `service` in the region run by process `regionProcess`,
    /// with its folder at ``agentDirectory(_:)`` (kept across restarts of the same name); its
    /// piece server admits the keys of `trustFolder` (default ``agentTrustDirectory``) and the
    /// agent keys its region's tracker vouches for.
    @discardableResult
    public func startAgent(_ name: String, region: String, regionProcess: String, service: String = "hello",
                           trustFolder: URL? = nil, extra: [String] = []) throws -> SpawnedProcess {
        let endpoints = try require_(agentEndpoints[regionProcess])
        let listen = "tcp://127.0.0.1:\(freeLoopbackPort())"
        agentListenEndpoints[name] = listen
        return try start(name, ["agent", "--machine-id", name, "--region", region, "--tracker", endpoints.tracker,
                                "--targets", endpoints.targets, "--listen", listen,
                                "--root", agentDirectory(name).path, "--service", service, "--heartbeat", heartbeat,
                                "--health-grace", "500ms"]
                  + (insecure ? ["--insecure"] : ["--key", try keyFile(.agent, name), "--trust-dir", (trustFolder ?? agentTrustDirectory).path,
                                                  "--region-key", try publicCertificate(.region, region),
                                                  "--coordinator-key", try coordinatorCertificate()])
                  + extra)
    }

    /// The folder of agent `name`.
    public func agentDirectory(_ name: String) -> URL { directory.appendingPathComponent("agent-\(name)") }

    /// What agent `name`'s `service` process printed since it was last started.
    public func serviceOutput(_ name: String, service: String = "hello") -> String {
        (try? String(contentsOf: agentDirectory(name).appendingPathComponent("services/\(service)/output.log"), encoding: .utf8)) ?? ""
    }

    /// The blob store folder of the region process `name`.
    public func storeDirectory(_ name: String) -> URL { directory.appendingPathComponent(name) }

    @discardableResult
    public func startWorker(_ name: String, slots: Int = 1, region: String = "local", store: String? = nil,
                            byAddress: Bool = false, extra: [String] = []) throws -> SpawnedProcess {
        try start(name, ["worker"] + coordinatorFlags(byAddress ? nil : ["--coordinator-dispatch": dispatch]) + ["--store", store ?? self.store, "--region", region, "--slots", String(slots),
                         "--work-dir", directory.appendingPathComponent(name).path, "--heartbeat", heartbeat]
                  + clientKeyFlags(.worker, "builder") + (insecure ? [] : ["--store-key", try publicCertificate(.region, region)]) + extra)
    }

    /// The per-socket flags given, or (nil) the one `--coordinator 127.0.0.1:PORT` they all follow from.
    private func coordinatorFlags(_ sockets: [String: String]?) -> [String] {
        guard let sockets else { return ["--coordinator", "127.0.0.1:\(coordinatorPort)"] }
        return sockets.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
    }

    /// Waits until `name`'s log contains `text`.
    public func waitForLog(_ name: String, _ text: String, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !logText(name).contains(text) {
            guard ContinuousClock.now < deadline else { throw ClusterTimeout(what: "'\(text)' in \(name).log:\n\(logText(name))") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Runs `body` with a fresh cluster and always shuts it down, also when `body` throws.
    /// - Returns: what `body` returned and every daemon's exit status.
    public static func with<T>(heartbeat: String = "400ms", server: String? = nil, insecure: Bool = false,
                               _ body: (Cluster) async throws -> T) async throws -> (T, [String: Int32]) {
        let cluster = try await Cluster(heartbeat: heartbeat, server: server, insecure: insecure)
        do {
            let value = try await body(cluster)
            return (value, await cluster.shutdown())
        } catch {
            for name in cluster.processes.keys.sorted() {
                print("---- \(name).log (tail) ----\n" + cluster.logText(name).split(separator: "\n").suffix(15).joined(separator: "\n"))
            }
            await cluster.shutdown()
            throw error
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL) and drops the database.
    /// - Returns: exit statuses by name.
    @discardableResult
    public func shutdown() async -> [String: Int32] {
        var statuses: [String: Int32] = [:]
        // Every process hears SIGTERM at once, so the waits overlap.
        for process in processes.values { process.signal(SIGTERM) }
        // A daemon may take up to its documented stop limit (15 s: a worker drains its builds for up
        // to 10 s when its coordinator stops at the same time, then tears down): only past that is a kill a failure.
        for (name, process) in processes { statuses[name] = await process.exited(killAfter: .seconds(17)) }
        await TestDatabase.drop(databaseURL)
        if statuses.values.allSatisfy({ $0 == 0 }) { try? FileManager.default.removeItem(at: directory) }
        return statuses
    }
}

public struct ClusterTimeout: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(what)" }
}

/// A git repository made for a test, with a `.slipway/build` recipe.
public enum TestRepository {
    /// Creates a repo whose recipe writes `out/app` containing `content` and the commit.
    /// - Returns: the repo folder and the commit SHA.
    public static func make(in parent: URL, recipe: String? = nil, content: String = "hello") throws -> (URL, String) {
        let repo = parent.appendingPathComponent("repo-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: repo.appendingPathComponent(".slipway"), withIntermediateDirectories: true)
        let build = recipe ?? "#!/bin/sh\necho \"building $SLIPWAY_COMMIT\"\nmkdir -p out\nprintf '\(content) %s\\n' \"$SLIPWAY_COMMIT\" > out/app\necho 'built' >&2\n"
        try build.write(to: repo.appendingPathComponent(".slipway/build"), atomically: true, encoding: .utf8)
        try "out/app\n".write(to: repo.appendingPathComponent(".slipway/artifact"), atomically: true, encoding: .utf8)
        try runShell("cd '\(repo.path)' && git init -q && git -c user.email=t@t -c user.name=t add -A && git -c user.email=t@t -c user.name=t commit -qm v1")
        return (repo, try shellOutput("git -C '\(repo.path)' rev-parse HEAD"))
    }
}
