import Crypto
import Foundation
import Logging
import SlipwayCore
import SlipwayMetrics
import SlipwayAuth
import SlipwayProto

/// Whether a target change an agent was told to run is one the coordinator
/// signed, for this agent's region. A region controller passes the coordinator's
/// change on in its own form (the agent's region, a combined version) with the
/// signed region and version beside it; the agent rebuilds what was signed.
enum TargetCheck {
    /// Why `change` must not be applied, or nil when one of the coordinator's keys
    /// (two during a rotation) signed it for `region` (or globally).
    static func problem(with change: Slipway_V1_TargetChange, region: String, verifiers: [Curve25519.Signing.PublicKey]) -> String? {
        guard !change.signature.isEmpty else { return "it carries no signature" }
        guard change.signedRegion.isEmpty || change.signedRegion == region else {
            return "it was signed for region \(change.signedRegion), not \(region)"
        }
        var signed = change
        signed.region = change.signedRegion
        signed.version = change.signedVersion
        guard verifiers.contains(where: { TargetSignature.verify(signed, signature: Array(change.signature), publicKey: $0) }) else {
            return "its signature does not verify with the coordinator's key"
        }
        return nil
    }

    /// Whether the vouch `change` carries is one of the coordinator's keys' word that
    /// exactly this signed target (scope, version, build, time set) was still current at its time.
    static func vouchVerifies(_ change: Slipway_V1_TargetChange, verifiers: [Curve25519.Signing.PublicKey]) -> Bool {
        guard change.vouchedAtUnixMicros > 0, !change.vouchSignature.isEmpty else { return false }
        let vouch = TargetVouchSignature.vouch(carriedBy: change)
        return verifiers.contains { TargetVouchSignature.verify(vouch, publicKey: $0) }
    }

    /// Why `clearing` is not the coordinator's signed clearing of `service`'s override in `region`, or nil.
    static func clearingProblem(_ clearing: Slipway_V1_TargetChange, service: String, region: String,
                                verifiers: [Curve25519.Signing.PublicKey]) -> String? {
        guard clearing.service == service, clearing.region == region, clearing.artifactDigest.isEmpty, clearing.rolloutID == 0 else {
            return "the clearing it carries is not of this service's override in \(region)"
        }
        guard verifiers.contains(where: { TargetSignature.verify(clearing, signature: Array(clearing.signature), publicKey: $0) }) else {
            return "the clearing it carries does not verify with the coordinator's key"
        }
        return nil
    }
}

/// The agent's gate for target changes: applies only what ``TargetCheck`` passes
/// (everything when the agent runs `--insecure`, with no keys), what is not
/// older than a signed change it already applied in the same scope (a replay:
/// a region controller or store that was taken over could otherwise send an old,
/// genuinely signed target and pin machines to a build the coordinator has since
/// replaced), and, when it is new to this machine, what was set or vouched for
/// by the coordinator within `maxAge` (so even a machine with no history cannot
/// be sent a target replaced long ago). It remembers per service the last change it refused, which the
/// service's status reports until a good one comes. Targets come again with every
/// heartbeat reply, so a refusal is new (worth a log line and a count) only once per change.
struct TargetGate {
    /// What to do with a change.
    enum Decision: Equatable {
        case apply
        case refuse(problem: String, new: Bool)
    }

    private let region: String
    /// Built once from the certificates' raw keys.
    private let verifiers: [Curve25519.Signing.PublicKey]
    private var refused: [String: String] = [:]
    /// The highest signed versions applied; to be saved when ``versionsRaised``.
    private(set) var versions: SignedVersions
    /// A change admitted since the last ``versionsSaved()`` raised a highest version.
    private(set) var versionsRaised = false
    /// Where ``admit(_:logger:)`` keeps ``versions`` across restarts (nil: in memory only).
    private let file: URL?

    /// How recently a new target must have been set or vouched for (nil: no limit).
    private let maxAge: Duration?
    /// Per service: the latest time the coordinator set or vouched for the target this
    /// machine follows (microseconds since the epoch). Scraped from the agent itself, it
    /// shows a region that holds back newer targets, which no report through that region can.
    private(set) var currentAsOf: [String: Int64] = [:]
    /// Services whose ``currentAsOf`` went past ``maxAge`` and were warned about.
    private var warnedStale: Set<String> = []

    init(region: String, keys: [Certificate.SigningKey], maxAge: Duration? = nil, versions: SignedVersions = SignedVersions(), file: URL? = nil) {
        self.region = region
        self.verifiers = keys.compactMap(\.verifier)
        self.maxAge = maxAge
        self.versions = versions
        self.file = file
    }

    /// - Parameter now: the wall clock, in microseconds since the epoch (the coordinator's times are wall-clock times).
    mutating func admit(_ change: Slipway_V1_TargetChange, now: Int64 = Self.wallClockMicros()) -> Decision {
        guard !verifiers.isEmpty else { return .apply }
        let clearing = change.signedRegion.isEmpty && change.hasClearedOverride
            && TargetCheck.clearingProblem(change.clearedOverride, service: change.service, region: region, verifiers: verifiers) == nil
            ? change.clearedOverride.version : nil
        guard let problem = TargetCheck.problem(with: change, region: region, verifiers: verifiers)
                ?? replayProblem(change, clearing: clearing) ?? staleProblem(change, now: now) else {
            refused[change.service] = nil
            noteCurrent(change)
            if versions.applied(change.service, scope: change.signedRegion, version: change.signedVersion) { versionsRaised = true }
            // A clearing counts as applied too: the override it cleared cannot come back either.
            if let clearing, versions.applied(change.service, scope: region, version: clearing) { versionsRaised = true }
            return .apply
        }
        let note = "refused target sha256:\(change.artifactDigest.prefix(12)) v\(change.version): \(problem)"
        defer { refused[change.service] = note }
        return .refuse(problem: problem, new: refused[change.service] != note)
    }

    /// Whether to apply `change`; a refusal new for its service is logged and counted once,
    /// and versions it raised are saved first.
    mutating func admit(_ change: Slipway_V1_TargetChange, logger: Logger) -> Bool {
        let now = Self.wallClockMicros()
        let asOf = currentAsOf[change.service]
        guard case .refuse(let problem, let new) = admit(change, now: now) else {
            if let current = currentAsOf[change.service] {
                if current != asOf { SlipwayMetrics.targetCurrentAsOf(service: change.service, seconds: Double(current) / 1_000_000) }
                warnIfStale(change.service, asOf: current, now: now, logger: logger)
            }
            if versionsRaised, let file {
                do {
                    try versions.save(file)
                    versionsSaved()
                } catch {
                    // Applied all the same: the guard holds in memory, and the save is tried with the next raise.
                    logger.error("cannot save the signed target versions", metadata: ["file": "\(file.path)", "error": "\(error)"])
                }
            }
            return true
        }
        if new {
            logger.error("refused a target", metadata: [
                "service": "\(change.service)", "digest": "\(change.artifactDigest)", "version": "\(change.version)", "problem": "\(problem)"])
            SlipwayMetrics.targetRefused(service: change.service)
        }
        return false
    }

    /// Raises ``currentAsOf`` for an applied `change`: its own time, or a later vouch that verifies.
    private mutating func noteCurrent(_ change: Slipway_V1_TargetChange) {
        let known = currentAsOf[change.service] ?? 0
        var newest = change.setAtUnixMicros
        if change.vouchedAtUnixMicros > max(newest, known), TargetCheck.vouchVerifies(change, verifiers: verifiers) {
            newest = change.vouchedAtUnixMicros
        }
        if newest > known { currentAsOf[change.service] = newest }
    }

    /// Logs once (until fresh word comes) that `service`'s target has had no word from the coordinator for ``maxAge``.
    private mutating func warnIfStale(_ service: String, asOf: Int64, now: Int64, logger: Logger) {
        guard let maxAge else { return }
        guard now - asOf > Self.micros(maxAge) else {
            warnedStale.remove(service)
            return
        }
        guard warnedStale.insert(service).inserted else { return }
        logger.warning("no word from the coordinator that this service's target is still current; its region may be holding back a newer one",
                       metadata: ["service": "\(service)", "current_as_of": "\(Self.time(asOf))",
                                  "target_max_age": "\(Self.describe(maxAge))"])
    }

    /// Why a correctly signed `change` would take this machine back: a lower version
    /// of its scope, or the global target while the machine runs under this region's
    /// override with no signed clearing (`clearing`: its version, when one came) of it.
    private func replayProblem(_ change: Slipway_V1_TargetChange, clearing: UInt64?) -> String? {
        let highest = versions.version(change.service, scope: change.signedRegion)
        if change.signedVersion < highest {
            return "it is signed version \(change.signedVersion), older than the \(highest) this machine already applied (a replay, "
                + "or the coordinator's database was restored from an older backup)"
        }
        let overridden = change.signedRegion.isEmpty ? versions.version(change.service, scope: region) : 0
        guard overridden > 0, (clearing ?? 0) < overridden else { return nil }
        return "it is the global target, and this machine runs under region \(region)'s override (v\(overridden)); "
            + (clearing.map { "the clearing that came along (v\($0)) is older" } ?? "no signed clearing of it came along")
    }

    /// Why `change`, a signed target this machine has not applied yet, cannot be
    /// taken for a current one: neither set nor vouched for within ``maxAge``.
    /// (A change it already applied comes with every heartbeat and changes nothing.)
    private func staleProblem(_ change: Slipway_V1_TargetChange, now: Int64) -> String? {
        guard let maxAge, change.signedVersion > versions.version(change.service, scope: change.signedRegion) else { return nil }
        let vouched = TargetCheck.vouchVerifies(change, verifiers: verifiers) ? change.vouchedAtUnixMicros : nil
        let newest = max(change.setAtUnixMicros, vouched ?? 0)
        guard now - newest > Self.micros(maxAge) else { return nil }
        // Times, not ages: the same refusal reads the same at every heartbeat, so it is logged once.
        return "it was set at \(Self.time(change.setAtUnixMicros)) and "
            + (vouched.map { "last vouched for by the coordinator at \(Self.time($0))" } ?? "carries no vouch of the coordinator's that it is still current")
            + "; a new target must be set or vouched for within --target-max-age \(Self.describe(maxAge)) (a replay of a replaced target, "
            + "or the region has had no word from the coordinator for that long)"
    }

    /// `90s`, `3m`, `26h`, `3d`: whole units, enough to read.
    static func describe(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        switch seconds {
        case ..<120: return "\(seconds)s"
        case ..<7_200: return "\(seconds / 60)m"
        case ..<172_800: return "\(seconds / 3_600)h"
        default: return "\(seconds / 86_400)d"
        }
    }

    static func wallClockMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    static func micros(_ duration: Duration) -> Int64 { duration.nanoseconds / 1_000 }

    /// `2023-11-14T22:13:20Z` for microseconds since the epoch.
    static func time(_ micros: Int64) -> String { Date(timeIntervalSince1970: Double(micros) / 1_000_000).formatted(.iso8601) }

    /// The raised versions were saved.
    mutating func versionsSaved() { versionsRaised = false }

    /// The last change refused for `service`, as its status says it; nil once a good one came.
    func refusal(for service: String) -> String? { refused[service] }
}
