public import Crypto
public import SlipwayProto

/// The coordinator's Ed25519 signature over a target change, which agents
/// check with the coordinator's public key before they download or install
/// anything: a region controller or store that was taken over cannot make a
/// machine run a build the coordinator never approved.
///
/// What is signed is not the protobuf encoding (which has more than one valid
/// form) but ``signedBytes(_:)``: a fixed prefix and every field of the change,
/// each with its length, in field order.
public enum TargetSignature {
    /// Names what the bytes are, so a signature over anything else never verifies as a target.
    static let domain = Array("slipway target change v1\n".utf8)

    /// The bytes the signature covers: service, region scope, digest, version,
    /// who set it, when, and the digest it replaces; for a rollout's target also
    /// the rollout, the stable build, every region's share and whether to prefetch (the wave cutoff a
    /// region adds is not signed: it only chooses between the two signed builds).
    public static func signedBytes(_ change: Slipway_V1_TargetChange) -> [UInt8] {
        var bytes = domain
        for text in [change.service, change.region, change.artifactDigest] { append(Array(text.utf8), to: &bytes) }
        append(number(change.version), to: &bytes)
        append(Array(change.setBy.utf8), to: &bytes)
        append(withUnsafeBytes(of: change.setAtUnixMicros.bigEndian) { Array($0) }, to: &bytes)
        append(Array(change.previousDigest.utf8), to: &bytes)
        guard change.rolloutID != 0 else { return bytes }
        append(number(change.rolloutID), to: &bytes)
        append(Array(change.stableDigest.utf8), to: &bytes)
        append(number(UInt64(change.shares.count)), to: &bytes)
        for share in change.shares {
            append(Array(share.region.utf8), to: &bytes)
            append(number(UInt64(share.machines)), to: &bytes)
            append(number(UInt64(share.perMille)), to: &bytes)
        }
        append([change.prefetch ? 1 : 0], to: &bytes)
        return bytes
    }

    static func number(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    /// Signs `change` with the coordinator's key. - Returns: the 64-byte signature.
    public static func sign(_ change: Slipway_V1_TargetChange, with key: Curve25519.Signing.PrivateKey) throws -> [UInt8] {
        Array(try key.signature(for: signedBytes(change)))
    }

    /// Whether `signature` is the coordinator's over exactly this change.
    public static func verify(_ change: Slipway_V1_TargetChange, signature: [UInt8], publicKey: Curve25519.Signing.PublicKey) -> Bool {
        signature.count == 64 && publicKey.isValidSignature(signature, for: signedBytes(change))
    }

    static func append(_ field: [UInt8], to bytes: inout [UInt8]) {
        bytes += withUnsafeBytes(of: UInt32(field.count).bigEndian) { Array($0) }
        bytes += field
    }
}
