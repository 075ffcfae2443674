import SlipwayCore
import ArgumentParser
import Foundation
import SlipwayJSON
import SlipwayProto
import SlipwayWire

/// Who runs this command, for the deployment history.
func currentUser() -> String {
    let name = Environment.value("SLIPWAY_USER") ?? Environment.value("USER") ?? "unknown"
    return name.isEmpty ? "unknown" : name
}

/// Targets as one line each: `global` or the region, the build and its version.
private func describe(_ targets: [Slipway_V1_TargetChange], unchanged: [String] = []) -> [String] {
    targets.map { target in
        let scope = target.region.isEmpty ? "global" : "region \(target.region)"
        guard !target.artifactDigest.isEmpty else { return "\(target.service) \(scope): override cleared (version \(target.version)); follows the global target" }
        var note = unchanged.contains(target.region) ? " (already the target)" : ""
        if target.rolloutID != 0 {
            let rest = target.stableDigest.isEmpty ? "nothing" : "sha256:\(target.stableDigest.prefix(16))"
            note += " in rollout \(target.rolloutID) (\(RolloutText.shares(target.shares)); the rest run \(rest))"
        }
        let from = target.previousDigest.isEmpty ? "" : " (was sha256:\(target.previousDigest.prefix(16)))"
        return "\(target.service) \(scope): sha256:\(target.artifactDigest) version \(target.version) set by \(target.setBy)\(note.isEmpty ? from : note)"
    }
}

struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Roll a service out to a build: globally, in waves by a plan; or set (or --clear) a region's override.",
        discussion: """
            A global deploy starts a rollout: the plan's waves each widen the machines on the new build, and each \
            must stay healthy for its bake time before the next; a failing wave halts the rollout and, unless the \
            plan pauses, sends every machine back. With --wait the command follows it and exits 0 when it succeeded, \
            1 when it halted, rolled back or was aborted (naming the failing machines), 3 on --timeout. \
            With --region the override is set at once (no waves) and that region stops following global deploys \
            until --clear. Refused, with the reason, until the artifact is replicated to every region it must reach.
            """)

    @Argument(help: "The service.") var service: String
    @Argument(help: "The artifact's SHA-256 digest, or its first 8+ hex characters (with or without sha256:); omitted with --clear.")
    var artifact: String?
    @Option(name: .customLong("region"), help: "Set this region's override only (repeatable); default: the global target.")
    var regions: [String] = []
    @Flag(help: "With --region: remove the override, so the region follows the global target again.") var clear = false
    @Option(help: "The rollout plan: all, canary, or one the coordinator was configured with (default: the coordinator's).")
    var plan: String?
    @Flag(help: "Follow the rollout until it ends; the exit code says how it ended.") var wait = false
    @Flag(help: "Deploy a service no machine has reported yet (without it, an unknown name is refused as a likely typo).")
    var newService = false
    @Option(help: "With --wait: give up (exit 3) after this long.", transform: parseDuration) var timeout = DurationArgument(argument: "30m")!
    @Option(help: "Who is deploying, for the history (default: $SLIPWAY_USER or $USER).") var by: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if clear {
            guard !regions.isEmpty, artifact == nil, plan == nil, !wait else {
                throw ValidationError("--clear takes --region and no artifact, --plan or --wait")
            }
        } else {
            guard let artifact, !artifact.isEmpty else { throw ValidationError("missing the artifact digest to deploy") }
            guard DigestPrefix.isValid(bareDigest(artifact)) else {
                throw ValidationError("'\(SafeText.printable(artifact, limit: 80))' is not a digest: 64 lowercase hex characters or at least the first 8, optionally after sha256:")
            }
            guard regions.isEmpty || (plan == nil && !wait) else {
                throw ValidationError("--plan and --wait are for global deploys; a regional override is set at once")
            }
        }
    }

    func run() async throws {
        var request = Slipway_V1_DeployRequest()
        request.service = service
        request.artifactDigest = artifact.map(bareDigest) ?? ""
        request.regions = regions
        request.setBy = by ?? currentUser()
        request.plan = plan ?? ""
        request.clear = clear
        request.newService = newService
        let reply = try await withClient(options) { try await $0.deploy(request) }
        let report = JSONReport.shared
        for (key, value) in reply.jsonFields { report[key] = value }
        if !reply.pinnedRegions.isEmpty {
            printError("slipway: warning: \(service) has an override in \(reply.pinnedRegions.joined(separator: ", ")); the global target does not "
                       + "reach \(reply.pinnedRegions.count == 1 ? "it" : "them") until `slipway deploy \(service) --clear --region …`")
        }
        if options.format != .json {
            describe(reply.targets, unchanged: reply.unchanged).forEach { print($0) }
            if reply.hasRollout { print(RolloutText.headline(reply.rollout)) }
        }
        guard wait, reply.hasRollout else { return }
        let watch = RolloutWatch(service: service, id: reply.rollout.id, timeout: timeout.duration, format: options.format)
        try await withClient(options) { try await watch.run($0) }
    }
}

extension DeployCommand: JSONOutputCommand {
    static let jsonKeys = ["targets", "unchanged", "pinned_regions", "rollout"]
    var output: OutputFormat { options.format }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Send a service back: abort its rollout in progress, or roll out the build its last deploy replaced.",
        discussion: "Globally this is a rollout (plan all) that pauses rather than returning to the build it leaves; with --region it sets the overrides back at once.")

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
        for (key, value) in reply.jsonFields { JSONReport.shared[key] = value }
        guard options.format != .json else { return }
        describe(reply.targets).forEach { print($0) }
        if reply.hasRollout { print(RolloutText.headline(reply.rollout)) }
    }
}

extension RollbackCommand: JSONOutputCommand {
    static let jsonKeys = DeployCommand.jsonKeys
    var output: OutputFormat { options.format }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a service's targets, its deployment history and what its machines run per region.")

    @Argument(help: "The service.") var service: String
    @Option(help: "History rows to show.") var history: UInt32 = 10
    @Option(help: "Call a region's report stale when it is older than this (regions refresh theirs every 5s).", transform: parseDuration)
    var staleAfter = DurationArgument(argument: "45s")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (service, history) = (self.service, self.history)
        let status = try await withClient(options) { try await $0.status(service: service, historyLimit: history) }
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let staleMicros = Int64(staleAfter.duration.components.seconds) * 1_000_000
        for (key, value) in status.statusJSONFields(nowMicros: nowMicros, staleAfterMicros: staleMicros) { JSONReport.shared[key] = value }
        guard options.format != .json else { return }
        let wide = options.format == .wide
        print("service \(status.service)")
        if status.targets.isEmpty { print("  no target set") }
        for line in describe(status.targets) { print("  target  \(line.dropFirst(status.service.count + 1))") }
        let pinned = status.targets.filter { !$0.region.isEmpty }.map(\.region)
        if !pinned.isEmpty {
            print("  pinned: \(pinned.joined(separator: ", ")) keep their override and do not follow global deploys (deploy --clear --region R)")
        }
        if let rollout = status.rollouts.first {
            print("  " + RolloutText.headline(rollout))
        }
        if status.regions.isEmpty {
            print("  machines: no region has reported agents yet")
        }
        let now = Date().timeIntervalSince1970
        for region in status.regions {
            let age = max(0, Int(now - Double(region.receivedAtUnixMicros) / 1e6))
            let counts = region.counts.filter { $0.service == status.service }
            let total = counts.reduce(0) { $0 + Int($1.machines) }
            let stale = age > Int(staleAfter.duration.components.seconds) ? " STALE: the region controller has not reported since" : ""
            print("  \(region.region): \(total) machine(s) run \(status.service) (report \(age)s old\(stale))")
            for count in counts {
                print("    \(count.machines) \(count.state.word) " + (count.artifactDigest.isEmpty ? "(no build yet)"
                      : "sha256:\(wide ? count.artifactDigest : String(count.artifactDigest.prefix(16)))"))
            }
            for failure in region.failures where failure.service == status.service {
                print("    \(failure.machineID) \(failure.state.word): \(SafeText.printable(failure.reason, limit: 300))")
            }
            for machine in region.missing where machine.service == status.service {
                print("    \(machine.machineID) MISSING: \(SafeText.printable(machine.reason, limit: 300))")
            }
        }
        if !status.history.isEmpty { print("  history (newest first)") }
        for record in status.history {
            let when = Date(timeIntervalSince1970: Double(record.setAtUnixMicros) / 1e6)
            let from = record.fromDigest.isEmpty ? "(none)" : "sha256:\(record.fromDigest.prefix(16))"
            print("    \(ISO8601DateFormatter().string(from: when)) \(record.action) \(record.region.isEmpty ? "global" : record.region) v\(record.version) \(from) -> sha256:\(record.toDigest.prefix(16)) by \(record.setBy)")
        }
    }
}

extension StatusCommand: JSONOutputCommand {
    static let jsonKeys = ["service", "targets", "rollout", "regions", "history"]
    var output: OutputFormat { options.format }
}
