import Crypto
import Foundation
@testable import SlipwayAgent
@testable import SlipwayAuth
import SlipwayProto
import Testing

/// A machine applies a signed target new to it only if the coordinator set it,
/// or vouched for it, within `--target-max-age`.
@Suite("Stale targets at the agent")
struct TargetFreshnessTests {
    static let hour: Int64 = 3_600_000_000
    static let setAt = TargetCheckTests.setAt

    static func gate(maxAge: Duration = .seconds(86_400), versions: SignedVersions = SignedVersions()) -> TargetGate {
        let key = Certificate.SigningKey(publicKey: Array(TargetCheckTests.coordinator.publicKey.rawRepresentation), secretKey: nil)
        return TargetGate(region: "eu", keys: [key], maxAge: maxAge, versions: versions)
    }

    /// The global v3 as region eu tells it, with the coordinator's vouch of `at` for `version` signed by `key`.
    static func told(vouchedAt at: Int64? = nil, version: UInt64 = 3, digest: String? = nil,
                     key: Curve25519.Signing.PrivateKey = TargetCheckTests.coordinator) throws -> Slipway_V1_TargetChange {
        var change = TargetCheckTests.asRegionTells(try TargetCheckTests.signed(), region: "eu", combinedVersion: 3)
        guard let at else { return change }
        var vouch = Slipway_V1_TargetVouch()
        vouch.service = "web"
        vouch.region = ""
        vouch.version = version
        vouch.artifactDigest = digest ?? change.artifactDigest
        vouch.setAtUnixMicros = change.setAtUnixMicros
        vouch.vouchedAtUnixMicros = at
        change.vouchedAtUnixMicros = at
        change.vouchSignature = Data(try TargetVouchSignature.sign(vouch, with: key))
        return change
    }

    @Test("a target set within the limit passes; one set before it, with no vouch, is refused with both times named")
    func setRecently() throws {
        var gate = Self.gate()
        #expect(gate.admit(try Self.told(), now: Self.setAt + 23 * Self.hour) == .apply)
        var fresh = Self.gate()
        guard case .refuse(let problem, true) = fresh.admit(try Self.told(), now: Self.setAt + 25 * Self.hour) else {
            Issue.record("a day-old target with no vouch passed"); return
        }
        #expect(problem.contains("it was set at 2023-11-14T22:13:20Z") && problem.contains("carries no vouch")
                && problem.contains("--target-max-age 24h"), "\(problem)")
        #expect(fresh.versions.version("web", scope: "") == 0, "nothing was applied")
    }

    @Test("an old target the coordinator vouched for lately passes; a vouch of another version, by another key, or too old does not")
    func vouched() throws {
        let now = Self.setAt + 30 * 24 * Self.hour
        var gate = Self.gate()
        #expect(gate.admit(try Self.told(vouchedAt: now - Self.hour), now: now) == .apply)

        var stale = Self.gate()
        guard case .refuse(let problem, _) = stale.admit(try Self.told(vouchedAt: now - 25 * Self.hour), now: now) else {
            Issue.record("a vouch older than the limit passed"); return
        }
        #expect(problem.contains("last vouched for by the coordinator at"), "\(problem)")

        var otherVersion = Self.gate()
        #expect(otherVersion.admit(try Self.told(vouchedAt: now - Self.hour, version: 2), now: now) != .apply,
                "a vouch for v2 says nothing about v3")
        var otherBuild = Self.gate()
        #expect(otherBuild.admit(try Self.told(vouchedAt: now - Self.hour, digest: String(repeating: "c", count: 64)), now: now) != .apply,
                "a vouch for another build under the same version (a database restored from an older backup) says nothing about this one")
        var otherKey = Self.gate()
        #expect(otherKey.admit(try Self.told(vouchedAt: now - Self.hour, key: Curve25519.Signing.PrivateKey()), now: now) != .apply)
        var moved = Self.gate()
        var later = try Self.told(vouchedAt: now - 2 * Self.hour)
        later.vouchedAtUnixMicros = now - Self.hour  // a region moving the time forward breaks the signature
        #expect(moved.admit(later, now: now) != .apply)
    }

    @Test("a target the machine already applied stays applied when its vouches stop, and its refusal is logged once")
    func alreadyApplied() throws {
        var versions = SignedVersions()
        _ = versions.applied("web", scope: "", version: 3)
        var gate = Self.gate(versions: versions)
        #expect(gate.admit(try Self.told(), now: Self.setAt + 90 * 24 * Self.hour) == .apply, "every heartbeat brings it again")

        var fresh = Self.gate()
        let now = Self.setAt + 48 * Self.hour
        guard case .refuse(_, true) = fresh.admit(try Self.told(), now: now) else { Issue.record("passed"); return }
        guard case .refuse(_, false) = fresh.admit(try Self.told(), now: now + 5_000_000) else {
            Issue.record("the same refusal five seconds later counted as new"); return
        }
    }

    @Test("what the machine runs is known current as of its latest verified vouch; a forged or older vouch moves nothing")
    func currentAsOf() throws {
        var versions = SignedVersions()
        _ = versions.applied("web", scope: "", version: 3)
        var gate = Self.gate(versions: versions)
        let now = Self.setAt + 30 * 24 * Self.hour
        #expect(gate.admit(try Self.told(), now: now) == .apply)
        #expect(gate.currentAsOf["web"] == Self.setAt)
        #expect(gate.admit(try Self.told(vouchedAt: now - Self.hour), now: now) == .apply)
        #expect(gate.currentAsOf["web"] == now - Self.hour)
        #expect(gate.admit(try Self.told(vouchedAt: now, key: Curve25519.Signing.PrivateKey()), now: now) == .apply,
                "the applied target, with a vouch that does not verify, is still the applied target")
        #expect(gate.currentAsOf["web"] == now - Self.hour, "a vouch that does not verify moves nothing")
        #expect(gate.admit(try Self.told(vouchedAt: now - 2 * Self.hour), now: now) == .apply)
        #expect(gate.currentAsOf["web"] == now - Self.hour, "never backwards")
    }

    @Test("a vouch covers every field it names, and only with its own domain")
    func coverage() throws {
        var vouch = Slipway_V1_TargetVouch()
        vouch.service = "web"
        vouch.version = 3
        vouch.artifactDigest = String(repeating: "a", count: 64)
        vouch.setAtUnixMicros = Self.setAt
        vouch.vouchedAtUnixMicros = Self.setAt + Self.hour
        vouch.signature = Data(try TargetVouchSignature.sign(vouch, with: TargetCheckTests.coordinator))
        let key = TargetCheckTests.coordinator.publicKey
        #expect(TargetVouchSignature.verify(vouch, publicKey: key))
        let changes: [(String, (inout Slipway_V1_TargetVouch) -> Void)] = [
            ("service", { $0.service = "api" }), ("region", { $0.region = "eu" }), ("version", { $0.version = 4 }),
            ("build", { $0.artifactDigest = String(repeating: "b", count: 64) }), ("time set", { $0.setAtUnixMicros += 1 }),
            ("time vouched", { $0.vouchedAtUnixMicros += 1 }),
        ]
        for (field, change) in changes {
            var moved = vouch
            change(&moved)
            #expect(!TargetVouchSignature.verify(moved, publicKey: key), "a vouch with another \(field) still verified")
        }
        // The same key signs targets: the same bytes under the target domain must not pass as a vouch.
        let body = Array(TargetVouchSignature.signedBytes(vouch).dropFirst(TargetVouchSignature.domain.count))
        var borrowed = vouch
        borrowed.signature = Data(try TargetCheckTests.coordinator.signature(for: TargetSignature.domain + body))
        #expect(!TargetVouchSignature.verify(borrowed, publicKey: key))
    }
}
