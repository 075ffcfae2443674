import SlipwayAuth
import SlipwayProto

/// The coordinator's vouches for this region's targets, and the rounds that
/// refresh them: pure. Every `interval` the region's reports ask for them a
/// page at a time (the coordinator answers a page of services per report),
/// and each vouch is passed on with the target it names, so agents can tell a
/// target that is still current from an old one replayed.
///
/// Kept in memory only: after a restart the first report asks again.
struct RegionVouches {
    private let interval: Duration
    /// Per service and scope (`""`: global), the newest vouch.
    private var held: [String: [String: Slipway_V1_TargetVouch]] = [:]
    /// During a round: the last service of the last page received.
    private var cursor: String?
    /// Services vouched for in this round: at its end, the others (no target any more) are dropped.
    private var seen: Set<String> = []
    /// Rounds completed since start.
    private(set) var roundsEnded = 0

    /// Targets (service and scope) with a vouch held.
    var count: Int { held.values.reduce(0) { $0 + $1.count } }
    private var nextRound: ContinuousClock.Instant

    init(interval: Duration, now: ContinuousClock.Instant) {
        self.interval = interval
        nextRound = now
    }

    /// What the next report asks: whether to send vouches, and for services after which.
    func request(now: ContinuousClock.Instant) -> (wanted: Bool, after: String) {
        if let cursor { return (true, cursor) }
        return (now >= nextRound, "")
    }

    /// The coordinator answered `sent` (a report that asked, or not) with `vouches`.
    mutating func received(_ vouches: [Slipway_V1_TargetVouch], for sent: Slipway_V1_RegionReport, now: ContinuousClock.Instant) {
        guard sent.vouchesWanted, sent.vouchesAfter == (cursor ?? "") else { return }
        if cursor == nil { seen = [] }
        for vouch in vouches where vouch.vouchedAtUnixMicros > (held[vouch.service]?[vouch.region]?.vouchedAtUnixMicros ?? 0) {
            held[vouch.service, default: [:]][vouch.region] = vouch
        }
        let services = Set(vouches.map(\.service))
        seen.formUnion(services)
        if services.count < TargetVouchSignature.pageServices {
            held = held.filter { seen.contains($0.key) }
            cursor = nil
            nextRound = now + interval
            roundsEnded += 1
        } else {
            cursor = vouches.last?.service  // pages come in the coordinator's byte order
        }
    }

    /// `change` (an agent's target) with the vouch for exactly its signed scope and version, if one is held.
    func vouched(_ change: Slipway_V1_TargetChange) -> Slipway_V1_TargetChange {
        guard let vouch = held[change.service]?[change.signedRegion], vouch.version == change.signedVersion else { return change }
        var vouched = change
        vouched.vouchedAtUnixMicros = vouch.vouchedAtUnixMicros
        vouched.vouchSignature = vouch.signature
        return vouched
    }
}
