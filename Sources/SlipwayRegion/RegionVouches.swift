import SlipwayAuth
import SlipwayProto

/// The coordinator's vouches for this region's targets, and the rounds that
/// refresh them: pure. Every `interval` the region's reports ask for them a
/// page at a time (the coordinator answers a page of services per report,
/// at most one a second), and each vouch is passed on with the target it
/// names, so agents can tell a target that is still current from an old one replayed.
///
/// Kept in memory only: after a restart the first report asks again.
struct RegionVouches {
    /// A question unanswered for this long (its report replaced or lost), or this long after
    /// an answer that did not answer it, is asked again.
    static let answerWait: Duration = .seconds(10)

    private let interval: Duration
    /// Per service and scope (`""`: global), the newest vouch.
    private var held: [String: [String: Slipway_V1_TargetVouch]] = [:]
    /// During a round: the last service of the last page received.
    private var cursor: String?
    private var nextRound: ContinuousClock.Instant
    /// When the question now out was asked: it is not asked again meanwhile, so a
    /// slow coordinator is not made to sign the same page twice.
    private var askedAt: ContinuousClock.Instant?
    /// Targets (service, scope) vouched for in this round: at its end the others are
    /// dropped (no target any more, or not the one this region's machines follow).
    private var seen: Set<[String]> = []
    /// Rounds completed since start.
    private(set) var roundsEnded = 0

    /// Targets (service and scope) with a vouch held.
    var count: Int { held.values.reduce(0) { $0 + $1.count } }

    init(interval: Duration, now: ContinuousClock.Instant) {
        self.interval = interval
        nextRound = now
    }

    /// What the next report asks: whether to send vouches, and for services after which.
    mutating func request(now: ContinuousClock.Instant) -> (wanted: Bool, after: String) {
        guard cursor != nil || now >= nextRound else { return (false, "") }
        if let askedAt, now - askedAt < Self.answerWait { return (false, "") }
        askedAt = now
        return (true, cursor ?? "")
    }

    /// The coordinator answered `sent` (a report that asked, or not).
    mutating func received(_ answer: Slipway_V1_RegionReport, for sent: Slipway_V1_RegionReport, now: ContinuousClock.Instant) {
        guard sent.vouchesWanted, sent.vouchesAfter == (cursor ?? "") else { return }
        // Paced, failed, or a coordinator that does not vouch yet (older than the region): asked again after a while.
        guard answer.vouchesAnswered else {
            askedAt = now
            return
        }
        askedAt = nil
        if cursor == nil { seen = [] }
        for vouch in answer.vouches {
            let current = held[vouch.service]?[vouch.region]
            // A vouch for another target replaces the old one whatever the clocks say.
            if let current, current.version == vouch.version, current.artifactDigest == vouch.artifactDigest,
               current.setAtUnixMicros == vouch.setAtUnixMicros, current.vouchedAtUnixMicros >= vouch.vouchedAtUnixMicros { continue }
            held[vouch.service, default: [:]][vouch.region] = vouch
        }
        seen.formUnion(answer.vouches.map { [$0.service, $0.region] })
        // Pages move forward in byte order; one that does not (empty, or out of order) ends the round.
        let next = answer.vouches.last?.service
        if answer.vouchesLast || next.map({ !Self.byteOrder($0, after: cursor ?? "") }) ?? true {
            for (service, scopes) in held {
                let kept = scopes.filter { seen.contains([service, $0.key]) }
                held[service] = kept.isEmpty ? nil : kept
            }
            cursor = nil
            nextRound = now + interval
            roundsEnded += 1
        } else {
            cursor = next
        }
    }

    /// Whether `name` comes after `cursor` in byte order (the coordinator's `COLLATE "C"`).
    static func byteOrder(_ name: String, after cursor: String) -> Bool {
        name.utf8.lexicographicallyPrecedes(cursor.utf8) == false && name != cursor
    }

    /// `change` (an agent's target) with the vouch for exactly it, if one is held.
    func vouched(_ change: Slipway_V1_TargetChange) -> Slipway_V1_TargetChange {
        guard let vouch = held[change.service]?[change.signedRegion], TargetVouchSignature.matches(vouch, change) else { return change }
        var vouched = change
        vouched.vouchedAtUnixMicros = vouch.vouchedAtUnixMicros
        vouched.vouchSignature = vouch.signature
        return vouched
    }
}
