import Crypto
import SlipwayAuth
import SlipwayProto

/// Whether a target change an agent was told to run is one the coordinator
/// signed, for this agent's region. A region controller passes the coordinator's
/// change on in its own form (the agent's region, a combined version) with the
/// signed region and version beside it; the agent rebuilds what was signed.
enum TargetCheck {
    /// Why `change` must not be applied, or nil when one of the coordinator's keys
    /// (two during a rotation) signed it for `region` (or globally).
    static func problem(with change: Slipway_V1_TargetChange, region: String, verifiers: [Curve25519.Signing.PublicKey]) -> String? {
        guard !change.signature.isEmpty else { return "it carries no signature" }
        guard change.signedRegion.isEmpty || change.signedRegion == region else {
            return "it was signed for region \(change.signedRegion), not \(region)"
        }
        var signed = change
        signed.region = change.signedRegion
        signed.version = change.signedVersion
        guard verifiers.contains(where: { TargetSignature.verify(signed, signature: Array(change.signature), publicKey: $0) }) else {
            return "its signature does not verify with the coordinator's key"
        }
        return nil
    }
}
