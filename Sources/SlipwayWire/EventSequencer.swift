/// Orders a stream of sequence-numbered events (zguide "Clone"): applies each
/// number once, in order, and says when something was missed.
///
/// A pure state machine: the subscriber feeds it what arrives (live or from a
/// snapshot) and acts on its decisions.
public struct EventSequencer: Sendable, Equatable {
    /// What to do with an offered event.
    public enum Decision: Sendable, Equatable {
        /// The next number: deliver it.
        case apply
        /// Already applied: drop it.
        case duplicate
        /// Numbers were skipped: ask for everything after ``EventSequencer/lastApplied``.
        case gap
    }

    /// The newest number applied; 0 before the first.
    public private(set) var lastApplied: UInt64

    /// Starts after `lastApplied` (0 for the whole history).
    public init(after lastApplied: UInt64 = 0) {
        self.lastApplied = lastApplied
    }

    /// Decides what to do with event `sequence`; applying it advances the state.
    public mutating func offer(_ sequence: UInt64) -> Decision {
        if sequence <= lastApplied { return .duplicate }
        if sequence == lastApplied + 1 {
            lastApplied = sequence
            return .apply
        }
        return .gap
    }

    /// Whether a publisher that says it is at `sequence` has events this side lacks.
    public func isBehind(_ sequence: UInt64) -> Bool { sequence > lastApplied }
}
