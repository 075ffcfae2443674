import Crypto
import Foundation
@testable import SlipwayAgent
@testable import SlipwayAuth
import SlipwayProto
import Testing

/// An agent applies only the target changes the coordinator signed for its region.
@Suite("Target signatures at the agent")
struct TargetCheckTests {
    /// The coordinator's key, from a fixed seed (the key type is not Sendable, so it is made where used).
    static let seed = [UInt8](repeating: 7, count: 32)
    static var coordinator: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: seed) }
    /// When the coordinator set the changes: 2023-11-14T22:13:20Z.
    static let setAt: Int64 = 1_700_000_000_000_000

    /// A change as the coordinator makes it (global when `region` is empty), signed.
    static func signed(region: String = "", version: UInt64 = 3, digest: String = String(repeating: "a", count: 64)) throws -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = "web"
        change.region = region
        change.artifactDigest = digest
        change.version = version
        change.setBy = "alice"
        change.setAtUnixMicros = setAt
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

@Suite("Replayed targets at the agent")
struct TargetReplayTests {
    static func gate(_ versions: SignedVersions = SignedVersions()) -> TargetGate {
        let key = Certificate.SigningKey(publicKey: Array(TargetCheckTests.coordinator.publicKey.rawRepresentation), secretKey: nil)
        return TargetGate(region: "eu", keys: [key], versions: versions)
    }

    @Test("an older signed version of the same scope is refused; the same or a newer one passes; scopes count apart")
    func olderRefused() throws {
        var gate = Self.gate()
        let v3 = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 3), region: "eu", combinedVersion: 3)
        let v2 = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 2), region: "eu", combinedVersion: 2)
        #expect(gate.admit(v3) == .apply && gate.versionsRaised)
        gate.versionsSaved()
        #expect(gate.admit(v3) == .apply && !gate.versionsRaised, "the same change again, as every heartbeat brings it")
        guard case .refuse(let problem, true) = gate.admit(v2) else { Issue.record("v2 after v3 passed"); return }
        #expect(problem.contains("older than the 3"), "\(problem)")
        #expect(gate.refusal(for: "web") != nil)
        // An override of this region is numbered on its own: its version 1 is new.
        let override = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(region: "eu", version: 1), region: "eu", combinedVersion: 4)
        #expect(gate.admit(override) == .apply && gate.refusal(for: "web") == nil)
        // Cleared again (the coordinator's signed clearing comes along), the region follows the global v3 it already applied.
        var back = v3
        back.clearedOverride = try Self.clearing(version: 2)
        #expect(gate.admit(back) == .apply)
        #expect(gate.versions.version("web", scope: "") == 3 && gate.versions.version("web", scope: "eu") == 2)
    }

    /// The coordinator's clearing of `web`'s override in eu, signed.
    static func clearing(version: UInt64, key: Curve25519.Signing.PrivateKey = TargetCheckTests.coordinator) throws -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = "web"
        change.region = "eu"
        change.version = version
        change.setBy = "alice"
        change.setAtUnixMicros = 1_700_000_000_000_000
        change.previousDigest = String(repeating: "e", count: 64)
        change.signature = Data(try TargetSignature.sign(change, with: key))
        return change
    }

    @Test("back to the global target after an override only with the coordinator's signed clearing of it; a cleared override cannot come back")
    func overrideClearing() throws {
        var gate = Self.gate()
        let global = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 3), region: "eu", combinedVersion: 3)
        let override = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(region: "eu", version: 1, digest: String(repeating: "e", count: 64)),
                                                      region: "eu", combinedVersion: 4)
        #expect(gate.admit(global) == .apply && gate.admit(override) == .apply)
        // A region controller that was taken over sends the global target again while the override is in force.
        guard case .refuse(let problem, _) = gate.admit(global) else { Issue.record("back to global without a clearing"); return }
        #expect(problem.contains("no signed clearing"), "\(problem)")
        var forged = global
        forged.clearedOverride = try Self.clearing(version: 2, key: Curve25519.Signing.PrivateKey())
        #expect(gate.admit(forged) != .apply, "a clearing the coordinator did not sign")
        var cleared = global
        cleared.clearedOverride = try Self.clearing(version: 2)
        cleared.version = 5
        #expect(gate.admit(cleared) == .apply && gate.versions.version("web", scope: "eu") == 2)
        guard case .refuse(let again, _) = gate.admit(override) else { Issue.record("the cleared override came back"); return }
        #expect(again.contains("older than the 2"), "\(again)")
        let newer = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(region: "eu", version: 3), region: "eu", combinedVersion: 6)
        #expect(gate.admit(newer) == .apply, "a new override")
        // The global target with the earlier clearing, while the new override is in force.
        guard case .refuse(let stale, _) = gate.admit(cleared) else { Issue.record("an earlier clearing let it back"); return }
        #expect(stale.contains("the clearing that came along (v2) is older"), "\(stale)")
    }

    @Test("what was applied survives a restart through the state file; an unreadable file names itself")
    func persisted() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("signed-versions-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("signed-versions.json")
        #expect(try SignedVersions.load(file) == SignedVersions(), "a new machine has applied nothing")

        var gate = Self.gate()
        #expect(gate.admit(TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 5), region: "eu", combinedVersion: 5)) == .apply)
        try gate.versions.save(file)

        var restarted = Self.gate(try SignedVersions.load(file))
        let old = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 4), region: "eu", combinedVersion: 4)
        #expect(restarted.admit(old) != .apply, "a restart does not make v4 acceptable again")

        try Data("{\"web\": [1]}".utf8).write(to: file)
        let error = #expect(throws: SignedVersions.Unreadable.self) { try SignedVersions.load(file) }
        #expect(error?.description.contains(file.path) == true)
    }

    @Test("an agent without keys (--insecure) has nothing to check against and applies any change")
    func insecure() throws {
        var gate = TargetGate(region: "eu", keys: [])
        #expect(gate.admit(TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 5), region: "eu", combinedVersion: 5)) == .apply)
        #expect(gate.admit(TargetCheckTests.asRegionTells(try TargetCheckTests.signed(version: 1), region: "eu", combinedVersion: 1)) == .apply)
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
