/// What a key may do in Slipway. Every key pair carries exactly one role, and
/// every message type names the roles that may send it.
public enum Role: String, CaseIterable, Sendable, Hashable {
    case coordinator
    case region
    case worker
    case agent
    /// A CI job that submits builds.
    case ci
    /// A person or tool that deploys, rolls back and steers rollouts.
    case `operator`
}
