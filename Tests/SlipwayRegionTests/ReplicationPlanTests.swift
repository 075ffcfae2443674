@testable import SlipwayRegion
import Testing

@Suite struct ReplicationPlanTests {
    let start = ContinuousClock.now

    @Test func asksThePreferredSourceForTheLowestPiecesUpToItsWindow() {
        var plan = ReplicationPlan(pieceCount: 10, sourceCount: 1, window: 4, batch: 3)
        let requests = plan.nextRequests(now: start)
        #expect(requests == [.init(source: 0, first: 0, count: 3), .init(source: 0, first: 3, count: 1)])
        #expect(plan.nextRequests(now: start).isEmpty, "the window is full")
        #expect(plan.received(0, from: 0, now: start) == .accepted)
        #expect(plan.nextRequests(now: start) == [.init(source: 0, first: 4, count: 1)])
    }

    @Test func spreadsPiecesOverEverySourceThatHasRoom() {
        var plan = ReplicationPlan(pieceCount: 8, sourceCount: 2, window: 4, batch: 4)
        let requests = plan.nextRequests(now: start)
        #expect(requests == [.init(source: 0, first: 0, count: 4), .init(source: 1, first: 4, count: 4)])
    }

    @Test func resumesWithOnlyThePiecesStillMissing() {
        var plan = ReplicationPlan(pieceCount: 6, sourceCount: 1, alreadyHeld: [0, 1, 3, 9], window: 8, batch: 8)
        #expect(plan.held == [0, 1, 3])
        #expect(plan.nextRequests(now: start) == [.init(source: 0, first: 2, count: 1), .init(source: 0, first: 4, count: 2)])
    }

    @Test func aCorruptPieceBansItsSourceAndIsAskedForElsewhere() {
        var plan = ReplicationPlan(pieceCount: 4, sourceCount: 2, window: 4, batch: 4)
        #expect(plan.nextRequests(now: start) == [.init(source: 0, first: 0, count: 4)])
        #expect(plan.received(0, from: 0, now: start) == .accepted)
        plan.corrupt(1, from: 0, reason: "bad piece 1")
        #expect(plan.sources[0] == .bad(reason: "bad piece 1"))
        #expect(plan.nextRequests(now: start) == [.init(source: 1, first: 1, count: 3)])
        #expect(!plan.isHopeless)
        for index in 1...3 { #expect(plan.received(index, from: 1, now: start) == .accepted) }
        #expect(plan.isComplete)
    }

    @Test func everySourceCorruptIsHopeless() {
        var plan = ReplicationPlan(pieceCount: 2, sourceCount: 2, window: 2, batch: 2)
        _ = plan.nextRequests(now: start)
        plan.corrupt(0, from: 0, reason: "a")
        _ = plan.nextRequests(now: start)
        plan.corrupt(0, from: 1, reason: "b")
        #expect(plan.isHopeless)
        #expect(plan.badReasons == ["a", "b"])
        #expect(plan.nextRequests(now: start).isEmpty)
    }

    @Test func aSourceLackingTheArtifactRestsThenIsAskedAgain() {
        var plan = ReplicationPlan(pieceCount: 2, sourceCount: 1, window: 2, batch: 2, restAfterMissing: .seconds(2))
        _ = plan.nextRequests(now: start)
        plan.lacking(0, now: start)
        #expect(plan.nextRequests(now: start + .seconds(1)).isEmpty)
        #expect(plan.nextRequests(now: start + .seconds(2)) == [.init(source: 0, first: 0, count: 2)])
    }

    @Test func aSilentSourceTimesOutButASlowOneDoesNot() {
        var plan = ReplicationPlan(pieceCount: 4, sourceCount: 2, window: 2, batch: 2, requestTimeout: .seconds(10))
        _ = plan.nextRequests(now: start)
        // Source 1 delivers one piece at 9 s, so at 10 s it is slow, not silent.
        #expect(plan.received(2, from: 1, now: start + .seconds(9)) == .accepted)
        #expect(plan.expire(now: start + .seconds(10)) == [0])
        #expect(plan.outstanding(from: 0) == 0)
        #expect(plan.missing == [0, 1])
        #expect(plan.outstanding(from: 1) == 1)
    }

    @Test func duplicatesAndOutOfRangePiecesAreIgnoredLateAnswersKept() {
        var plan = ReplicationPlan(pieceCount: 2, sourceCount: 2, window: 1, batch: 1, requestTimeout: .seconds(1))
        #expect(plan.nextRequests(now: start) == [.init(source: 0, first: 0, count: 1), .init(source: 1, first: 1, count: 1)])
        #expect(plan.received(0, from: 0, now: start) == .accepted)
        #expect(plan.received(0, from: 0, now: start) == .ignored)
        #expect(plan.received(7, from: 0, now: start) == .ignored)
        #expect(plan.expire(now: start + .seconds(2)) == [1])
        // Source 1's piece arrives after all: it was verified, so it counts.
        #expect(plan.received(1, from: 1, now: start + .seconds(2)) == .accepted)
        #expect(plan.isComplete)
    }
}
