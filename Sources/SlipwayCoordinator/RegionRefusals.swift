import SlipwayAuth
import SlipwayCore
import SlipwayProto

/// The refusals a region's report brings to the audit log: pure. A report is
/// resent until acknowledged and repeats refusals until then, so those its
/// region's previous report (same epoch, numbered at or below its `through`)
/// already brought are skipped; counted-only refusals become one summary row.
/// What a region reports is its word: the detail says which region said it,
/// and the place is one of that region's own sockets or one of its machines'
/// piece servers (an agent's refusals travel with its region's report).
enum RegionRefusals {
    static func audits(_ report: Slipway_V1_RegionReport, previous: Slipway_V1_RegionReport?) -> [AuditRecord] {
        let sameRun = previous.map { $0.refusalsEpoch == report.refusalsEpoch && report.refusalsEpoch != 0 } ?? false
        let recorded = sameRun ? previous!.refusalsThrough : 0
        let first = report.refusalsThrough &- UInt64(report.refusals.count) &+ 1
        var audits: [AuditRecord] = []
        for (offset, entry) in report.refusals.enumerated() where first &+ UInt64(offset) > recorded {
            audits.append(AuditRecord(identityText: entry.identity, action: entry.action,
                                      object: place(entry.object, region: report.region), outcome: .refused,
                                      detail: "reported by region \(report.region): \(entry.detail)", source: "region/\(report.region)"))
        }
        let alreadyCounted = sameRun ? previous!.refusalsNotListed : 0
        if report.refusalsNotListed > alreadyCounted {
            let more = report.refusalsNotListed - alreadyCounted
            audits.append(AuditRecord(identityText: "region/\(report.region)", action: "refusals_not_listed", object: "region \(report.region)",
                                      outcome: .refused,
                                      detail: "\(more) more refusal(s) at the region, past what it keeps for its reports",
                                      counts: Int(clamping: more)))
        }
        return audits
    }

    /// `object` if it names a place in `region`, else the region itself.
    static func place(_ object: String, region: String) -> String {
        if object == RefusalPlace.store(region: region) || object == RefusalPlace.tracker(region: region) { return object }
        guard let machine = RefusalPlace.pieceServerMachine(object, region: region), SafeText.isName(machine, max: 128) else { return "region \(region)" }
        return object
    }

    /// What is stored as the region's latest report: the refusals are in the audit log,
    /// and within one epoch what was recorded never goes back (a late resend of an
    /// older report must not make a newer one's refusals look new again).
    static func stored(_ report: Slipway_V1_RegionReport, previous: Slipway_V1_RegionReport?) -> Slipway_V1_RegionReport {
        var kept = report
        kept.refusals = []
        if let previous, previous.refusalsEpoch == report.refusalsEpoch {
            kept.refusalsThrough = max(report.refusalsThrough, previous.refusalsThrough)
            kept.refusalsNotListed = max(report.refusalsNotListed, previous.refusalsNotListed)
        }
        return kept
    }
}
