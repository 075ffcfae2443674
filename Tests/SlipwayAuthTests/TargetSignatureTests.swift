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
}
