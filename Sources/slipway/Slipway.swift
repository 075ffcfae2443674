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
            CoordinatorCommand.self, WorkerCommand.self, RegionCommand.self, AgentCommand.self, TapCommand.self,
            MigrateCommand.self, ConfigCommand.self, KeysCommand.self, AuditCommand.self, VersionCommand.self,
        ])

    /// Expands a daemon's `--config FILE` and `SLIPWAY_<DAEMON>_*` settings, then parses as usual.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            await main(try DaemonSettings.expand(arguments, environment: ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
    }
}
