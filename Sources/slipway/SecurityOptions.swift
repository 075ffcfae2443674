import ArgumentParser
import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayWire

/// `--key`, `--trust-dir` and `--insecure` for the coordinator.
struct ServerKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This daemon's secret key file (from `slipway keys new`).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("Folder of the public certificates (*.cert) of every key this daemon admits; files added or removed take effect at the next handshake.",
                               valueName: "dir"))
    var trustDir: String?
    @Flag(help: "Run without CURVE: anyone who can reach the sockets may do anything. For a laptop, never a fleet.")
    var insecure = false

    /// Loads the key and the trust folder; one line naming the flag when they are missing or wrong.
    func load(role: Role, logger: Logger) throws -> DaemonSecurity {
        try loadKeys(key: key, trustDir: trustDir, insecure: insecure, role: role, needsTrust: true, logger: logger)
    }
}

/// `--key`, `--trust-dir`, `--coordinator-key` and `--insecure` for a region controller.
struct RegionKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This region's secret key file (a region key named after the region).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("Folder of the certificates its store and tracker admit (workers, agents, other regions, whose keys are pinned from here).",
                               valueName: "dir"))
    var trustDir: String?
    @Option(help: ArgumentHelp("The coordinator's public key: its certificate file or the 40-character Z85 key.", valueName: "file"))
    var coordinatorKey: String?
    @Flag(help: "Run without CURVE: anyone who can reach the store and tracker may do anything.")
    var insecure = false

    /// The region's security, how it reaches the coordinator, and how it reaches each of `peers`' stores.
    func load(region: String, peers: [String], logger: Logger) throws -> (DaemonSecurity, ClientSecurity, [String: ClientSecurity]) {
        let security = try loadKeys(key: key, trustDir: trustDir, insecure: insecure, role: .region, needsTrust: true, logger: logger)
        if let identity = security.identity, identity.name != region {
            throw ValidationError("--key: is the key of region \(identity.name); this region is --name \(region)")
        }
        let coordinator = try pin(coordinatorKey, flag: "--coordinator-key", role: .coordinator, security)
        var peerSecurity: [String: ClientSecurity] = [:]
        for peer in peers where security.isAuthenticated {
            guard let name = try? Identity(role: .region, name: peer), let key = security.trustedKey(of: name) else {
                throw ValidationError("--peer \(peer): no certificate of region \(peer) in --trust-dir (it is needed to admit that region and to pin its store's key)")
            }
            peerSecurity[peer] = security.client(server: key)
        }
        return (security, coordinator, peerSecurity)
    }
}

/// `--key`, `--coordinator-key`, `--store-key` and `--insecure` for a worker.
struct WorkerKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This worker's secret key file (from `slipway keys new --role worker`).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("The coordinator's public key: its certificate file or the 40-character Z85 key.", valueName: "file"))
    var coordinatorKey: String?
    @Option(help: ArgumentHelp("The public key of the region whose store --store is (its region certificate or Z85 key).", valueName: "file"))
    var storeKey: String?
    @Flag(help: "Run without CURVE, against a coordinator and store that run --insecure.")
    var insecure = false

    /// The worker's security, and how it reaches the coordinator and the store.
    func load(logger: Logger) throws -> (DaemonSecurity, ClientSecurity, ClientSecurity) {
        let security = try loadKeys(key: key, trustDir: nil, insecure: insecure, role: .worker, needsTrust: false, logger: logger)
        return (security, try pin(coordinatorKey, flag: "--coordinator-key", role: .coordinator, security),
                try pin(storeKey, flag: "--store-key", role: .region, security))
    }
}

/// `--key`, `--trust-dir`, `--region-key` and `--insecure` for an agent.
struct AgentKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This machine's secret key file (an agent key named after its machine id).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("Folder of keys its piece server admits at once; it may be empty: the agent keys of its region's trust folder are admitted on the region tracker's word.",
                               valueName: "dir"))
    var trustDir: String?
    @Option(help: ArgumentHelp("Its region's public key (the region certificate or Z85 key): tracker, targets and store.", valueName: "file"))
    var regionKey: String?
    @Option(help: ArgumentHelp("The coordinator's certificate: its target-signing key, which every target must be signed with (repeat it for the next key during a rotation).",
                               valueName: "file"))
    var coordinatorKey: [String] = []
    @Flag(help: "Run without CURVE, against a region that runs --insecure.")
    var insecure = false

    /// The agent's security, how it reaches its region, and the key targets must be signed with.
    func load(machine: String, logger: Logger) throws -> (DaemonSecurity, ClientSecurity, [Certificate.SigningKey]) {
        // Its region's tracker vouches for the agent keys its folder does not hold (docs/protocol.md).
        let security = try loadKeys(key: key, trustDir: trustDir, insecure: insecure, role: .agent, needsTrust: true, vouched: true, logger: logger)
        if let identity = security.identity, identity.name != machine {
            throw ValidationError("--key: is the key of machine \(identity.name); this agent is --machine-id \(machine)")
        }
        let region = try pin(regionKey, flag: "--region-key", role: .region, security)
        guard security.isAuthenticated else {
            guard coordinatorKey.isEmpty else { throw ValidationError("--insecure cannot be combined with --coordinator-key") }
            return (security, region, [])
        }
        guard !coordinatorKey.isEmpty else {
            throw ValidationError("no --coordinator-key: an agent with a key checks every target against the coordinator's signing key (its certificate)")
        }
        let signing = try coordinatorKey.map { path throws -> Certificate.SigningKey in
            let certificate: Certificate
            do throws(AuthError) { certificate = try Certificate.load(path: path) } catch { throw ValidationError("--coordinator-key: \(error.message)") }
            guard certificate.identity.role == .coordinator, let signing = certificate.signing, signing.verifier != nil else {
                throw ValidationError("--coordinator-key \(path): not a coordinator certificate with a signing key")
            }
            return signing.publicPart
        }
        return (security, region, signing)
    }
}

/// `--key`, `--coordinator-key` and `--insecure` for a person or a CI job using the CLI.
struct UserKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Your secret key file (env: SLIPWAY_KEY; default: ~/.config/slipway/key).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("The coordinator's public key: its certificate file or Z85 key (env: SLIPWAY_COORDINATOR_KEY; default: ~/.config/slipway/coordinator.cert).",
                               valueName: "file"))
    var coordinatorKey: String?
    @Flag(help: "Talk to a coordinator that runs --insecure (no CURVE, no key).")
    var insecure = false

    /// The key from `--key`, `SLIPWAY_KEY` or the default path, and the coordinator's likewise; `.plain` with `--insecure`.
    func security() throws -> ClientSecurity {
        if insecure {
            guard key == nil, coordinatorKey == nil else { throw ValidationError("--insecure cannot be combined with --key or --coordinator-key") }
            return .plain
        }
        let folder = (Environment.value("XDG_CONFIG_HOME") ?? ((Environment.value("HOME") ?? "") + "/.config")) + "/slipway"
        let keyPath = key ?? Environment.value("SLIPWAY_KEY") ?? folder + "/key"
        let coordinatorPath = coordinatorKey ?? Environment.value("SLIPWAY_COORDINATOR_KEY") ?? folder + "/coordinator.cert"
        let own: Certificate
        do {
            own = try Certificate.loadSecret(path: keyPath)
        } catch {
            throw ValidationError("no usable key (\(error.message)): pass --key FILE, set SLIPWAY_KEY, or put your secret key file at \(folder)/key; --insecure for a coordinator without authentication")
        }
        do {
            return .curve(own.keyPair, server: try ServerKey.load(coordinatorPath, flag: "--coordinator-key", role: .coordinator))
        } catch {
            throw ValidationError("\(error.message); pass --coordinator-key, set SLIPWAY_COORDINATOR_KEY, or put the coordinator's certificate at \(folder)/coordinator.cert")
        }
    }
}

/// Loads a daemon's own key (and trust folder), announcing how it runs.
private func loadKeys(key: String?, trustDir: String?, insecure: Bool, role: Role, needsTrust: Bool, vouched: Bool = false,
                      logger: Logger) throws -> DaemonSecurity {
    let security: DaemonSecurity
    do {
        security = try DaemonSecurity.load(keyPath: key, trustDirectory: trustDir, insecure: insecure, role: role,
                                           needsTrust: needsTrust, vouched: vouched, logger: logger)
    } catch {
        throw ValidationError(error.message)
    }
    if let identity = security.identity {
        logger.info("authenticated", metadata: ["key": "\(identity.userID)"])
    } else {
        logger.warning("running --insecure: no CURVE, no authentication; anyone who can reach this daemon's sockets may do anything")
    }
    return security
}

/// How a daemon with `security` connects to a server whose key `flag` gives: `.plain` when
/// insecure (and then the flag must be absent), pinned to that key otherwise (and then it must be there).
private func pin(_ value: String?, flag: String, role: Role, _ security: DaemonSecurity) throws -> ClientSecurity {
    guard security.isAuthenticated else {
        guard value == nil else { throw ValidationError("--insecure cannot be combined with \(flag)") }
        return .plain
    }
    guard let value else { throw ValidationError("no \(flag): a daemon with a key pins its server's public key (its certificate file)") }
    do {
        return security.client(server: try ServerKey.load(value, flag: flag, role: role))
    } catch {
        throw ValidationError(error.message)
    }
}
