import SlipwayAgent
import Testing

@Suite struct SlowRequestRuleTests {
    @Test("slow after four times the median of the last 16 piece times, at least 2 s and at most the timeout; the fallback until three were timed")
    func rule() {
        var rule = SlowRequestRule()
        rule.timed(1)
        rule.timed(1)
        #expect(rule.slowAfter(fallback: 10, timeout: 30) == 10)
        rule.timed(3)
        #expect(rule.slowAfter(fallback: 10, timeout: 30) == 4, "median 1 s")
        for _ in 0..<5 { rule.timed(0.1) }
        #expect(rule.slowAfter(fallback: 10, timeout: 30) == SlowRequestRule.floor)
        for _ in 0..<SlowRequestRule.kept { rule.timed(20) }
        #expect(rule.seconds.count == SlowRequestRule.kept && rule.seconds.allSatisfy { $0 == 20 }, "only the latest count")
        #expect(rule.slowAfter(fallback: 10, timeout: 30) == 30, "never past the request timeout")
    }
}
