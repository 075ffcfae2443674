@testable import SlipwayCoordinator
import SlipwayProto
import Testing

@Suite("A region's refusals into the audit log")
struct RegionRefusalsTests {
    static func report(epoch: UInt64, through: UInt64, refusals names: [String], notListed: UInt64 = 0) -> Slipway_V1_RegionReport {
        var report = Slipway_V1_RegionReport()
        report.region = "eu"
        report.refusalsEpoch = epoch
        report.refusalsThrough = through
        report.refusalsNotListed = notListed
        report.refusals = names.map { name in
            var entry = Slipway_V1_AuditEntry()
            entry.identity = name
            entry.action = "uploadBegin"
            entry.object = "store of region eu"
            entry.detail = "role agent may not send uploadBegin"
            return entry
        }
        return report
    }

    @Test("a refusal is placed at one of the region's sockets or machines' piece servers, else at the region")
    func places() {
        for (object, placed) in [("store of region eu", "store of region eu"), ("tracker of region eu", "tracker of region eu"),
                                 ("piece server of machine web-1 in region eu", "piece server of machine web-1 in region eu"),
                                 ("piece server of machine web-1 in region us", "region eu"), ("store of region us", "region eu"),
                                 ("piece server of machine ../x in region eu", "region eu"), ("coordinator", "region eu")] {
            #expect(RegionRefusals.place(object, region: "eu") == placed, "\(object)")
        }
    }

    @Test("a resent report brings only the refusals its region's previous report did not")
    func skipsRecorded() {
        let first = Self.report(epoch: 7, through: 2, refusals: ["agent/a", "agent/b"])
        #expect(RegionRefusals.audits(first, previous: nil).map(\.identity) == ["agent/a", "agent/b"])
        // Sent again with one more (its acknowledgement was lost): only the new one.
        let again = Self.report(epoch: 7, through: 3, refusals: ["agent/a", "agent/b", "agent/c"])
        #expect(RegionRefusals.audits(again, previous: RegionRefusals.stored(first, previous: nil)).map(\.identity) == ["agent/c"])
        #expect(RegionRefusals.audits(again, previous: again).isEmpty)
        // The region restarted: numbers start over under a new epoch, and count.
        let restarted = Self.report(epoch: 8, through: 1, refusals: ["agent/d"])
        #expect(RegionRefusals.audits(restarted, previous: again).map(\.identity) == ["agent/d"])
        let record = RegionRefusals.audits(first, previous: nil)[0]
        #expect(record.outcome == .refused && record.action == "uploadBegin" && record.object == "store of region eu")
        #expect(record.detail.hasPrefix("reported by region eu: "))
        #expect(RegionRefusals.stored(again, previous: nil).refusals.isEmpty && RegionRefusals.stored(again, previous: nil).refusalsThrough == 3)
        // A late resend of the first report after `again` was stored: nothing again, and the record does not go back.
        let storedAgain = RegionRefusals.stored(again, previous: nil)
        #expect(RegionRefusals.audits(first, previous: storedAgain).isEmpty)
        #expect(RegionRefusals.stored(first, previous: storedAgain).refusalsThrough == 3)
        // A region names only its own sockets as the place.
        var elsewhere = Self.report(epoch: 9, through: 1, refusals: ["agent/e"])
        elsewhere.refusals[0].object = "store of region us"
        #expect(RegionRefusals.audits(elsewhere, previous: nil)[0].object == "region eu")
    }

    @Test("refusals counted past what the region keeps become one row for the increase")
    func notListed() {
        let before = Self.report(epoch: 7, through: 0, refusals: [], notListed: 40)
        let after = Self.report(epoch: 7, through: 0, refusals: [], notListed: 55)
        let rows = RegionRefusals.audits(after, previous: before)
        #expect(rows.count == 1 && rows[0].action == "refusals_not_listed" && rows[0].detail.hasPrefix("15 more"), "\(rows)")
        #expect(RegionRefusals.audits(after, previous: after).isEmpty)
        #expect(RegionRefusals.audits(before, previous: nil).first?.detail.hasPrefix("40 more") == true)
    }
}
