import SlipwayCore
import ArgumentParser
import Foundation
import SlipwayProto
import SlipwayWire

/// Who runs this command, for the deployment history.
private func currentUser() -> String {
    let name = Environment.value("SLIPWAY_USER") ?? Environment.value("USER") ?? "unknown"
    return name.isEmpty ? "unknown" : name
}

/// Targets as one line each: `global` or the region, the build and its version.
private func describe(_ targets: [Slipway_V1_TargetChange], unchanged: [String] = []) -> [String] {
    targets.map { target in
        let scope = target.region.isEmpty ? "global" : "region \(target.region)"
        let note = unchanged.contains(target.region) ? " (already the target)" : ""
        let from = target.previousDigest.isEmpty ? "" : " (was sha256:\(target.previousDigest.prefix(16))…)"
        return "\(target.service) \(scope): sha256:\(target.artifactDigest) version \(target.version) set by \(target.setBy)\(note.isEmpty ? from : note)"
    }
}

struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Set the target build of a service, globally or per region.",
        discussion: "Refused, with the reason, until the artifact is replicated to every region the target covers.")

    @Argument(help: "The service.") var service: String
    @Argument(help: "The artifact's SHA-256 digest (with or without sha256:).") var artifact: String
    @Option(name: .customLong("region"), help: "Set this region's target only (repeatable); default: the global target.")
    var regions: [String] = []
    @Option(help: "Who is deploying, for the history (default: $SLIPWAY_USER or $USER).") var by: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var request = Slipway_V1_DeployRequest()
        request.service = service
        request.artifactDigest = bareDigest(artifact)
        request.regions = regions
        request.setBy = by ?? currentUser()
        let reply = try await withClient(options) { try await $0.deploy(request) }
        if options.json { printJSON(reply) } else { describe(reply.targets, unchanged: reply.unchanged).forEach { print($0) } }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Set a service's target back to the build its last change replaced.")

    @Argument(help: "The service.") var service: String
    @Option(name: .customLong("region"), help: "Roll back this region's target only (repeatable); default: the global target.")
    var regions: [String] = []
    @Option(help: "Who is rolling back, for the history (default: $SLIPWAY_USER or $USER).") var by: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var request = Slipway_V1_RollbackRequest()
        request.service = service
        request.regions = regions
        request.setBy = by ?? currentUser()
        let reply = try await withClient(options) { try await $0.rollback(request) }
        if options.json { printJSON(reply) } else { describe(reply.targets).forEach { print($0) } }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a service's targets, its deployment history and what its machines run per region.")

    @Argument(help: "The service.") var service: String
    @Option(help: "History rows to show.") var history: UInt32 = 10
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (service, history) = (self.service, self.history)
        let status = try await withClient(options) { try await $0.status(service: service, historyLimit: history) }
        if options.json { return printJSON(status) }
        print("service \(status.service)")
        if status.targets.isEmpty { print("  no target set") }
        for line in describe(status.targets) { print("  target  \(line.dropFirst(status.service.count + 1))") }
        if status.regions.isEmpty {
            print("  machines: no region has reported agents yet")
        }
        let now = Date().timeIntervalSince1970
        for region in status.regions {
            let age = max(0, Int(now - Double(region.receivedAtUnixMicros) / 1e6))
            let counts = region.counts.filter { $0.service == status.service }
            let total = counts.reduce(0) { $0 + Int($1.machines) }
            print("  \(region.region): \(total) machine(s) run \(status.service) (report \(age)s old)")
            for count in counts {
                print("    \(count.machines) \(Self.stateName(count.state)) sha256:\(count.artifactDigest.prefix(16))…")
            }
            for failure in region.failures where failure.service == status.service {
                print("    \(failure.machineID) \(Self.stateName(failure.state)): \(SafeText.printable(failure.reason, limit: 300))")
            }
        }
        if !status.history.isEmpty { print("  history (newest first)") }
        for record in status.history {
            let when = Date(timeIntervalSince1970: Double(record.setAtUnixMicros) / 1e6)
            let from = record.fromDigest.isEmpty ? "(none)" : "sha256:\(record.fromDigest.prefix(16))…"
            print("    \(ISO8601DateFormatter().string(from: when)) \(record.action) \(record.region.isEmpty ? "global" : record.region) v\(record.version) \(from) -> sha256:\(record.toDigest.prefix(16))… by \(record.setBy)")
        }
    }

    /// How an agent state reads in the status table.
    static func stateName(_ state: Slipway_V1_AgentState) -> String {
        switch state {
        case .idle: "idle"
        case .downloading: "downloading"
        case .installed: "installed"
        case .running: "running"
        case .failed: "failed"
        case .rolledBack: "rolled-back"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }
}
