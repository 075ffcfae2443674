import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayJSON
import SlipwayProto

struct ServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "List every service: its target, its rollout, and what its machines run in each region (missing machines and stale reports marked).")

    @Option(help: "Call a region's report stale when it is older than this (regions refresh theirs every 5s).", transform: parseDuration)
    var staleAfter = DurationArgument(argument: "45s")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let services = try await withClient(options) { try await $0.services() }
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let staleMicros = Int64(staleAfter.duration.components.seconds) * 1_000_000
        JSONReport.shared["services"] = .array(services.map { $0.summaryJSON(nowMicros: nowMicros, staleAfterMicros: staleMicros) })
        guard options.format != .json else { return }
        if services.isEmpty { print("no services: none has a target and no machine has reported one") }
        let wide = options.format == .wide
        for service in services {
            print(Self.headline(service, wide: wide))
            for region in service.regions {
                let counts = region.counts.filter { $0.service == service.service }
                let missing = region.missing.filter { $0.service == service.service }
                let failing = region.failures.filter { $0.service == service.service }
                guard !counts.isEmpty || !missing.isEmpty else { continue }
                let total = counts.reduce(0) { $0 + Int($1.machines) }
                let builds = counts.map { "\($0.machines) \($0.state.word)" + ($0.artifactDigest.isEmpty ? "" : " sha256:\($0.artifactDigest.prefix(wide ? 64 : 16))") }
                var line = "  \(region.region): \(total) machine(s): \(builds.joined(separator: ", "))"
                if !failing.isEmpty { line += "; FAILING \(failing.map(\.machineID).prefix(5).joined(separator: " "))" }
                if !missing.isEmpty { line += "; MISSING \(missing.count): \(missing.map(\.machineID).prefix(5).joined(separator: " "))" }
                if nowMicros - region.receivedAtUnixMicros > staleMicros {
                    line += "; STALE: no report for \((nowMicros - region.receivedAtUnixMicros) / 1_000_000)s"
                }
                print(line)
            }
        }
    }

    /// `hello: global sha256:… v3, eu pinned to sha256:…; rollout 4 progressing, wave 2/5`.
    static func headline(_ service: Slipway_V1_ServiceStatus, wide: Bool) -> String {
        let targets = service.targets.map { target in
            let scope = target.region.isEmpty ? "global" : "\(target.region) pinned to"
            let digest = target.artifactDigest.isEmpty ? "(cleared)" : "sha256:\(target.artifactDigest.prefix(wide ? 64 : 16))"
            return "\(scope) \(digest) v\(target.version)"
        }
        var line = "\(service.service): " + (targets.isEmpty ? "no target" : targets.joined(separator: ", "))
        if let rollout = service.rollouts.first, ![.succeeded, .unspecified].contains(rollout.state) {
            line += "; rollout \(rollout.id) \(rollout.state.word), wave \(rollout.wave + 1)/\(rollout.waves.count)"
        }
        return line
    }
}

extension ServicesCommand: JSONOutputCommand {
    static let jsonKeys = ["services"]
    var output: OutputFormat { options.format }
}
