@testable import SlipwayCoordinator
import SlipwayProto
import Testing

@Suite("The audit log's budget per source")
struct AuditBudgetTests {
    static func refusal(_ identity: String, source: String? = nil) -> AuditRecord {
        AuditRecord(identityText: identity, action: "submit", object: "", outcome: .refused, detail: "not allowed", source: source)
    }

    @Test("refusals past 100 a minute from one source are counted, not written; actions always are; the summary comes when the minute ends")
    func budget() {
        var budget = AuditBudget()
        let start = ContinuousClock.now
        let deploy = AuditRecord(identityText: "operator/ann", action: "deploy", object: "web", outcome: .ok)
        let flood = Array(repeating: Self.refusal("agent/x"), count: 150)
        let written = budget.admit(flood + [deploy] + [Self.refusal("agent/y")], now: start)
        #expect(written.filter { $0.identity == "agent/x" }.count == 100)
        #expect(written.contains(deploy))
        #expect(written.filter { $0.identity == "agent/y" }.count == 1, "another source has its own budget")
        // Within the minute: still over budget, and no summary yet.
        #expect(budget.admit([Self.refusal("agent/x"), deploy], now: start + .seconds(30)) == [deploy])
        #expect(!budget.summaryDue(now: start + .seconds(59)))
        #expect(budget.summaryDue(now: start + .seconds(60)))
        // The minute ended: one summary row, and the source starts afresh.
        let next = budget.admit([Self.refusal("agent/x")], now: start + .seconds(61))
        #expect(next.count == 2)
        #expect(next.first?.action == "refusals_not_recorded")
        #expect(next.first?.identity == "agent/x")
        #expect(next.first?.detail.hasPrefix("51 more refusal(s) from agent/x in a minute") == true, "\(next.first?.detail ?? "")")
        #expect(next.last == Self.refusal("agent/x"))
        #expect(!budget.summaryDue(now: start + .seconds(200)), "nothing was only counted in the new minute")
    }

    @Test("a region's reported refusals count against the region, whoever was refused; its counting rows are written once a window, the rest summed")
    func regionSource() {
        var budget = AuditBudget()
        let now = ContinuousClock.now
        let reported = (0..<120).map { Self.refusal("agent/m\($0)", source: "region/eu") }
        #expect(budget.admit(reported, now: now).count == 100)
        // The region's own count of what it could not list: written whatever the budget, with its number...
        var report = Slipway_V1_RegionReport()
        report.region = "eu"
        report.refusalsNotListed = 5_000
        report.refusalsEpoch = 1
        let notListed = RegionRefusals.audits(report, previous: nil)
        #expect(budget.admit(notListed, now: now) == notListed && notListed.first?.detail.hasPrefix("5000 more") == true)
        // ...once a window: a stolen region key raising the count with every report adds numbers, not rows.
        var previous = report
        for _ in 0..<50 {
            var next = previous
            next.refusalsNotListed += 6
            #expect(budget.admit(RegionRefusals.audits(next, previous: previous), now: now).isEmpty)
            previous = next
        }
        let summary = budget.admit([], now: now + .seconds(60))
        #expect(summary.map(\.identity) == ["region/eu"])
        #expect(summary.first?.detail.hasPrefix("320 more refusal(s) from region/eu") == true, "\(summary.first?.detail ?? "")")
    }

    @Test("past 10,000 sources in a minute the rest share one budget, so the ledger stays bounded")
    func manySources() {
        var budget = AuditBudget()
        let now = ContinuousClock.now
        let many = (0..<AuditBudget.sourcesTracked).map { Self.refusal("agent/\($0)") }
        #expect(budget.admit(many, now: now).count == AuditBudget.sourcesTracked)
        let more = (0..<150).map { Self.refusal("agent/extra-\($0)") }
        #expect(budget.admit(more, now: now).count == AuditBudget.perSource)
        let summary = budget.admit([], now: now + .seconds(60))
        #expect(summary.count == 1 && summary.first?.object == AuditBudget.otherSources && summary.first?.identity == "")
    }

    @Test("unauthenticated refusals (an --insecure coordinator) are named as such in the summary")
    func anonymous() {
        var budget = AuditBudget()
        let now = ContinuousClock.now
        _ = budget.admit(Array(repeating: Self.refusal(""), count: 101), now: now)
        let summary = budget.admit([], now: now + .seconds(60))
        #expect(summary.first?.detail.hasPrefix("1 more refusal(s) from unauthenticated peers") == true)
    }
}
