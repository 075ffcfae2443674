import SlipwayAgent
import Testing

@Suite struct SlowRequestRuleTests {
    static let mib = 1 << 20

    func rule() -> SlowRequestRule {
        var rule = SlowRequestRule(fallback: 10, timeout: 30)
        rule.typicalBytes = Double(Self.mib)
        return rule
    }

    @Test("until three pieces were timed: the fallback, longer for pieces past the average length, never shorter below it")
    func fallback() {
        var rule = rule()
        rule.timed(1, bytes: Self.mib)
        rule.timed(1, bytes: Self.mib)
        #expect(rule.slowAfter(bytes: Self.mib) == 10)
        #expect(rule.slowAfter(bytes: 4 * Self.mib) == 40)
        #expect(rule.slowAfter(bytes: Self.mib / 4) == 10)
        #expect(rule.timeout(bytes: 4 * Self.mib) == 120 && rule.timeout(bytes: Self.mib / 4) == 30)
        var unscaled = SlowRequestRule(fallback: 10, timeout: 30)
        #expect(unscaled.slowAfter(bytes: 4 * Self.mib) == 10 && unscaled.timeout(bytes: 4 * Self.mib) == 30, "no manifest yet: no scaling")
        unscaled.timed(1, bytes: 0)
        #expect(unscaled.secondsPerByte.isEmpty, "an empty piece says nothing about the rate")
    }

    @Test("slow after four times the median seconds per byte times the piece's length, at least 2 s and at most its timeout")
    func perByte() {
        var rule = rule()
        rule.timed(1, bytes: Self.mib)
        rule.timed(4, bytes: 4 * Self.mib)
        rule.timed(9, bytes: Self.mib)
        #expect(rule.slowAfter(bytes: Self.mib) == 4, "median 1 s per MiB")
        // A piece four times as long, at the same rate, is not slow where a per-piece limit would call it so.
        #expect(rule.slowAfter(bytes: 4 * Self.mib) == 16)
        #expect(rule.slowAfter(bytes: Self.mib / 4) == SlowRequestRule.floor)
        for _ in 0..<5 { rule.timed(0.1, bytes: Self.mib) }
        #expect(rule.slowAfter(bytes: Self.mib) == SlowRequestRule.floor)
        for _ in 0..<SlowRequestRule.kept { rule.timed(20, bytes: Self.mib) }
        #expect(rule.secondsPerByte.count == SlowRequestRule.kept, "only the latest count")
        #expect(rule.slowAfter(bytes: Self.mib) == 30, "never past the request timeout")
        #expect(rule.slowAfter(bytes: 4 * Self.mib) == 120, "a long piece's timeout is longer")
    }
}
