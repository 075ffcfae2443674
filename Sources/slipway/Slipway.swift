import ArgumentParser
import Foundation

/// The `slipway` executable: argument parsing only; every subcommand calls a library.
@main
struct Slipway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway",
        abstract: "Build source at a commit into a binary and deploy it to every region.",
        version: SlipwayVersion.string,
        subcommands: [
            SubmitCommand.self, JobsCommand.self, JobCommand.self, WaitCommand.self, LogsCommand.self, CancelCommand.self,
            ArtifactsCommand.self, ArtifactCommand.self, DeployCommand.self, RollbackCommand.self, RolloutCommand.self, StatusCommand.self,
            ServicesCommand.self, ConsoleCommand.self, ConsoleUsersCommand.self,
            CoordinatorCommand.self, WorkerCommand.self, RegionCommand.self, AgentCommand.self, TapCommand.self,
            MigrateCommand.self, ConfigCommand.self, KeysCommand.self, AuditCommand.self, VersionCommand.self,
        ])

    /// Expands a daemon's `--config FILE` and `SLIPWAY_<DAEMON>_*` settings, then parses and runs.
    static func main() async {
        let arguments: [String]
        do {
            arguments = try DaemonSettings.expand(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
        let report = JSONReport.shared
        do {
            try await run(try parseAsRoot(arguments), report: report)
            report.finish(error: nil)
            Foundation.exit(0)
        } catch {
            guard let failure = CLIFailure(error, report: report, arguments: arguments) else { exit(withError: error) }
            report.finish(error: failure)
            printError("slipway: \(failure.message)")
            Foundation.exit(failure.kind.exitCode)
        }
    }

    private static func run(_ command: sending any ParsableCommand, report: JSONReport) async throws {
        if let shaped = command as? any JSONOutputCommand {
            report.begin(keys: type(of: shaped).jsonKeys, enabled: shaped.output == .json)
        }
        if var command = command as? any AsyncParsableCommand {
            try await command.run()
        } else {
            var command = command
            try command.run()
        }
    }

    /// The subcommand a command line names, found without parsing it (it did not parse).
    static func commandType(named arguments: [String]) -> (any ParsableCommand.Type)? {
        var type: any ParsableCommand.Type = Slipway.self
        for word in arguments.prefix(2) {
            guard let next = type.configuration.subcommands.first(where: { $0.configuration.commandName == word || "\($0)".lowercased() == word })
            else { break }
            type = next
        }
        return type == Slipway.self ? nil : type
    }
}

extension CLIFailure {
    /// The failure an error thrown by a command means; nil for what is not a
    /// failure of a client command (help, a clean exit, a daemon's error), which
    /// ArgumentParser prints as usual.
    init?(_ error: any Error, report: JSONReport, arguments: [String]) {
        if let failure = error as? CLIFailure {
            self = failure
            return
        }
        // A command line that did not parse: for a client command, shape the error as its output.
        let code = Slipway.exitCode(for: error)
        guard code.rawValue == ExitCode.validationFailure.rawValue else { return nil }
        if !report.hasBegun {
            guard let type = Slipway.commandType(named: arguments) as? any JSONOutputCommand.Type else { return nil }
            report.begin(keys: type.jsonKeys, enabled: OutputFormat.scan(arguments) == .json)
        }
        guard report.isEnabled else { return nil }
        self.init(.badInput, Slipway.message(for: error))
    }
}
