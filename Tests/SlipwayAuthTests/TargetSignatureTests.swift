import Crypto
import SlipwayAuth
import SlipwayProto
import Testing

@Suite("Signed targets")
struct TargetSignatureTests {
    static func change() -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = "hello-service"
        change.region = "eu"
        change.artifactDigest = String(repeating: "a", count: 64)
        change.version = 7
        change.setBy = "operator/alice"
        change.setAtUnixMicros = 1_764_000_000_000_000
        change.previousDigest = String(repeating: "b", count: 64)
        return change
    }

    @Test("a change signed by the coordinator verifies with its public key, and with no other")
    func verifies() throws {
        let key = Curve25519.Signing.PrivateKey()
        let signature = try TargetSignature.sign(Self.change(), with: key)
        #expect(signature.count == 64)
        #expect(TargetSignature.verify(Self.change(), signature: signature, publicKey: key.publicKey))
        #expect(!TargetSignature.verify(Self.change(), signature: signature, publicKey: Curve25519.Signing.PrivateKey().publicKey))
        #expect(!TargetSignature.verify(Self.change(), signature: [], publicKey: key.publicKey))
        #expect(!TargetSignature.verify(Self.change(), signature: Array(signature.dropLast()) + [signature.last! ^ 1], publicKey: key.publicKey))
    }

    @Test("changing any field of a signed change breaks the signature", arguments: [
        "service", "region", "digest", "version", "setBy", "setAt", "previous", "moved",
    ])
    func tampered(field: String) throws {
        let key = Curve25519.Signing.PrivateKey()
        let signature = try TargetSignature.sign(Self.change(), with: key)
        var forged = Self.change()
        switch field {
        case "service": forged.service = "other-service"
        case "region": forged.region = ""  // a regional target replayed as a global one
        case "digest": forged.artifactDigest = String(repeating: "c", count: 64)
        case "version": forged.version += 1
        case "setBy": forged.setBy = "operator/mallory"
        case "setAt": forged.setAtUnixMicros += 1
        case "previous": forged.previousDigest = ""
        default:
            // The same bytes shifted from one field to the next must not sign the same.
            forged.service = "hello-serviceeu"
            forged.region = ""
        }
        #expect(!TargetSignature.verify(forged, signature: signature, publicKey: key.publicKey))
    }

    static func rolloutChange() -> Slipway_V1_TargetChange {
        var change = change()
        change.region = ""
        change.rolloutID = 4
        change.stableDigest = String(repeating: "b", count: 64)
        var share = Slipway_V1_WaveShare()
        share.region = "eu"
        share.machines = 1
        change.shares = [share]
        return change
    }

    @Test("a rollout's target signs its rollout, stable build and shares; the region's cutoff is not signed", arguments: [
        "rollout", "stable", "share", "extra share", "prefetch", "cutoff",
    ])
    func rolloutFields(field: String) throws {
        let key = Curve25519.Signing.PrivateKey()
        let signature = try TargetSignature.sign(Self.rolloutChange(), with: key)
        var changed = Self.rolloutChange()
        switch field {
        case "rollout": changed.rolloutID = 5
        case "stable": changed.stableDigest = String(repeating: "c", count: 64)
        case "share": changed.shares[0].machines = 1_000
        case "extra share": changed.shares.append(changed.shares[0])
        case "prefetch": changed.prefetch = true
        default: changed.waveCutoff = 12_345
        }
        #expect(TargetSignature.verify(changed, signature: signature, publicKey: key.publicKey) == (field == "cutoff"))
    }

    @Test("which machines a wave covers: stable scores, a cutoff, the stable build for the rest")
    func membership() {
        var change = Self.rolloutChange()
        let score = WaveMembership.score(rollout: 4, machine: "m1")
        #expect(score == WaveMembership.score(rollout: 4, machine: "m1") && score != WaveMembership.score(rollout: 5, machine: "m1"))
        change.waveCutoff = score
        #expect(WaveMembership.digest(for: "m1", in: change) == change.artifactDigest)
        change.waveCutoff = score - 1
        #expect(WaveMembership.digest(for: "m1", in: change) == change.stableDigest)
        #expect(WaveMembership.assignment(for: "m1", in: change).fetchAhead == nil, "no prefetch unless the plan says so")
        change.prefetch = true
        #expect(WaveMembership.assignment(for: "m1", in: change) == (change.stableDigest, change.artifactDigest), "outside: fetch ahead")
        change.waveCutoff = score
        #expect(WaveMembership.assignment(for: "m1", in: change) == (change.artifactDigest, nil), "inside: run it, nothing ahead")
        change.prefetch = false
        change.waveCutoff = score - 1
        change.waveCutoff = 0
        #expect(WaveMembership.digest(for: "m1", in: change) == change.stableDigest, "cutoff 0: nobody")
        change.rolloutID = 0
        #expect(WaveMembership.digest(for: "m1", in: change) == change.artifactDigest, "not a rollout: everyone")
        #expect(WaveMembership.cutoff(selecting: 2, of: [9, 3, 7]) == 7 && WaveMembership.cutoff(selecting: 3, of: [9, 3, 7]) == 9,
                "a count that happens to cover every machine known now does not take in machines that join later")
        #expect(WaveMembership.cutoff(selecting: 3, of: [9, 3, 7], all: true) == .max && WaveMembership.cutoff(selecting: 1, of: []) == 0)
        #expect(WaveMembership.cutoff(selecting: 0, of: [9]) == 0)
        var share = Slipway_V1_WaveShare()
        share.perMille = 250
        #expect(WaveMembership.count(of: share, total: 10) == 3 && WaveMembership.count(of: share, total: 0) == 0)
        share.machines = 50
        #expect(WaveMembership.count(of: share, total: 10) == 10)
        #expect(WaveMembership.count(of: nil, total: 10) == 0)
    }
}
