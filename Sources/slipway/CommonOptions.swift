import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayHTTP
import SlipwayMetrics
import SlipwayStore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `5s`, `500ms`, `2m`, `1h` on the command line.
struct DurationArgument: ExpressibleByArgument {
    let duration: Duration

    init?(argument: String) {
        guard let duration = DurationText.parse(argument) else { return nil }
        self.duration = duration
    }

    var defaultValueDescription: String { "\(duration)" }
}

/// Parses a duration flag, saying the one syntax when `text` breaks it: a
/// number with its unit (bare numbers are refused: seconds or minutes?).
func parseDuration(_ text: String) throws -> DurationArgument {
    guard let duration = DurationArgument(argument: text) else {
        throw ValidationError("'\(SafeText.printable(text, limit: 40))' is not a duration: a number and a unit, e.g. 500ms, 90s, 15m, 1h, 7d")
    }
    return duration
}

/// `key=value` on the command line.
struct LabelArgument: ExpressibleByArgument {
    let key: String
    let value: String

    init?(argument: String) {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else { return nil }
        key = String(argument[..<equals])
        value = String(argument[argument.index(after: equals)...])
    }
}

/// Options every daemon takes.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Heartbeat interval, both ways (e.g. 5s, 500ms).")
    var heartbeat: DurationArgument = DurationArgument(argument: "5s")!

    @Option(help: ArgumentHelp("Read settings from this TOML file's section for the daemon; flags and SLIPWAY_<DAEMON>_<FLAG> variables override it.",
                               valueName: "file"))
    var config: String?

    @Option(help: "Serve Prometheus metrics on GET /metrics at IPV4:PORT (e.g. 127.0.0.1:9100; default: off).")
    var metricsListen: String?

    @Option(help: ArgumentHelp("Serve /metrics only to requests with `Authorization: Bearer` and this file's token (mode 600, at least 32 characters; re-read on every scrape). Needed with --metrics-listen, unless --insecure.",
                               valueName: "file"))
    var metricsTokenFile: String?

    func validate() throws {
        if let metricsListen {
            do { _ = try MetricsEndpoint.parse(metricsListen) } catch { throw ValidationError("--metrics-listen: \(error)") }
        }
        guard heartbeat.duration >= .milliseconds(100) else {
            throw ValidationError("--heartbeat must be at least 100ms (liveness is 3 heartbeats)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical")
        }
    }

    /// The token `/metrics` asks for, checked now; nil without `--metrics-token-file`.
    func metricsToken() throws -> MetricsToken? {
        guard let metricsTokenFile else { return nil }
        do { return try MetricsToken(path: metricsTokenFile) } catch { throw ValidationError("--metrics-token-file \(error)") }
    }

    /// Refuses `--metrics-listen` without `--metrics-token-file`,
    /// unless the daemon runs `insecure` anyway: call from the daemon's `validate()`.
    /// The file itself is read when the daemon starts, as key files are (`config check` runs elsewhere).
    /// `servesMetricsAnyway`: the console, whose own port has `/metrics` too.
    func checkMetricsExposure(insecure: Bool, servesMetricsAnyway: Bool = false) throws {
        guard let metricsListen else {
            if metricsTokenFile != nil, !servesMetricsAnyway {
                throw ValidationError("--metrics-token-file guards --metrics-listen's /metrics, and there is no --metrics-listen")
            }
            return
        }
        do { try MetricsEndpoint.checkExposure(listen: metricsListen, tokenGiven: metricsTokenFile != nil, insecure: insecure) } catch {
            throw ValidationError("--metrics-listen \(error)")
        }
    }

    /// The daemon's logger: `slipway.NAME`.
    func logger(_ name: String) -> Logger { Logger(label: "slipway.\(name)") }

    func bootstrapLogging() {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}


enum ProcessIdentity {
    /// The host name, reduced to characters valid in ids (`host` if none are left).
    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        return host.isEmpty ? "host" : host
    }

    /// `host-pid-abcd`: unique per process start, valid as a routing id.
    static func make(_ role: String) -> String {
        let host = hostName()
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return "\(role)-\(host)-\(getpid())-\(suffix)"
    }
}

/// `--intake tcp://…` and every other endpoint flag: parsed once, the reason
/// shown when it is not an endpoint.
func endpoint(_ text: String) throws -> Endpoint {
    try Endpoint(parsing: text)
}

/// The coordinator `--coordinator` names (HOST[:PORT] or tcp://HOST:PORT), else
/// `SLIPWAY_COORDINATOR`, else 127.0.0.1:7700; a malformed one is bad input naming where it came from.
func coordinatorAddress(_ flag: String?) throws -> CoordinatorAddress {
    do {
        if let flag { return try CoordinatorAddress(parsing: flag, origin: "--coordinator") }
        if let variable = Environment.value("SLIPWAY_COORDINATOR") {
            return try CoordinatorAddress(parsing: variable, origin: "SLIPWAY_COORDINATOR")
        }
        return CoordinatorAddress(host: "127.0.0.1")
    } catch {
        throw ValidationError("\(error)")
    }
}

/// The bytes of a secret file given by `flag` (its first 4 KiB); one line naming the flag
/// when it cannot be read or is shorter than `minimum` bytes.
func secretFileBytes(_ path: String, flag: String, minimum: Int) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path), data.count >= minimum else {
        throw ValidationError("\(flag) \(path): not a readable file of at least \(minimum) bytes")
    }
    return Array(data.prefix(4_096))
}

/// Refuses a database URL libpq cannot parse, naming the flag.
func checkDatabaseURL(_ url: String) throws {
    do {
        try PGConnection.checkSyntax(url)
    } catch {
        throw ValidationError("--database-url: not a PostgreSQL URL: \(error.message)")
    }
}

/// A daemon that cannot even build its services: one line, exit 1.
func daemonStartFailed(_ command: String, _ error: any Error) -> Never {
    FileHandle.standardError.write(Data("slipway \(command): cannot start: \(error)\n".utf8))
    exit(1)
}
