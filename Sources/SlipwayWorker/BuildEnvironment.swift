import Foundation
import SlipwayCore

/// What a worker gives every recipe on top of the clean environment: folders
/// put first on `PATH` (where its toolchains are) and variables, some of them
/// secret. Parsed once from flags or an environment file; a secret's value is
/// passed to the recipe and to nothing else: descriptions, the job's record and
/// the build log show `(secret)` or `***` instead.
public struct BuildEnvironment: Sendable, Equatable {
    /// One variable; `secret` keeps its value out of every record and log.
    public struct Variable: Sendable, Equatable {
        public let name: String
        public let value: String
        public let secret: Bool
    }

    /// Where recipes find programs when no `--path` is given.
    public static let basePath = ["/usr/local/bin", "/usr/bin", "/bin"]

    /// Folders put before ``basePath``, in order.
    public private(set) var path: [String] = []
    /// Variables, in the order given; a later one of the same name replaces the earlier.
    public private(set) var variables: [Variable] = []

    public init() {}

    /// Why a setting is refused: the rule, for the flag or file line that broke it.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Adds a folder to put first on `PATH`: absolute, printable, no `:`.
    public mutating func prepend(path folder: String) throws(Problem) {
        guard folder.hasPrefix("/"), !folder.contains(":"), SafeText.printable(folder, limit: 1_024) == folder else {
            throw Problem(description: "'\(SafeText.printable(folder, limit: 80))' is not an absolute folder (no ':' either)")
        }
        path.append(folder)
    }

    /// Adds `NAME=VALUE` (`text`); `secret` hides the value everywhere but in the recipe's environment.
    public mutating func add(_ text: String, secret: Bool) throws(Problem) {
        guard let equals = text.firstIndex(of: "=") else { throw Problem(description: "'\(Self.shown(text, secret))' is not NAME=VALUE") }
        let name = String(text[..<equals]), value = String(text[text.index(after: equals)...])
        if let problem = Self.problem(name: name) { throw Problem(description: problem) }
        guard value.utf8.count <= 8_192, !value.utf8.contains(0), !value.contains("\n") else {
            throw Problem(description: "\(name): a value is one line of at most 8192 bytes")
        }
        guard !secret || value.utf8.count >= 4 else {
            throw Problem(description: "\(name): a secret of fewer than 4 characters cannot be masked in build logs")
        }
        guard !secret || value.trimmingCharacters(in: .whitespaces) == value else {
            // A shell's word splitting drops the blanks, and the log would show the secret unmasked.
            throw Problem(description: "\(name): a secret with leading or trailing blanks could be printed without them, unmasked")
        }
        variables.removeAll { $0.name == name }
        variables.append(Variable(name: name, value: value, secret: secret))
    }

    /// Reads an environment file: one setting per line, `NAME=VALUE`,
    /// `secret NAME=VALUE` or `path /FOLDER`; blank lines and `#` comments are skipped.
    public mutating func load(file text: String) throws(Problem) {
        // "\r\n" is one Character, a newline like "\n": Windows line endings split the same.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            // Blanks around a line are layout, not value (a trailing one would make a secret unmaskable).
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            do {
                if trimmed.hasPrefix("path ") {
                    try prepend(path: String(trimmed.dropFirst(5)))
                } else if trimmed.hasPrefix("secret ") {
                    try add(String(trimmed.dropFirst(7)), secret: true)
                } else {
                    try add(String(trimmed), secret: false)
                }
            } catch {
                throw Problem(description: "line \(index + 1): \(error.description)")
            }
        }
    }

    /// Names a recipe's environment may take from a worker: the ones Slipway sets itself are not among them.
    static func problem(name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, (1...128).contains(bytes.count),
              SafeText.isAlphanumeric(first) && !(48...57).contains(first) || first == UInt8(ascii: "_"),
              bytes.allSatisfy({ SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: "_") }) else {
            return "'\(SafeText.printable(name, limit: 80))' is not a variable name (letters, digits and _, not starting with a digit)"
        }
        if name == "PATH" { return "PATH is set with --path (or 'path /FOLDER' in the file), which puts folders first" }
        if name == "HOME" { return "HOME is the job's workspace, so builds share nothing through it" }
        if name.hasPrefix("SLIPWAY_") { return "\(name): SLIPWAY_* variables are set by Slipway for each job" }
        return nil
    }

    private static func shown(_ text: String, _ secret: Bool) -> String {
        secret ? "(secret)" : SafeText.printable(text, limit: 80)
    }

    /// `PATH` as recipes get it.
    public var searchPath: String { (path + Self.basePath).joined(separator: ":") }

    /// A recipe's whole environment: `LANG=C.UTF-8` unless a variable says
    /// otherwise, the variables, `PATH`, and `base` (`HOME`, `SLIPWAY_*`), which wins.
    public func applied(to base: [String: String]) -> [String: String] {
        var environment = ["LANG": "C.UTF-8"]
        for variable in variables { environment[variable.name] = variable.value }
        environment["PATH"] = searchPath
        return environment.merging(base) { _, slipway in slipway }
    }

    /// What the job records and the log shows: `PATH=…` and every variable, a secret's value as `(secret)`.
    public var described: [String] {
        ["PATH=\(searchPath)"] + variables.map { "\($0.name)=\($0.secret ? "(secret)" : $0.value)" }
    }

    /// The values a build log must never show.
    public var secretValues: [String] { variables.filter(\.secret).map(\.value) }
}
