import ArgumentParser
import Foundation
import SlipwayConfig

/// Settings for a daemon come from three places; a flag beats the environment,
/// which beats the file. `slipway region --config FILE` reads the file's
/// `[region]` section; `SLIPWAY_REGION_STORE_DIR=…` stands for `--store-dir …`.
enum DaemonSettings {
    /// The daemons a configuration file may have a section for.
    static let daemons: [String: any ParsableCommand.Type] = [
        "coordinator": CoordinatorCommand.self, "worker": WorkerCommand.self,
        "region": RegionCommand.self, "agent": AgentCommand.self, "console": ConsoleCommand.self,
    ]

    /// `arguments` (without the program name) with the file's and the
    /// environment's settings put before the command line's own, which win.
    /// Only variables naming one of the daemon's own options count: others
    /// with the same prefix (Kubernetes service links, say) are not settings.
    static func expand(_ arguments: [String], environment: [String: String]) throws -> [String] {
        guard let daemon = arguments.first, let command = daemons[daemon] else { return arguments }
        let given = Array(arguments.dropFirst())
        let onCommandLine = Set(given.compactMap(flagName))
        let known = options(of: command)
        let prefix = "SLIPWAY_\(daemon.uppercased())_"
        var fromEnvironment: [String] = [], inEnvironment: Set<String> = []
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(prefix) && !value.isEmpty {
            let key = name.dropFirst(prefix.count).lowercased().replacingOccurrences(of: "_", with: "-")
            guard let takesValue = known[key], !onCommandLine.contains(key) else { continue }
            inEnvironment.insert(key)
            if takesValue {
                fromEnvironment.append("--\(key)=\(value)")
            } else if ["1", "true", "yes"].contains(value.lowercased()) {
                fromEnvironment.append("--\(key)")
            }
        }
        var fromFile: [String] = []
        let path = configPath(in: given) ?? (inEnvironment.contains("config") ? environment[prefix + "CONFIG"] : nil)
        if let path {
            fromFile = try load(path).arguments(for: daemon, except: onCommandLine.union(inEnvironment))
        }
        return [daemon] + fromFile + fromEnvironment + given
    }

    /// The daemon's long options, and whether each takes a value: from the
    /// OPTIONS lines of its help (the usage line is abbreviated for long commands).
    static func options(of command: any ParsableCommand.Type) -> [String: Bool] {
        var options: [String: Bool] = [:]
        for line in command.helpMessage(columns: 400).split(separator: "\n") {
            guard let match = line.prefixMatch(of: /\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)( <)?/) else { continue }
            options[String(match.output.1)] = match.output.2 != nil
        }
        return options
    }

    static func load(_ path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read config file \(path)") }
        guard let text = String(data: data, encoding: .utf8) else { throw CommandFailure("\(path) is not UTF-8 text") }
        do {
            return try ConfigFile(parsing: text)
        } catch {
            throw CommandFailure("\(path): \(error)")
        }
    }

    /// The last `--config` on the command line: ArgumentParser keeps the last too.
    private static func configPath(in arguments: [String]) -> String? {
        var path: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--config", index + 1 < arguments.count { path = arguments[index + 1] }
            if argument.hasPrefix("--config=") { path = String(argument.dropFirst("--config=".count)) }
        }
        return path
    }

    private static func flagName(_ argument: String) -> String? {
        guard argument.hasPrefix("--"), argument.count > 2 else { return nil }
        return String(argument.dropFirst(2).prefix { $0 != "=" })
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Configuration files.", subcommands: [ConfigCheckCommand.self])
}

struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file: its syntax, its sections, and every setting as the daemon would take it.")

    @Argument(help: "The file (TOML: a [coordinator], [worker], [region] and/or [agent] section of flag = value).")
    var file: String

    func run() throws {
        let config = try DaemonSettings.load(file)
        var problems: [String] = []
        for section in config.sections.keys.sorted() {
            guard let command = DaemonSettings.daemons[section] else {
                problems.append("[\(section)]: not a daemon; sections are \(DaemonSettings.daemons.keys.sorted().joined(separator: ", "))")
                continue
            }
            let settings = config.sections[section]!
            do {
                _ = try command.parse(config.arguments(for: section))
                print("[\(section)]: ok (\(settings.count) setting\(settings.count == 1 ? "" : "s"))")
            } catch {
                let message = command.message(for: error)
                // Point at the line when the message names one of the settings (whole names only).
                let line = settings.first { setting in
                    message.ranges(of: "--\(setting.key)").contains { range in
                        guard range.upperBound < message.endIndex else { return true }
                        let next = message[range.upperBound]
                        return !(next.isLetter || next.isNumber || next == "-")
                    }
                }?.line
                problems.append("[\(section)]\(line.map { " line \($0)" } ?? ""): \(message)")
            }
        }
        if config.sections.isEmpty { problems.append("no sections; expected [coordinator], [worker], [region] or [agent]") }
        guard problems.isEmpty else {
            for problem in problems { FileHandle.standardError.write(Data("\(file) \(problem)\n".utf8)) }
            throw ExitCode(1)
        }
        print("\(file): valid")
    }
}
