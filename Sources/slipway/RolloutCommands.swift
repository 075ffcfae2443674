import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayJSON
import SlipwayProducer
import SlipwayProto

/// How a rollout reads for people.
enum RolloutText {
    static func shares(_ shares: [Slipway_V1_WaveShare]) -> String {
        shares.map { share in
            let size = share.machines > 0 ? "\(share.machines) machine\(share.machines == 1 ? "" : "s")"
                : share.perMille == 1_000 ? "all" : "\(Double(share.perMille) / 10)%"
            return "\(share.region == "*" ? "every region" : share.region): \(size)"
        }.joined(separator: ", ")
    }

    /// The headline: rollout, builds, plan, state and wave.
    static func headline(_ rollout: Slipway_V1_RolloutStatus) -> String {
        let from = rollout.fromDigest.isEmpty ? "(nothing)" : "sha256:\(rollout.fromDigest.prefix(12))"
        var line = "rollout \(rollout.id) of \(rollout.service): \(from) -> sha256:\(rollout.toDigest.prefix(12)), plan \(rollout.plan), "
            + "\(rollout.state.word), wave \(rollout.wave + 1)/\(rollout.waves.count)"
        if !rollout.reason.isEmpty { line += " — \(SafeText.printable(rollout.reason, limit: 400))" }
        return line
    }

    /// Every line of a full status: headline, waves, per-region progress, failing machines.
    static func lines(_ rollout: Slipway_V1_RolloutStatus, now: Date = Date()) -> [String] {
        var lines = [headline(rollout)]
        for (index, wave) in rollout.waves.enumerated() {
            var line = "  wave \(index + 1): \(shares(wave.shares)), bake \(wave.bakeSeconds)s"
            if wave.result.isEmpty, wave.startedAtUnixMicros > 0 {
                line += " — in progress for \(Int(now.timeIntervalSince1970 - Double(wave.startedAtUnixMicros) / 1e6))s"
            } else if !wave.result.isEmpty {
                line += " — \(wave.result)"
                if !wave.detail.isEmpty { line += ": \(SafeText.printable(wave.detail, limit: 300))" }
            }
            lines.append(line)
        }
        for progress in rollout.progress { lines.append("  " + self.progress(progress)) }
        for machine in rollout.failures.prefix(20) {
            lines.append("  failing: \(machine.machineID) in \(machine.region): \(SafeText.printable(machine.reason, limit: 300))")
        }
        return lines
    }

    static func progress(_ progress: Slipway_V1_WaveProgress) -> String {
        "\(progress.region): \(progress.selected) of \(progress.machines) machine(s) in the waves, \(progress.healthy) healthy on the new build, "
            + "\(progress.failed) failed, \(progress.missing) missing"
    }
}

/// Follows a rollout until it ends: prints each change of wave, state or
/// progress (on stderr under --json) and ends as the rollout did: returns when
/// it succeeded, throws ``CLIFailure`` `failed` when it halted, rolled back or
/// was aborted, `timed_out` when the wait ran out. The report holds the rollout as last seen.
struct RolloutWatch {
    let service: String
    let id: UInt64
    let timeout: Duration
    let format: OutputFormat

    func run(_ client: SlipwayClient) async throws {
        let deadline = ContinuousClock.now + timeout
        let say: (String) -> Void = format == .json ? { printError($0) } : { print($0) }
        var shown: [String] = []
        while true {
            let rollout: Slipway_V1_RolloutStatus
            do {
                rollout = try await client.rollout(service: service, id: id)
            } catch let error as ProducerError where error.isTransient && ContinuousClock.now < deadline {
                // The coordinator is failing over or its database restarting; the rollout goes on.
                try await Task.sleep(for: .seconds(1))
                continue
            }
            JSONReport.shared["rollout"] = rollout.json
            let lines = [RolloutText.headline(rollout)] + rollout.progress.map { "  " + RolloutText.progress($0) }
            if lines != shown { lines.forEach(say) }
            shown = lines
            switch rollout.state {
            case .succeeded:
                return
            case .halted, .rolledBack, .aborted:
                for machine in rollout.failures.prefix(50) {
                    say("  failing: \(machine.machineID) in \(machine.region): \(SafeText.printable(machine.reason, limit: 300))")
                }
                throw CLIFailure(.failed, "rollout \(rollout.id) \(rollout.state.word)"
                                 + (rollout.reason.isEmpty ? "" : ": \(SafeText.printable(rollout.reason, limit: 400))"))
            default:
                break
            }
            guard ContinuousClock.now < deadline else {
                throw CLIFailure(.timedOut, "rollout \(rollout.id) is still \(rollout.state.word) after \(timeout)")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }
}

struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Show or steer a service's rollout: status, pause, resume, promote, abort.",
        subcommands: [Status.self, Pause.self, Resume.self, Promote.self, Abort.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a service's newest rollout (or --id), wave by wave, region by region.")
        @Argument(help: "The service.") var service: String
        @Option(help: "A rollout id (default: the newest).") var id: UInt64 = 0
        @Flag(help: "Follow it until it ends; the exit code says how (0 succeeded, 1 halted/rolled back/aborted, 3 timed out).")
        var wait = false
        @Option(help: "With --wait: give up after this long.", transform: parseDuration) var timeout = DurationArgument(argument: "30m")!
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (service, id) = (self.service, self.id)
            let rollout = try await withClient(options) { try await $0.rollout(service: service, id: id) }
            JSONReport.shared["rollout"] = rollout.json
            guard wait else {
                if options.format != .json { RolloutText.lines(rollout).forEach { print($0) } }
                return
            }
            let watch = RolloutWatch(service: service, id: rollout.id, timeout: timeout.duration, format: options.format)
            try await withClient(options) { try await watch.run($0) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a rollout where it is (the gate stops judging).")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.send(.pause) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Continue a paused rollout; its current wave is judged afresh.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.send(.resume) }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pass the current wave now, without its gate, and start the next.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.send(.promote) }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End the rollout and send every machine back to the previous build.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.send(.abort) }
    }

    struct ControlOptions: ParsableArguments {
        @Argument(help: "The service.") var service: String
        @Option(help: "Who is acting, for the record (default: $SLIPWAY_USER or $USER).") var by: String?
        @OptionGroup var options: ClientOptions

        func send(_ action: Slipway_V1_RolloutAction) async throws {
            let (service, by) = (self.service, self.by ?? currentUser())
            let rollout = try await withClient(options) { try await $0.control(service: service, action, setBy: by) }
            JSONReport.shared["rollout"] = rollout.json
            if options.format != .json { print(RolloutText.headline(rollout)) }
        }
    }
}

extension RolloutCommand.Status: JSONOutputCommand {
    static let jsonKeys = ["rollout"]
    var output: OutputFormat { options.format }
}

/// Pause, resume, promote and abort: each prints the rollout as it left it.
protocol RolloutControlCommand: JSONOutputCommand {
    var control: RolloutCommand.ControlOptions { get }
}

extension RolloutControlCommand {
    static var jsonKeys: [String] { ["rollout"] }
    var output: OutputFormat { control.options.format }
}

extension RolloutCommand.Pause: RolloutControlCommand {}
extension RolloutCommand.Resume: RolloutControlCommand {}
extension RolloutCommand.Promote: RolloutControlCommand {}
extension RolloutCommand.Abort: RolloutControlCommand {}
