public import Crypto
public import SlipwayProto

/// The coordinator's Ed25519 signature over a ``Slipway_V1_TargetVouch``: its
/// word, at a time, that a target is still the current one of its scope.
/// Signed targets alone cannot say that: a region controller that was taken
/// over could send a machine that never ran the service a target the
/// coordinator replaced long ago, with its genuine signature, or keep sending
/// an old one after the coordinator moved on. Agents apply a target only if it
/// was set or vouched for recently (`--target-max-age`), as TUF's timestamp role does.
///
/// The bytes signed are ``signedBytes(_:)``: their own prefix (a target signature
/// never verifies as a vouch, nor the other way round) and every field with its length.
public enum TargetVouchSignature {
    static let domain = Array("slipway target vouch v1\n".utf8)

    /// The bytes the signature covers: service, region scope, version, build,
    /// when the target was set, and when it was vouched for.
    public static func signedBytes(_ vouch: Slipway_V1_TargetVouch) -> [UInt8] {
        var bytes = domain
        for text in [vouch.service, vouch.region] { TargetSignature.append(Array(text.utf8), to: &bytes) }
        TargetSignature.append(TargetSignature.number(vouch.version), to: &bytes)
        TargetSignature.append(Array(vouch.artifactDigest.utf8), to: &bytes)
        TargetSignature.append(TargetSignature.number(UInt64(bitPattern: vouch.setAtUnixMicros)), to: &bytes)
        TargetSignature.append(TargetSignature.number(UInt64(bitPattern: vouch.vouchedAtUnixMicros)), to: &bytes)
        return bytes
    }

    /// The vouch for exactly the target `change` carries (as signed: its scope and
    /// version), with the time and signature `change` brings along (none: zero and empty).
    public static func vouch(carriedBy change: Slipway_V1_TargetChange) -> Slipway_V1_TargetVouch {
        var vouch = Slipway_V1_TargetVouch()
        vouch.service = change.service
        vouch.region = change.signedRegion
        vouch.version = change.signedVersion
        vouch.artifactDigest = change.artifactDigest
        vouch.setAtUnixMicros = change.setAtUnixMicros
        vouch.vouchedAtUnixMicros = change.vouchedAtUnixMicros
        vouch.signature = change.vouchSignature
        return vouch
    }

    /// Whether `vouch` speaks of exactly the target `change` carries.
    public static func matches(_ vouch: Slipway_V1_TargetVouch, _ change: Slipway_V1_TargetChange) -> Bool {
        var carried = self.vouch(carriedBy: change)
        carried.vouchedAtUnixMicros = vouch.vouchedAtUnixMicros
        carried.signature = vouch.signature
        return carried == vouch
    }

    /// Signs `vouch` with the coordinator's key. - Returns: the 64-byte signature.
    public static func sign(_ vouch: Slipway_V1_TargetVouch, with key: Curve25519.Signing.PrivateKey) throws -> [UInt8] {
        Array(try key.signature(for: signedBytes(vouch)))
    }

    /// Whether `vouch.signature` is the coordinator's over exactly this vouch.
    public static func verify(_ vouch: Slipway_V1_TargetVouch, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        vouch.signature.count == 64 && publicKey.isValidSignature(vouch.signature, for: signedBytes(vouch))
    }
}
