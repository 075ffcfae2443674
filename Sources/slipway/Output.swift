import ArgumentParser
import Foundation
import SlipwayJSON

/// How a client command prints: lines for people (`text`), the same with more
/// columns (`wide`), or one JSON object for scripts (`json`, docs/json-output.md).
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, wide, json

    /// The format named on a command line that did not parse: only to shape the error.
    static func scan(_ arguments: [String]) -> OutputFormat {
        for (index, argument) in arguments.enumerated() {
            if argument == "--" { break }
            if argument == "--json" || argument == "-ojson" || argument == "--output=json" { return .json }
            if argument == "-o" || argument == "--output", arguments.indices.contains(index + 1), arguments[index + 1] == "json" { return .json }
        }
        return .text
    }
}

/// Why a client command did not succeed: its code in the exit-code table
/// (docs/operations.md, "Exit codes") and one line saying why.
struct CLIFailure: Error, CustomStringConvertible {
    enum Kind: String, Sendable {
        /// The build or the rollout failed.
        case failed
        /// The job was cancelled.
        case cancelled
        /// A wait ran out (the job or rollout goes on).
        case timedOut = "timed_out"
        /// No answer from the coordinator, or it could not serve (its database down).
        case unavailable
        /// The coordinator refused: not now (a precondition) or not this key (permission).
        case refused
        /// A malformed flag, address, digest or duration, or a name the coordinator does not know.
        case badInput = "bad_input"
        /// Anything else: a local error such as an unwritable file.
        case error

        var exitCode: Int32 {
            switch self {
            case .failed, .error: 1
            case .cancelled: 2
            case .timedOut: 3
            case .unavailable: 4
            case .refused: 5
            case .badInput: 64
            }
        }
    }

    let kind: Kind
    let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var description: String { message }

    /// The `error` object of every command's JSON output.
    var json: JSONValue {
        .object(["code": .string(kind.rawValue), "message": .string(message), "exit_code": .integer(Int64(kind.exitCode))])
    }
}

/// A client command whose `--json` output is one object with these keys plus
/// `error`, each always present (docs/json-output.md).
protocol JSONOutputCommand {
    static var jsonKeys: [String] { get }
    var output: OutputFormat { get }
}

/// The one JSON object a command prints under `--json`. Commands fill in keys
/// as they learn them; `finish` prints it once, on success or failure alike,
/// with null for every key still unknown, so a script sees the same keys whatever happened.
final class JSONReport: @unchecked Sendable {
    static let shared = JSONReport()

    private let lock = NSLock()
    private var keys: [String]?
    private var fields: [String: JSONValue] = [:]
    private var enabled = false
    private var finished = false

    /// Whether stdout is this report's alone.
    var isEnabled: Bool { lock.withLock { enabled } }

    func begin(keys: [String], enabled: Bool) {
        lock.withLock {
            self.keys = keys
            self.enabled = enabled
        }
    }

    var hasBegun: Bool { lock.withLock { keys != nil } }

    subscript(key: String) -> JSONValue? {
        get { lock.withLock { fields[key] } }
        set { lock.withLock { fields[key] = newValue } }
    }

    /// Prints the object (under --json only, once).
    func finish(error: CLIFailure?) {
        let line: String? = lock.withLock {
            guard enabled, !finished else { return nil }
            finished = true
            let pairs = (keys ?? []).map { (key: $0, value: fields[$0] ?? .null) } + [(key: "error", value: error?.json ?? .null)]
            return JSONValue.object(pairs).rendered
        }
        if let line {
            print(line)
            fflush(nil)  // every stream: stdout included
        }
    }
}
