import Foundation
@testable import SlipwayRegion
import SlipwayAuth
import SlipwayProto
import Testing

@Suite("The coordinator's vouches at a region")
struct RegionVouchesTests {
    static func vouch(_ service: String, region: String = "", version: UInt64 = 1, at: Int64 = 10) -> Slipway_V1_TargetVouch {
        var vouch = Slipway_V1_TargetVouch()
        vouch.service = service
        vouch.region = region
        vouch.version = version
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

    static func target(_ service: String, signedRegion: String = "", signedVersion: UInt64 = 1) -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = service
        change.region = "eu"
        change.signedRegion = signedRegion
        change.signedVersion = signedVersion
        return change
    }

    @Test("a round asks page after page until a short one, then waits the interval; a late answer to an old question is ignored")
    func rounds() {
        let start = ContinuousClock.now
        var vouches = RegionVouches(interval: .seconds(600), now: start)
        let first = Self.asked(vouches.request(now: start))
        #expect(first.vouchesWanted && first.vouchesAfter == "")
        let full = (0..<TargetVouchSignature.pageServices).map { Self.vouch(String(format: "s%04d", $0)) }
        vouches.received(full, for: first, now: start)
        let second = Self.asked(vouches.request(now: start))
        #expect(second.vouchesWanted && second.vouchesAfter == "s0999", "the next page starts after the last service")
        // The first question's answer, resent late, changes nothing.
        vouches.received([Self.vouch("zz", at: 99)], for: first, now: start)
        #expect(vouches.vouched(Self.target("zz")).vouchedAtUnixMicros == 0)
        vouches.received([Self.vouch("t1")], for: second, now: start + .seconds(1))
        #expect(!vouches.request(now: start + .seconds(500)).wanted, "the round is over")
        let next = vouches.request(now: start + .seconds(601))
        #expect(next.wanted && next.after == "")
        #expect(vouches.vouched(Self.target("s0500")).vouchedAtUnixMicros == 10)
        #expect(vouches.vouched(Self.target("t1")).vouchSignature.count == 64)
    }

    @Test("a vouch goes with the target of exactly its scope and version, and the newest is kept")
    func matching() {
        let now = ContinuousClock.now
        var vouches = RegionVouches(interval: .seconds(600), now: now)
        vouches.received([Self.vouch("web", version: 4, at: 20), Self.vouch("web", region: "eu", version: 2, at: 20)],
                         for: Self.asked(vouches.request(now: now)), now: now)
        #expect(vouches.vouched(Self.target("web", signedVersion: 4)).vouchedAtUnixMicros == 20)
        #expect(vouches.vouched(Self.target("web", signedRegion: "eu", signedVersion: 2)).vouchedAtUnixMicros == 20)
        #expect(vouches.vouched(Self.target("web", signedVersion: 5)).vouchedAtUnixMicros == 0, "a newer target has no vouch yet")
        #expect(vouches.vouched(Self.target("web", signedRegion: "eu", signedVersion: 4)).vouchedAtUnixMicros == 0, "another scope")
        // The next round: a newer vouch replaces it; a service no longer vouched for is dropped.
        let later = now + .seconds(601)
        vouches.received([Self.vouch("web", version: 4, at: 30)], for: Self.asked(vouches.request(now: later)), now: later)
        #expect(vouches.vouched(Self.target("web", signedVersion: 4)).vouchedAtUnixMicros == 30)
        #expect(vouches.vouched(Self.target("web", signedRegion: "eu", signedVersion: 2)).vouchedAtUnixMicros == 20,
                "the service was vouched for this round, so its override's vouch stays")
        let third = later + .seconds(601)
        vouches.received([Self.vouch("api")], for: Self.asked(vouches.request(now: third)), now: third)
        #expect(vouches.vouched(Self.target("web", signedVersion: 4)).vouchedAtUnixMicros == 0, "web has no target any more")
    }
}
