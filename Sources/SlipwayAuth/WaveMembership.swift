public import SlipwayProto
import Crypto

/// Which machines a rollout's waves cover, decided the same way by the region
/// controller (which knows its machines and picks a cutoff) and by each agent
/// (which knows only itself): every machine has a score per rollout (rendezvous
/// hashing of the rollout id and machine id), and a region's wave is its
/// machines with the lowest scores. The scores do not depend on which other
/// machines exist, so a restarted controller picks the same machines, and a
/// wider wave keeps every machine of a narrower one.
public enum WaveMembership {
    /// The machine's score in a rollout: the first 8 bytes of
    /// SHA-256("slipway wave\n<rollout id>\n<machine id>"), at least 1.
    public static func score(rollout: UInt64, machine: String) -> UInt64 {
        let digest = SHA256.hash(data: Array("slipway wave\n\(rollout)\n\(machine)".utf8))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return max(value, 1)
    }

    /// The build `machine` must run under `change`: its artifact, unless the
    /// change is a rollout's and the machine's score is above the region's
    /// cutoff (then the stable build, which may be empty: nothing to run yet).
    public static func digest(for machine: String, in change: Slipway_V1_TargetChange) -> String {
        guard change.rolloutID != 0 else { return change.artifactDigest }
        return score(rollout: change.rolloutID, machine: machine) <= change.waveCutoff ? change.artifactDigest : change.stableDigest
    }

    /// What `machine` does with `change`: the build it runs (empty: none yet) and,
    /// when the plan prefetches and the machine is outside the waves so far,
    /// the new build it fetches ahead without installing.
    public static func assignment(for machine: String, in change: Slipway_V1_TargetChange) -> (run: String, fetchAhead: String?) {
        let run = digest(for: machine, in: change)
        let inWave = run == change.artifactDigest
        return (run, change.rolloutID != 0 && change.prefetch && !inWave ? change.artifactDigest : nil)
    }

    /// The share of `region` in a rollout target: its own, else the `*` one, else none.
    public static func share(of region: String, in change: Slipway_V1_TargetChange) -> Slipway_V1_WaveShare? {
        change.shares.first { $0.region == region } ?? change.shares.first { $0.region == "*" }
    }

    /// How many of `total` machines `share` covers (a percentage rounds up, so a
    /// share above zero of a region with machines covers at least one).
    public static func count(of share: Slipway_V1_WaveShare?, total: Int) -> Int {
        guard let share, total > 0 else { return 0 }
        if share.machines > 0 { return min(Int(share.machines), total) }
        return min(total, (Int(share.perMille) * total + 999) / 1_000)
    }

    /// The cutoff that selects the `count` lowest of `scores` (0 selects none).
    /// Only a share of every machine (`all`) gets `UInt64.max`, which also takes
    /// in machines that join later; a count that happens to equal the machines
    /// known now must not.
    public static func cutoff(selecting count: Int, of scores: [UInt64], all: Bool = false) -> UInt64 {
        if all { return .max }
        guard count > 0, !scores.isEmpty else { return 0 }
        return scores.sorted()[min(count, scores.count) - 1]
    }

    /// Whether `share` covers every machine of its region.
    public static func coversAll(_ share: Slipway_V1_WaveShare?) -> Bool {
        guard let share else { return false }
        return share.machines == 0 && share.perMille >= 1_000
    }
}
