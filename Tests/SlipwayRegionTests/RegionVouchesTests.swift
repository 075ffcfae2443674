import Foundation
@testable import SlipwayRegion
import SlipwayProto
import Testing

@Suite("The coordinator's vouches at a region")
struct RegionVouchesTests {
    static let digest = String(repeating: "a", count: 64)

    static func vouch(_ service: String, region: String = "", version: UInt64 = 1, at: Int64 = 10) -> Slipway_V1_TargetVouch {
        var vouch = Slipway_V1_TargetVouch()
        vouch.service = service
        vouch.region = region
        vouch.version = version
        vouch.artifactDigest = digest
        vouch.setAtUnixMicros = 5
        vouch.vouchedAtUnixMicros = at
        vouch.signature = Data(repeating: UInt8(at % 256), count: 64)
        return vouch
    }

    static func asked(_ request: (wanted: Bool, after: String)) -> Slipway_V1_RegionReport {
        var report = Slipway_V1_RegionReport()
        report.region = "eu"
        (report.vouchesWanted, report.vouchesAfter) = request
        return report
    }

    static func answer(_ vouches: [Slipway_V1_TargetVouch], last: Bool = true, answered: Bool = true) -> Slipway_V1_RegionReport {
        var answer = Slipway_V1_RegionReport()
        answer.region = "eu"
        answer.vouches = vouches
        answer.vouchesAnswered = answered
        answer.vouchesLast = last
        return answer
    }

    static func target(_ service: String, signedRegion: String = "", signedVersion: UInt64 = 1) -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = service
        change.region = "eu"
        change.signedRegion = signedRegion
        change.signedVersion = signedVersion
        change.artifactDigest = digest
        change.setAtUnixMicros = 5
        return change
    }

    @Test("a round asks page after page until the last, then waits the interval; one question at a time; a late answer to an old one is ignored")
    func rounds() {
        let start = ContinuousClock.now
        var vouches = RegionVouches(interval: .seconds(600), now: start)
        let first = Self.asked(vouches.request(now: start))
        #expect(first.vouchesWanted && first.vouchesAfter == "")
        #expect(!vouches.request(now: start + .seconds(1)).wanted, "not asked again while the question is out")
        vouches.received(Self.answer([Self.vouch("a"), Self.vouch("b")], last: false), for: first, now: start)
        let second = Self.asked(vouches.request(now: start + .seconds(1)))
        #expect(second.vouchesWanted && second.vouchesAfter == "b", "the next page starts after the last service")
        // The first question's answer, resent late, changes nothing.
        vouches.received(Self.answer([Self.vouch("zz", at: 99)]), for: first, now: start)
        #expect(vouches.vouched(Self.target("zz")).vouchedAtUnixMicros == 0)
        // Paced, failed, or an older coordinator: unanswered, the same page is asked again after a while.
        vouches.received(Self.answer([], answered: false), for: second, now: start + .seconds(1))
        #expect(!vouches.request(now: start + .seconds(2)).wanted, "not every second")
        let again = Self.asked(vouches.request(now: start + .seconds(12)))
        #expect(again.vouchesWanted && again.vouchesAfter == "b")
        vouches.received(Self.answer([Self.vouch("c")]), for: again, now: start + .seconds(12))
        #expect(vouches.roundsEnded == 1 && vouches.count == 3)
        #expect(!vouches.request(now: start + .seconds(500)).wanted, "the round is over")
        let next = vouches.request(now: start + .seconds(613))
        #expect(next.wanted && next.after == "")
        #expect(vouches.vouched(Self.target("a")).vouchedAtUnixMicros == 10)
        #expect(vouches.vouched(Self.target("c")).vouchSignature.count == 64)
    }

    @Test("a question whose report was lost is asked again after a while")
    func lostQuestion() {
        let start = ContinuousClock.now
        var vouches = RegionVouches(interval: .seconds(600), now: start)
        #expect(vouches.request(now: start).wanted)
        #expect(!vouches.request(now: start + .seconds(9)).wanted)
        #expect(vouches.request(now: start + .seconds(11)).wanted)
    }

    @Test("a vouch goes with exactly its target; another target's vouch replaces it whatever the clocks say; what is not vouched for any more is dropped")
    func matching() {
        let now = ContinuousClock.now
        var vouches = RegionVouches(interval: .seconds(1), now: now)
        vouches.received(Self.answer([Self.vouch("web", version: 4, at: 20), Self.vouch("web", region: "eu", version: 2, at: 20)]),
                         for: Self.asked(vouches.request(now: now)), now: now)
        #expect(vouches.vouched(Self.target("web", signedVersion: 4)).vouchedAtUnixMicros == 20)
        #expect(vouches.vouched(Self.target("web", signedRegion: "eu", signedVersion: 2)).vouchedAtUnixMicros == 20)
        #expect(vouches.vouched(Self.target("web", signedVersion: 5)).vouchedAtUnixMicros == 0, "a newer target has no vouch yet")
        var otherBuild = Self.target("web", signedVersion: 4)
        otherBuild.artifactDigest = String(repeating: "b", count: 64)
        #expect(vouches.vouched(otherBuild).vouchedAtUnixMicros == 0, "the same version of another build")
        // The next round: v5 vouched with an earlier clock (the database's clock stepped back) still replaces v4;
        // the override is no longer vouched for, so its vouch goes.
        let later = now + .seconds(2)
        vouches.received(Self.answer([Self.vouch("web", version: 5, at: 15)]), for: Self.asked(vouches.request(now: later)), now: later)
        #expect(vouches.vouched(Self.target("web", signedVersion: 5)).vouchedAtUnixMicros == 15)
        #expect(vouches.vouched(Self.target("web", signedRegion: "eu", signedVersion: 2)).vouchedAtUnixMicros == 0)
        #expect(vouches.count == 1)
        // An older vouch of the same target does not replace a newer one.
        let third = later + .seconds(2)
        vouches.received(Self.answer([Self.vouch("web", version: 5, at: 12)]), for: Self.asked(vouches.request(now: third)), now: third)
        #expect(vouches.vouched(Self.target("web", signedVersion: 5)).vouchedAtUnixMicros == 15)
    }
}
