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
        "region": RegionCommand.self, "agent": AgentCommand.self,
    ]

    /// `arguments` (without the program name) with the file's and the
    /// environment's settings put before the command line's own, which win.
    static func expand(_ arguments: [String], environment: [String: String]) throws -> [String] {
        guard let daemon = arguments.first, daemons[daemon] != nil else { return arguments }
        let given = Array(arguments.dropFirst())
        let onCommandLine = Set(given.compactMap(flagName))
        let prefix = "SLIPWAY_\(daemon.uppercased())_"
        var fromEnvironment: [String] = [], inEnvironment: Set<String> = []
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(prefix) {
            let key = name.dropFirst(prefix.count).lowercased().replacingOccurrences(of: "_", with: "-")
            guard !key.isEmpty, !onCommandLine.contains(key) else { continue }
            inEnvironment.insert(key)
            fromEnvironment += value == "true" ? ["--\(key)"] : value == "false" ? [] : ["--\(key)", value]
        }
        var fromFile: [String] = []
        if let path = configPath(in: given) {
            let file = try load(path)
            fromFile = file.arguments(for: daemon, except: onCommandLine.union(inEnvironment))
        }
        return [daemon] + fromFile + fromEnvironment + given
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

    private static func configPath(in arguments: [String]) -> String? {
        for (index, argument) in arguments.enumerated() {
            if argument == "--config", index + 1 < arguments.count { return arguments[index + 1] }
            if argument.hasPrefix("--config=") { return String(argument.dropFirst("--config=".count)) }
        }
        return nil
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
                // Point at the line when the message names one of the settings.
                let line = settings.first { message.contains("--\($0.key)") }?.line
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
