public import SlipwayCore
import SlipwayProto

/// How a rollout moves: an ordered list of waves, each adding regions (or a
/// share of their machines) to what the earlier waves covered, with a bake
/// time and a health gate. Parsed once, from a flag or the configuration file;
/// a rollout stores the plan it started with, so changing the configuration
/// never changes a rollout in progress.
public struct RolloutPlan: Codable, Equatable, Sendable {
    /// The machines of one region (or of every region not named: `*`) a wave covers.
    public struct Share: Codable, Equatable, Sendable {
        /// A region name or `*`.
        public var region: String
        /// Exactly this many machines (at most all of them)...
        public var machines: Int?
        /// ...or this share of them, in thousandths.
        public var perMille: Int?

        public static func all(_ region: String) -> Share { Share(region: region, machines: nil, perMille: 1_000) }

        var wire: Slipway_V1_WaveShare {
            var share = Slipway_V1_WaveShare()
            share.region = region
            share.machines = UInt32(machines ?? 0)
            share.perMille = UInt32(perMille ?? 0)
            return share
        }
    }

    /// One step of a plan.
    public struct Wave: Codable, Equatable, Sendable {
        /// The regions this wave adds or widens.
        public var shares: [Share]
        /// How long the gate must hold before the wave passes, in seconds.
        public var bakeSeconds: Int
        /// Of the machines the waves cover, the share (thousandths) that must run the new build healthy.
        public var minHealthyPerMille: Int = 1_000
        /// Most machines that may fail on the new build before the rollout halts.
        public var maxFailed: Int = 0
    }

    public var name: String
    public var waves: [Wave]
    /// On a failed gate: wait for an operator instead of rolling back.
    public var pauseOnFailure = false
    /// Machines outside the waves fetch the new build ahead (not installing it):
    /// waves then cost installs, not downloads, but every machine downloads a
    /// build that may halt at the canary.
    public var prefetch = false
    /// How long a wave may take to become healthy before the gate, seeing too
    /// little, pauses the rollout.
    public var waveDeadlineSeconds = 600

    /// The shares the first `count` waves cover together: a region's latest
    /// share replaces its earlier one.
    public func shares(throughWave index: Int) -> [Share] {
        var covered: [Share] = []
        for wave in waves.prefix(index + 1) {
            for share in wave.shares {
                if let at = covered.firstIndex(where: { $0.region == share.region }) { covered[at] = share } else { covered.append(share) }
            }
        }
        return covered
    }

    /// `all`: one wave, every machine at once; the gate still judges it.
    public static func all(bake: Int = 0) -> RolloutPlan {
        RolloutPlan(name: "all", waves: [Wave(shares: [.all("*")], bakeSeconds: bake)])
    }

    /// `canary`: one machine in the first region, then that region, then every
    /// other region one by one, then every region (ones added since included).
    public static func canary(regions: [String], bake: Int) -> RolloutPlan {
        guard let first = regions.first else {
            return RolloutPlan(name: "canary", waves: [
                Wave(shares: [Share(region: "*", machines: 1)], bakeSeconds: bake),
                Wave(shares: [.all("*")], bakeSeconds: bake),
            ])
        }
        var waves = [Wave(shares: [Share(region: first, machines: 1)], bakeSeconds: bake), Wave(shares: [.all(first)], bakeSeconds: bake)]
        for region in regions.dropFirst() { waves.append(Wave(shares: [.all(region)], bakeSeconds: bake)) }
        waves.append(Wave(shares: [.all("*")], bakeSeconds: 0))
        return RolloutPlan(name: "canary", waves: waves)
    }

    /// The longest bake or deadline, in seconds (30 days).
    public static let longest: Int64 = 30 * 86_400

    /// Reads `NAME=WAVE;WAVE;...[;OPTION...]`, as `--rollout-plan` and the
    /// configuration file's `rollout-plan` take it. A wave is comma-separated
    /// shares (`REGION:COUNT` or `REGION:PERCENT%`, `*` for every region not
    /// named), then optional `bake=DURATION`, `min-healthy=PERCENT%` and
    /// `max-failed=N`, separated by spaces. Options: `pause-on-failure`,
    /// `prefetch` and `deadline=DURATION`. Example:
    /// `careful=eu:1 bake=10m; eu:100% bake=30m; *:100% min-healthy=99% max-failed=5; deadline=20m`.
    public static func parse(_ text: String) throws(InvalidValue) -> RolloutPlan {
        func invalid(_ rule: String) -> InvalidValue { InvalidValue(kind: "rollout plan", text: text, rule: rule) }
        guard let equals = text.firstIndex(of: "=") else { throw invalid("a plan is NAME=WAVE;WAVE;…") }
        let name = text[..<equals].trimmingCharacters(in: .whitespaces)
        guard SafeText.isName(name, max: 64) else { throw invalid("the plan name must be 1 to 64 characters of A-Z a-z 0-9 . _ -") }
        guard !["all", "canary"].contains(name) else { throw invalid("'\(name)' is a built-in plan") }
        var plan = RolloutPlan(name: name, waves: [])
        for part in text[text.index(after: equals)...].split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            if part == "pause-on-failure" {
                plan.pauseOnFailure = true
            } else if part == "prefetch" {
                plan.prefetch = true
            } else if part.hasPrefix("deadline=") {
                guard let deadline = DurationText.parse(String(part.dropFirst("deadline=".count))), deadline >= .seconds(1),
                      deadline <= .seconds(Self.longest) else {
                    throw invalid("deadline= takes a duration from 1s to 30d, e.g. 10m")
                }
                plan.waveDeadlineSeconds = Int(deadline.components.seconds)
            } else {
                plan.waves.append(try wave(part, invalid))
            }
        }
        guard !plan.waves.isEmpty, plan.waves.count <= 32 else { throw invalid("a plan has 1 to 32 waves") }
        return plan
    }

    private static func wave(_ text: String, _ invalid: (String) -> InvalidValue) throws(InvalidValue) -> Wave {
        let words = text.split(separator: " ").map(String.init)
        var wave = Wave(shares: [], bakeSeconds: 0)
        for share in words[0].split(separator: ",").map(String.init) {
            let parts = share.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, parts[0] == "*" || RegionName.isValid(parts[0]) else {
                throw invalid("a share is REGION:COUNT or REGION:PERCENT% (REGION may be *), not '\(share)'")
            }
            guard !wave.shares.contains(where: { $0.region == parts[0] }) else { throw invalid("region \(parts[0]) appears twice in one wave") }
            if parts[1].hasSuffix("%"), let percent = Double(parts[1].dropLast()), percent > 0, percent <= 100 {
                wave.shares.append(Share(region: parts[0], machines: nil, perMille: Int((percent * 10).rounded(.up))))
            } else if let count = Int(parts[1]), count > 0, count <= 1_000_000 {
                wave.shares.append(Share(region: parts[0], machines: count, perMille: nil))
            } else {
                throw invalid("'\(parts[1])' is neither a machine count (1 or more) nor a percentage (0% < p ≤ 100%)")
            }
        }
        for word in words.dropFirst() {
            if word.hasPrefix("bake="), let bake = DurationText.parse(String(word.dropFirst(5))), bake <= .seconds(longest) {
                wave.bakeSeconds = Int(bake.components.seconds)
            } else if word.hasPrefix("min-healthy="), word.hasSuffix("%"), let percent = Double(word.dropFirst(12).dropLast()),
                      percent >= 0, percent <= 100 {
                wave.minHealthyPerMille = Int((percent * 10).rounded(.up))
            } else if word.hasPrefix("max-failed="), let count = Int(word.dropFirst(11)), (0...1_000_000).contains(count) {
                wave.maxFailed = count
            } else {
                throw invalid("'\(word)' is not bake=DURATION (up to 30d), min-healthy=PERCENT% or max-failed=N (up to 1000000)")
            }
        }
        return wave
    }
}

/// The plans a coordinator offers: the built-in ones and those configured.
public struct RolloutPlans: Sendable {
    /// Named plans from `--rollout-plan`.
    public var named: [String: RolloutPlan] = [:]
    /// The plan of a deploy that names none.
    public var defaultPlan = "all"
    /// The canary plan's bake time per wave.
    public var canaryBake: Duration = .seconds(60)
    /// How old a region's report may be before a gate counts the region as unseen.
    public var reportStaleAfter: Duration = .seconds(45)
    /// The wave deadline of the built-in plans.
    public var waveDeadline: Duration = .seconds(600)

    public init() {}

    /// The plan called `name` (the default plan when empty), its regional steps
    /// laid out over the configured `regions`.
    public func plan(_ name: String, regions: [String]) -> RolloutPlan? {
        let wanted = name.isEmpty ? defaultPlan : name
        var plan: RolloutPlan
        switch wanted {
        case "all": plan = .all()
        case "canary": plan = .canary(regions: regions, bake: Int(canaryBake.components.seconds))
        default:
            guard let named = named[wanted] else { return nil }
            return named
        }
        plan.waveDeadlineSeconds = Int(waveDeadline.components.seconds)
        return plan
    }

    /// Every plan name a deploy may use.
    public var names: [String] { ["all", "canary"] + named.keys.sorted() }
}

// Stored plans outlive the code that wrote them: a field added later decodes
// to its default in a plan stored before it existed.
extension RolloutPlan {
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        name = try values.decode(String.self, forKey: .name)
        waves = try values.decode([Wave].self, forKey: .waves)
        pauseOnFailure = try values.decodeIfPresent(Bool.self, forKey: .pauseOnFailure) ?? false
        prefetch = try values.decodeIfPresent(Bool.self, forKey: .prefetch) ?? false
        waveDeadlineSeconds = try values.decodeIfPresent(Int.self, forKey: .waveDeadlineSeconds) ?? 600
    }
}

extension RolloutPlan.Wave {
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        shares = try values.decode([RolloutPlan.Share].self, forKey: .shares)
        bakeSeconds = try values.decodeIfPresent(Int.self, forKey: .bakeSeconds) ?? 0
        minHealthyPerMille = try values.decodeIfPresent(Int.self, forKey: .minHealthyPerMille) ?? 1_000
        maxFailed = try values.decodeIfPresent(Int.self, forKey: .maxFailed) ?? 0
    }
}
