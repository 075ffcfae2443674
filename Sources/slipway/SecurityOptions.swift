import ArgumentParser
import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayWire

/// `--key`, `--trust-dir` and `--insecure` for a daemon that binds sockets.
struct ServerKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This daemon's secret key file (from `slipway keys new`).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("Folder of the public certificates (*.cert) of every key this daemon admits; files added or removed take effect at the next handshake.",
                               valueName: "dir"))
    var trustDir: String?
    @Flag(help: "Run without CURVE: anyone who can reach the sockets may do anything. For a laptop, never a fleet.")
    var insecure = false

    /// Loads the key and the trust folder; one line naming the flag when they are missing or wrong.
    func load(role: Role, daemon: String, logger: Logger) throws -> DaemonSecurity {
        let security: DaemonSecurity
        do {
            security = try DaemonSecurity.load(keyPath: key, trustDirectory: trustDir, insecure: insecure, role: role,
                                               needsTrust: true, logger: logger)
        } catch {
            throw ValidationError(error.message)
        }
        announce(security, daemon: daemon, logger: logger)
        return security
    }
}

/// `--key`, `--coordinator-key` and `--insecure` for a daemon that only connects to the coordinator.
struct ClientKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This daemon's secret key file (from `slipway keys new`).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("The coordinator's public key: its certificate file or the 40-character Z85 key.", valueName: "file"))
    var coordinatorKey: String?
    @Flag(help: "Run without CURVE, against a coordinator that runs --insecure.")
    var insecure = false

    /// This daemon's key and how it connects to the coordinator.
    func load(role: Role, daemon: String, logger: Logger) throws -> (DaemonSecurity, ClientSecurity) {
        do throws(AuthError) {
            if insecure, coordinatorKey != nil { throw AuthError("--insecure cannot be combined with --coordinator-key") }
            let security = try DaemonSecurity.load(keyPath: key, trustDirectory: nil, insecure: insecure,
                                                   role: role, needsTrust: false, logger: logger)
            announce(security, daemon: daemon, logger: logger)
            guard security.isAuthenticated else { return (security, .plain) }
            guard let coordinatorKey else {
                throw AuthError("no --coordinator-key: a daemon with a key pins the coordinator's public key (its certificate file)")
            }
            return (security, security.client(server: try ServerKey.load(coordinatorKey, flag: "--coordinator-key", role: .coordinator)))
        } catch {
            throw ValidationError(error.message)
        }
    }
}

/// One warning at start, and the `slipway_insecure` gauge, for a daemon run `--insecure`.
private func announce(_ security: DaemonSecurity, daemon: String, logger: Logger) {
    SlipwayMetrics.insecure(daemon: daemon, !security.isAuthenticated)
    if security.isAuthenticated {
        logger.info("authenticated", metadata: ["key": "\(security.identity.map(\.userID) ?? "")"])
    } else {
        logger.warning("running --insecure: no CURVE, no authentication; anyone who can reach this daemon's sockets may do anything")
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
            own = try Certificate.load(path: keyPath)
        } catch {
            throw ValidationError("no usable key (\(error.message)): pass --key FILE, set SLIPWAY_KEY, or put your secret key file at \(folder)/key; --insecure for a coordinator without authentication")
        }
        guard own.secretKey != nil else { throw ValidationError("\(keyPath): holds no secret key (it is a public certificate)") }
        do {
            return .curve(own.keyPair, server: try ServerKey.load(coordinatorPath, flag: "--coordinator-key", role: .coordinator))
        } catch {
            throw ValidationError("\(error.message); pass --coordinator-key, set SLIPWAY_COORDINATOR_KEY, or put the coordinator's certificate at \(folder)/coordinator.cert")
        }
    }
}
