public import SlipwayProto

/// One service on one machine converging on its target build: download,
/// install and start, health check, roll back to the previous build when the
/// new one fails its check, restart after a crash.
///
/// Pure: the agent feeds it targets and outcomes and carries out the
/// ``Action``s it returns; ``state``, ``reason`` and ``statusDigest`` are what
/// the machine reports.
public struct Rollout: Sendable {
    /// What the agent must do next.
    public enum Action: Equatable, Sendable {
        /// Fetch this artifact (peers, then the regional store) unless it is already held.
        case download(String)
        /// Install this build if needed, point `current` at it, (re)start the
        /// service and begin its health check.
        case activate(String)
        /// Stop the service's process and unlink `current`: no build can run.
        case stop
        /// Start this (already installed, current) build again without changing
        /// what the rollout is doing: its process died while a new target downloads.
        case restart(String)
    }

    /// Where the service stands.
    public enum Phase: Equatable, Sendable {
        /// Nothing to do (no target, or the target failed and nothing could be rolled back to).
        case idle
        /// Fetching this build.
        case downloading(String)
        /// This build was activated and awaits its health check; `fresh` when it
        /// was just deployed (a failure rolls back) rather than restarted.
        case starting(String, fresh: Bool)
        /// This build passed its health check and runs.
        case running(String)
        /// This build's process exited; the agent restarts it after a pause.
        case crashed(String)
    }

    /// The service this rollout is for.
    public let service: String
    /// Where the service stands.
    public private(set) var phase: Phase = .idle
    /// The target build and its version, once one arrived.
    public private(set) var target: (digest: String, version: UInt64)?
    /// The build `current` points at.
    public private(set) var active: String?
    /// The build before it, kept for rollback.
    public private(set) var previous: String?
    /// What the machine reports.
    public private(set) var state: Slipway_V1_AgentState = .idle
    /// Why, for failed and rolled-back states.
    public private(set) var reason = ""
    /// The build the reported state is about.
    public private(set) var statusDigest = ""
    /// When rolled back: the build that failed.
    public private(set) var failedDigest = ""
    /// Builds that failed their health check: not tried again until the target
    /// names another build (a version bump alone, say a global change behind
    /// this region's override, is not a new decision).
    private var refused: Set<String> = []
    private var rollingBackFrom: (digest: String, reason: String)?
    /// The running build died while a new target downloads: ``retry()`` restarts it.
    private var restartPending = false

    /// A rollout for `service` whose installed builds (from the `current` and
    /// `previous` links on disk) are `active` and `previous`.
    public init(service: String, active: String? = nil, previous: String? = nil) {
        self.service = service
        self.active = active
        self.previous = previous
    }

    /// Starts what was installed before the agent restarted. `confirmed`: the
    /// build had passed its health check; if not (the agent stopped during the
    /// check), it is checked as a new build, and a failure rolls back.
    public mutating func resume(confirmed: Bool = true) -> [Action] {
        guard let active, phase == .idle else { return [] }
        if !confirmed, previous != nil {
            phase = .starting(active, fresh: true)
            report(.installed, active, "")
            return [.activate(active)]
        }
        return activate(active, fresh: false)
    }

    /// The region says the service should run `digest` (target `version`). A
    /// rollout's waves may move a machine between two builds within one
    /// version (the region widens or recomputes its share), so the same version
    /// with another build is a change too.
    public mutating func targetChanged(digest: String, version: UInt64) -> [Action] {
        if let target, target.version > version || (target.version == version && target.digest == digest) { return [] }
        // A new decision (a newer version naming another build) lifts the refusals; a wave moving
        // this machine between its two builds within one version is no decision: a build that
        // failed here is not tried again when the machine moves back into the wave.
        if let target, target.digest != digest, version > target.version { refused = [] }
        if target == nil { refused = [] }
        target = (digest, version)
        return converge()
    }

    /// The target's artifact is held whole and verified.
    public mutating func downloaded(_ digest: String) -> [Action] {
        guard phase == .downloading(digest) else { return [] }
        rollingBackFrom = nil
        return activate(digest, fresh: true)
    }

    /// The download of `digest` failed; ``retry()`` tries again. (An install
    /// that fails is ``unhealthy(_:reason:)``: the previous build comes back.)
    public mutating func failed(_ digest: String, reason: String) -> [Action] {
        guard phase == .downloading(digest) else { return [] }
        phase = .idle
        report(.downloadFailed, digest, reason)
        return []
    }

    /// The build passed its health check.
    public mutating func healthy(_ digest: String) -> [Action] {
        guard case .starting(digest, _) = phase else { return [] }
        phase = .running(digest)
        if let from = rollingBackFrom {
            report(.rolledBack, digest, "sha256:\(from.digest.prefix(12)) failed: \(from.reason); rolled back")
            failedDigest = from.digest
        } else {
            report(.running, digest, "")
        }
        return []
    }

    /// The build failed its health check (or its process exited while starting).
    public mutating func unhealthy(_ digest: String, reason: String) -> [Action] {
        guard case .starting(digest, let fresh) = phase else { return [] }
        guard fresh else {
            // A build that ran before and fails after a restart: keep retrying it.
            phase = .crashed(digest)
            report(.failed, digest, "restart failed: \(reason)")
            return []
        }
        if let target, target.digest == digest { refused.insert(digest) }
        if let previous, previous != digest {
            rollingBackFrom = (digest, reason)
            report(.failed, digest, reason)
            self.previous = nil
            return activate(previous, fresh: false, rollback: true)
        }
        phase = .idle
        active = nil
        report(.failed, digest, reason)
        return [.stop]
    }

    /// The service's process exited on its own after passing its health check.
    public mutating func exited(_ digest: String, status: Int32) -> [Action] {
        if case .downloading = phase, digest == active {
            restartPending = true
            return []
        }
        guard phase == .running(digest) else { return [] }
        phase = .crashed(digest)
        report(.failed, digest, "exited with status \(status); restarting")
        return []
    }

    /// After a pause: restarts a crashed build, or retries a failed download.
    public mutating func retry() -> [Action] {
        switch phase {
        case .crashed(let digest): return activate(digest, fresh: false)
        case .idle: return converge()
        case .downloading:
            guard restartPending, let active else { return [] }
            restartPending = false
            return [.restart(active)]
        default: return []
        }
    }

    private mutating func converge() -> [Action] {
        guard let target else { return [] }
        if refused.contains(target.digest) { return [] }
        switch phase {
        case .running(target.digest):
            // Rolled back by the operator to the build this machine already fell back to.
            if state == .rolledBack { report(.running, target.digest, "") }
            return []
        case .downloading(target.digest), .starting(target.digest, _), .crashed(target.digest):
            return []
        default:
            break
        }
        phase = .downloading(target.digest)
        report(.downloading, target.digest, "")
        return [.download(target.digest)]
    }

    private mutating func activate(_ digest: String, fresh: Bool, rollback: Bool = false) -> [Action] {
        restartPending = false
        if active != digest {
            if !rollback { previous = active }
            active = digest
        }
        phase = .starting(digest, fresh: fresh)
        if !rollback { report(.installed, digest, "") }
        return [.activate(digest)]
    }

    private mutating func report(_ state: Slipway_V1_AgentState, _ digest: String, _ reason: String) {
        if state != .rolledBack { failedDigest = "" }
        self.state = state
        self.statusDigest = digest
        self.reason = reason
    }
}
