import Foundation
import SlipwayProto

/// The targets a region controller serves its machines: per service, the global
/// target and this region's override, each with its version. Kept on disk so
/// the region's machines keep converging while the coordinator is down.
///
/// Pure: ``apply(_:region:)`` decides; ``SavedTargets`` keeps it on disk.
struct RegionTargets: Codable, Equatable {
    /// One target as the coordinator set it.
    struct Target: Codable, Equatable {
        var digest: String
        var version: UInt64
        var setBy: String
        var setAtUnixMicros: Int64
        /// The build it replaced and the coordinator's signature, passed on to agents
        /// unchanged so they can check it (nil in files saved before targets were signed).
        var previousDigest: String?
        var signature: Data?
        /// A rollout's target: the rollout, the build outside its waves and each region's share (nil otherwise).
        var rollout: RolloutPart?
    }

    /// The part of a target a rollout adds.
    struct RolloutPart: Codable, Equatable {
        struct Share: Codable, Equatable {
            var region: String
            var machines: UInt32
            var perMille: UInt32
        }

        var id: UInt64
        var stableDigest: String
        var shares: [Share]
        /// Machines outside the waves fetch the new build ahead (nil in files saved before prefetching existed).
        var prefetch: Bool?
    }

    /// Service → the global target.
    private(set) var global: [String: Target] = [:]
    /// Service → this region's override.
    private(set) var regional: [String: Target] = [:]

    /// What a machine of `service` in this region should run: the override if
    /// any (an override an operator cleared is kept, empty, for its version), else the global target.
    func effective(_ service: String) -> Target? {
        if let override = regional[service], !override.digest.isEmpty { return override }
        return global[service]
    }

    /// The rollout's target `service` follows here, as signed; nil when it is in
    /// no rollout or this region's override takes precedence.
    func rolloutTarget(_ service: String, region: String) -> Slipway_V1_TargetChange? {
        guard let change = agentTarget(service, region: region, cutoff: 0), change.rolloutID != 0 else { return nil }
        var signed = change
        signed.version = change.signedVersion
        return signed
    }

    /// What agents in `region` are told to run for `service`: the effective target,
    /// versioned by the sum of the global and regional versions. Each change bumps
    /// exactly one of them, so the sum grows with every change agents must see,
    /// and it survives a restart of the region controller. In a rollout,
    /// `cutoff` says which machines the waves cover here.
    func agentTarget(_ service: String, region: String, cutoff: UInt64) -> Slipway_V1_TargetChange? {
        guard let target = effective(service) else { return nil }
        let fromOverride = regional[service].map { !$0.digest.isEmpty } ?? false
        var change = Slipway_V1_TargetChange()
        change.service = service
        change.region = region
        change.artifactDigest = target.digest
        change.version = (global[service]?.version ?? 0) + (regional[service]?.version ?? 0)
        change.setBy = target.setBy
        change.setAtUnixMicros = target.setAtUnixMicros
        change.previousDigest = target.previousDigest ?? ""
        change.signature = target.signature ?? Data()
        change.signedRegion = fromOverride ? region : ""
        change.signedVersion = target.version
        if !fromOverride, let cleared = regional[service] {
            // The signed clearing: what lets a machine that ran under the override follow this target again.
            var clearing = Slipway_V1_TargetChange()
            clearing.service = service
            clearing.region = region
            clearing.version = cleared.version
            clearing.setBy = cleared.setBy
            clearing.setAtUnixMicros = cleared.setAtUnixMicros
            clearing.previousDigest = cleared.previousDigest ?? ""
            clearing.signature = cleared.signature ?? Data()
            change.clearedOverride = clearing
        }
        if let rollout = target.rollout {
            change.rolloutID = rollout.id
            change.stableDigest = rollout.stableDigest
            change.shares = rollout.shares.map { share in
                var wire = Slipway_V1_WaveShare()
                wire.region = share.region
                wire.machines = share.machines
                wire.perMille = share.perMille
                return wire
            }
            change.waveCutoff = cutoff
            change.prefetch = rollout.prefetch ?? false
        }
        return change
    }

    /// Every service with a target here, sorted.
    var services: [String] { Set(global.keys).union(regional.keys).filter { effective($0) != nil }.sorted() }

    /// Services whose override here keeps them out of the global target.
    var pinned: [String] { regional.filter { !$0.value.digest.isEmpty }.keys.sorted() }

    /// Applies a change meant for `region` (or global). Older or repeated versions
    /// are ignored: events may be replayed after a restart.
    /// - Returns: whether anything stored changed (and must be saved); a global
    ///   change behind a regional override changes what is stored, not what runs.
    mutating func apply(_ change: Slipway_V1_TargetChange, region: String) -> Bool {
        guard change.region.isEmpty || change.region == region else { return false }
        let rollout = change.rolloutID == 0 ? nil : RolloutPart(
            id: change.rolloutID, stableDigest: change.stableDigest,
            shares: change.shares.map { RolloutPart.Share(region: $0.region, machines: $0.machines, perMille: $0.perMille) },
            prefetch: change.prefetch)
        let target = Target(digest: change.artifactDigest, version: change.version, setBy: change.setBy, setAtUnixMicros: change.setAtUnixMicros,
                            previousDigest: change.previousDigest, signature: change.signature.isEmpty ? nil : change.signature,
                            rollout: rollout)
        if change.region.isEmpty {
            guard (global[change.service]?.version ?? 0) < change.version else { return false }
            global[change.service] = target
        } else {
            guard (regional[change.service]?.version ?? 0) < change.version else { return false }
            regional[change.service] = target
        }
        return true
    }
}
