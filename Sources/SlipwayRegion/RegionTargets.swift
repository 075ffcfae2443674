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
    }

    /// Service → the global target.
    private(set) var global: [String: Target] = [:]
    /// Service → this region's override.
    private(set) var regional: [String: Target] = [:]

    /// What a machine of `service` in this region should run: the override if any, else the global target.
    func effective(_ service: String) -> Target? { regional[service] ?? global[service] }

    /// What agents in `region` are told to run for `service`: the effective target,
    /// versioned by the sum of the global and regional versions. Each change bumps
    /// exactly one of them, so the sum grows with every change agents must see,
    /// and it survives a restart of the region controller.
    func agentTarget(_ service: String, region: String) -> Slipway_V1_TargetChange? {
        guard let target = effective(service) else { return nil }
        let fromOverride = regional[service] != nil
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
        return change
    }

    /// Every service with a target here, sorted.
    var services: [String] { Set(global.keys).union(regional.keys).sorted() }

    /// Applies a change meant for `region` (or global). Older or repeated versions
    /// are ignored: events may be replayed after a restart.
    /// - Returns: whether anything stored changed (and must be saved); a global
    ///   change behind a regional override changes what is stored, not what runs.
    mutating func apply(_ change: Slipway_V1_TargetChange, region: String) -> Bool {
        guard change.region.isEmpty || change.region == region else { return false }
        let target = Target(digest: change.artifactDigest, version: change.version, setBy: change.setBy, setAtUnixMicros: change.setAtUnixMicros,
                            previousDigest: change.previousDigest, signature: change.signature.isEmpty ? nil : change.signature)
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
