import Foundation
import SlipwayTestSupport
import Testing

/// The operations files (systemd units, Kubernetes manifests, the compose file)
/// cannot be run here; this keeps them true to the binary: every `slipway`
/// command line in them names a real subcommand and only flags it accepts.
@Suite("Operations files match the CLI", .enabled(if: Cluster.binary != nil))
struct OpsFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every slipway command line in ops/systemd, ops/k8s and docker/ uses existing subcommands and flags")
    func flagsExist() throws {
        var commands: [(file: String, arguments: [String])] = []
        for folder in ["ops/systemd", "ops/k8s", "docker"] {
            let url = Self.root.appendingPathComponent(folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: url.path).sorted() {
                let text = try String(contentsOf: url.appendingPathComponent(name), encoding: .utf8)
                commands += try Self.commandLines(in: text).map { ("\(folder)/\(name)", $0) }
            }
        }
        let daemons = Set(commands.compactMap(\.arguments.first))
        #expect(daemons == ["coordinator", "worker", "region", "agent", "console"], "every daemon is covered: \(daemons)")
        #expect(commands.count >= 14, "found \(commands.count) command lines")
        var help: [String: Set<String>] = [:]
        for (file, arguments) in commands {
            let subcommand = try #require(arguments.first)
            if help[subcommand] == nil {
                let text = try shellOutput("'\(Cluster.binary!)' \(subcommand) --help")
                help[subcommand] = Set(text.matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) })
            }
            for flag in arguments.dropFirst() where flag.hasPrefix("--") {
                #expect(help[subcommand]!.contains(flag), "\(file): `slipway \(subcommand)` has no \(flag)")
            }
        }
    }

    /// `slipway …` argument lists: systemd `ExecStart=` lines (with `\` continuations,
    /// shell quoting) and YAML `args:`/`command:` JSON-style lists.
    static func commandLines(in text: String) throws -> [[String]] {
        let logical = text.replacingOccurrences(of: "\\\n", with: " ").split(separator: "\n").map(String.init)
        var found: [[String]] = []
        for line in logical {
            if let range = line.range(of: "bin/slipway ") {
                found.append(shellWords(String(line[range.upperBound...])))
            } else if let key = line.range(of: #"(args|command): \["#, options: .regularExpression) {
                let list = String(line[line.index(before: key.upperBound)...])
                let parsed = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String]
                found.append(try #require(parsed, "not a list of strings: \(list)"))
            }
        }
        return found
    }

    /// Splits like a shell: spaces separate words, quotes group them.
    static func shellWords(_ line: String) -> [String] {
        var words: [String] = [], current = "", quote: Character?
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == " " {
                if !current.isEmpty { words.append(current); current = "" }
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }
}
