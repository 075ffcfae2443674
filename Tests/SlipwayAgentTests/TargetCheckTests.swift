import Crypto
import Foundation
@testable import SlipwayAgent
import SlipwayAuth
import SlipwayProto
import Testing

/// An agent applies only the target changes the coordinator signed for its region.
@Suite("Target signatures at the agent")
struct TargetCheckTests {
    /// The coordinator's key, from a fixed seed (the key type is not Sendable, so it is made where used).
    static let seed = [UInt8](repeating: 7, count: 32)
    static var coordinator: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: seed) }

    /// A change as the coordinator makes it (global when `region` is empty), signed.
    static func signed(region: String = "", version: UInt64 = 3, digest: String = String(repeating: "a", count: 64)) throws -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = "web"
        change.region = region
        change.artifactDigest = digest
        change.version = version
        change.setBy = "alice"
        change.setAtUnixMicros = 1_700_000_000_000_000
        change.previousDigest = String(repeating: "b", count: 64)
        change.signature = Data(try TargetSignature.sign(change, with: coordinator))
        return change
    }

    /// What region `region` tells its agents: its own region and combined version, the signed ones beside.
    static func asRegionTells(_ change: Slipway_V1_TargetChange, region: String, combinedVersion: UInt64) -> Slipway_V1_TargetChange {
        var told = change
        told.signedRegion = change.region
        told.signedVersion = change.version
        told.region = region
        told.version = combinedVersion
        return told
    }

    @Test("a global or own-region change the coordinator signed passes, as the region passes it on")
    func accepted() throws {
        let verifier = Self.coordinator.publicKey
        #expect(TargetCheck.problem(with: Self.asRegionTells(try Self.signed(), region: "eu", combinedVersion: 7), region: "eu", verifiers: [verifier]) == nil)
        #expect(TargetCheck.problem(with: Self.asRegionTells(try Self.signed(region: "eu"), region: "eu", combinedVersion: 9),
                                    region: "eu", verifiers: [verifier]) == nil)
    }

    @Test("unsigned, altered, another region's or another key's changes are refused with the reason")
    func refused() throws {
        let verifier = Self.coordinator.publicKey
        var unsigned = Self.asRegionTells(try Self.signed(), region: "eu", combinedVersion: 3)
        unsigned.signature = Data()
        #expect(TargetCheck.problem(with: unsigned, region: "eu", verifiers: [verifier])?.contains("no signature") == true)

        var altered = Self.asRegionTells(try Self.signed(), region: "eu", combinedVersion: 3)
        altered.artifactDigest = String(repeating: "c", count: 64)
        #expect(TargetCheck.problem(with: altered, region: "eu", verifiers: [verifier])?.contains("does not verify") == true)

        var newer = Self.asRegionTells(try Self.signed(), region: "eu", combinedVersion: 3)
        newer.signedVersion += 1
        #expect(TargetCheck.problem(with: newer, region: "eu", verifiers: [verifier])?.contains("does not verify") == true)

        let elsewhere = Self.asRegionTells(try Self.signed(region: "us"), region: "eu", combinedVersion: 3)
        #expect(TargetCheck.problem(with: elsewhere, region: "eu", verifiers: [verifier])?.contains("region us") == true)

        let stranger = Curve25519.Signing.PrivateKey().publicKey
        let good = Self.asRegionTells(try Self.signed(), region: "eu", combinedVersion: 3)
        #expect(TargetCheck.problem(with: good, region: "eu", verifiers: [stranger]) != nil)
        // During a rotation an agent holds both keys: either one's signature passes.
        #expect(TargetCheck.problem(with: good, region: "eu", verifiers: [stranger, verifier]) == nil)
    }
}

@Suite("Builds fetched ahead of a wave")
struct PrefetchesTests {
    @Test("one per service, kept while set, paused after a failure, forgotten when unset")
    func prefetches() {
        var prefetches = Prefetches()
        let now = ContinuousClock.now
        #expect(prefetches.set("b", for: "web") && !prefetches.set("b", for: "web"), "a change only once")
        #expect(prefetches.due(now: now) == ["b"] && prefetches.digests == ["b"])
        prefetches.failed("b", now: now)
        prefetches.failed("other", now: now)
        #expect(prefetches.due(now: now).isEmpty && prefetches.digests == ["b"], "paused, still kept on disk")
        #expect(prefetches.due(now: now + Prefetches.retryPause) == ["b"])
        #expect(prefetches.set(nil, for: "web") && prefetches.digests.isEmpty)
        _ = prefetches.set("b", for: "web")
        #expect(prefetches.due(now: now) == ["b"], "a new prefetch of the same build is not paused by an old failure")
    }
}
