import Synchronization

/// The region's targets, shared between the thread that follows the coordinator
/// (which writes them) and the agent tracker (which serves them to machines).
/// A generation number tells the tracker when to look again.
final class RegionTargetBoard: Sendable {
    private let state = Mutex<(targets: RegionTargets, generation: UInt64)>((RegionTargets(), 0))

    /// Replaces the targets.
    func post(_ targets: RegionTargets) {
        state.withLock { current in
            guard current.targets != targets else { return }
            current = (targets, current.generation + 1)
        }
    }

    /// The targets and their generation.
    func read() -> (targets: RegionTargets, generation: UInt64) {
        state.withLock { $0 }
    }
}
