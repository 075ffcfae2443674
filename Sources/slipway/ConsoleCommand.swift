import ArgumentParser
import Foundation
import Logging
import SlipwayAuth
import SlipwayConsole
import SlipwayCore
import SlipwayHTTP
import SlipwayThreads
import SlipwayWire

struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Run the web console and its JSON API: builds, artifacts, services, deploys and rollouts, live.",
        discussion: """
            The console keeps no state: it asks the coordinator, under its own operator key, for everything it \
            shows and does, recording the signed-in user as the actor. Users come from --users (lines written by \
            `slipway console-users`); any number of consoles sharing --session-key-file can stand behind one load \
            balancer. See docs/console.md.
            """)

    @Option(help: ArgumentHelp("Where the console listens for HTTP (IPV4:PORT).", valueName: "host:port")) var listen = "127.0.0.1:7780"
    @Option(help: ArgumentHelp("The coordinator (HOST[:PORT]; env: SLIPWAY_COORDINATOR; default 127.0.0.1:7700).", valueName: "address"))
    var coordinator: String?
    @Option(help: ArgumentHelp("The users file: `user NAME ROLE BCRYPT` and `token NAME ROLE sha256:HEX` lines; re-read when it changes.", valueName: "file"))
    var users: String
    @Option(help: ArgumentHelp("A file of at least 32 random bytes that signs sign-in cookies; consoles behind one load balancer share it (default: a new key, so sessions end at restart).",
                               valueName: "file"))
    var sessionKeyFile: String?
    @Option(help: "How long a sign-in lasts.", transform: parseDuration) var sessionLifetime = DurationArgument(argument: "12h")!
    @Flag(help: "Mark cookies Secure: the console is reached over HTTPS (through a proxy that terminates TLS).") var secureCookies = false
    @Option(help: ArgumentHelp("The console's secret key file: an operator key (`slipway keys new --role operator --name console`).", valueName: "file"))
    var key: String?
    @Option(help: ArgumentHelp("The coordinator's public key: its certificate file or Z85 key.", valueName: "file")) var coordinatorKey: String?
    @Flag(help: "Talk to a coordinator that runs --insecure (no CURVE, no key).") var insecure = false
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        do { _ = try MetricsEndpoint.parse(listen) } catch { throw ValidationError("--listen: \(error)") }
        _ = try coordinatorAddress(coordinator)
        guard sessionLifetime.duration >= .seconds(60) else { throw ValidationError("--session-lifetime must be at least 1m") }
        if insecure, key != nil || coordinatorKey != nil { throw ValidationError("--insecure cannot be combined with --key or --coordinator-key") }
        if !insecure, key == nil || coordinatorKey == nil {
            throw ValidationError("the console needs --key (its operator key) and --coordinator-key, or --insecure for a coordinator without authentication")
        }
        try daemon.checkMetricsExposure(insecure: insecure, servesMetricsAnyway: true)
    }

    func run() async throws {
        daemon.bootstrapLogging()
        let logger = daemon.logger("console")
        let address = try coordinatorAddress(coordinator)
        let (host, port) = try MetricsEndpoint.parse(listen)
        let security: ClientSecurity
        do {
            security = try clientSecurity(logger: logger)
        } catch {
            daemonStartFailed("console", error)
        }
        let sessionKey: [UInt8]
        if let sessionKeyFile {
            do { sessionKey = try secretFileBytes(sessionKeyFile, flag: "--session-key-file", minimum: 32) } catch { daemonStartFailed("console", error) }
        } else {
            logger.warning("no --session-key-file: sign-ins end when this console restarts and do not carry to other consoles")
            sessionKey = SessionSigner.randomKey()
        }
        let access: ConsoleAccess
        do {
            access = try ConsoleAccess(usersPath: users, sessionKey: sessionKey, sessionLifetime: sessionLifetime.duration, logger: logger)
        } catch {
            daemonStartFailed("console", ValidationError("--users \(users): \(error)"))
        }
        let hub = LiveEventHub()
        let gateway: CoordinatorGateway
        do {
            gateway = try CoordinatorGateway(endpoint: "\(address.intake)", security: security)
        } catch {
            daemonStartFailed("console", error)
        }
        let metricsToken: MetricsToken?
        do { metricsToken = try daemon.metricsToken() } catch { daemonStartFailed("console", error) }
        let app = ConsoleApp(gateway: gateway, access: access, hub: hub, secureCookies: secureCookies, metrics: DaemonRunner.metrics,
                             metricsToken: metricsToken, logger: logger)
        let services: [any DaemonService] = [
            HTTPDaemonService(name: "http", host: host, port: Int(port), flag: "--listen", logger: logger) { app.router() },
            LiveEventHub.service(events: address.events, snapshot: address.snapshot, security: security, hub: hub),
        ]
        await DaemonRunner.run("console", services: services, options: daemon, insecure: insecure)
    }

    /// The console's key pinned to the coordinator's; `.plain` with --insecure.
    private func clientSecurity(logger: Logger) throws -> ClientSecurity {
        guard !insecure, let key, let coordinatorKey else {
            logger.warning("running --insecure: no CURVE towards the coordinator")
            return .plain
        }
        let own: Certificate
        do { own = try Certificate.loadSecret(path: key) } catch { throw ValidationError("--key: \(error.message)") }
        guard own.identity.role == .operator else {
            throw ValidationError("--key: is a \(own.identity.role.rawValue) key; the console needs an operator key (it deploys and reads the audit log)")
        }
        logger.info("authenticated", metadata: ["key": "\(own.identity.userID)"])
        do {
            return .curve(own.keyPair, server: try ServerKey.load(coordinatorKey, flag: "--coordinator-key", role: .coordinator))
        } catch {
            throw ValidationError(error.message)
        }
    }
}

struct ConsoleUsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console-users",
        abstract: "Write the console's users file: add a user (password from stdin), make a bearer token, or list accounts.",
        subcommands: [Add.self, Token.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user (or replace its line); the password is read from the first line of stdin and stored as a bcrypt hash.")
        @Option(help: "The users file (created if missing, mode 0600).") var file: String
        @Option(help: "The user's name.") var name: String
        @Option(help: "viewer or operator.") var role: String
        @Option(help: "bcrypt cost (10–16).") var cost: UInt8 = 12

        func run() throws {
            guard let role = ConsoleRole(rawValue: role) else { throw ValidationError("--role: viewer or operator") }
            guard ConsoleUsers.isValidName(name) else { throw ValidationError("--name: 1–64 of a-z A-Z 0-9 . _ @ -") }
            guard (10...16).contains(cost) else { throw ValidationError("--cost: 10…16") }
            guard let password = readLine(strippingNewline: true), password.utf8.count >= 8, password.utf8.count <= 72 else {
                throw ValidationError("give the password on stdin: 8 to 72 bytes (bcrypt reads no more)")
            }
            try UsersFileEditor.replace(name: name, line: ConsoleUsers.userLine(name: name, role: role, password: password, cost: cost), in: file)
            print("user \(name) (\(role.rawValue)) written to \(file)")
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a bearer token for scripts: its hash goes into the file, the token is printed once.")
        @Option(help: "The users file (created if missing, mode 0600).") var file: String
        @Option(help: "The token's name (shown as the actor of what it does).") var name: String
        @Option(help: "viewer or operator.") var role: String

        func run() throws {
            guard let role = ConsoleRole(rawValue: role) else { throw ValidationError("--role: viewer or operator") }
            guard ConsoleUsers.isValidName(name) else { throw ValidationError("--name: 1–64 of a-z A-Z 0-9 . _ @ -") }
            let (token, line) = ConsoleUsers.newToken(name: name, role: role)
            try UsersFileEditor.replace(name: name, line: line, in: file)
            print(token)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the accounts of a users file (never a secret).")
        @Option(help: "The users file.") var file: String

        func run() throws {
            let users: ConsoleUsers
            do { users = try ConsoleUsers.load(path: file) } catch { throw ValidationError("\(file): \(error)") }
            for account in users.accounts {
                let kind = if case .password = account.secret { "user" } else { "token" }
                print("\(kind) \(account.name) \(account.role.rawValue)")
            }
        }
    }
}

/// Replaces or appends one account's line in a users file, atomically.
enum UsersFileEditor {
    static func replace(name: String, line: String, in path: String) throws {
        // Only a file that is not there starts afresh; one that cannot be read is an error, never overwritten.
        let existing: String
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read \(path) as UTF-8 text; it is left as it is")
            }
            do { _ = try ConsoleUsers(parsing: text) } catch { throw ValidationError("\(path): \(error); fix it first") }
            existing = text
        } else {
            existing = "# slipway console users: KIND NAME ROLE SECRET\n"
        }
        var lines = existing.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        if lines.last == "" { lines.removeLast() }
        lines.removeAll { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.count > 1 && !line.hasPrefix("#") && fields[1] == name
        }
        lines.append(line)
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((lines.joined(separator: "\n") + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}
