public import Logging
import SlipwayCore
public import SlipwayProto
public import SlipwayWire
import Synchronization

/// The requests a daemon refused for want of permission, kept until a report
/// has carried them to the coordinator's audit log (the region's store and
/// tracker share one). Bounded: past ``capacity`` a refusal is only counted.
public final class RefusalJournal: Sendable {
    /// Refusals kept at most; the rest are counted in ``Batch/notListed``.
    public static let capacity = 1_000
    /// Refusals one report carries at most.
    public static let perReport = 100
    /// Refusals an agent's registration carries at most (its piece server's, which its region passes on).
    public static let perRegistration = 16

    /// What the next report carries.
    public struct Batch: Equatable, Sendable {
        /// Oldest first.
        public var entries: [Slipway_V1_AuditEntry]
        /// The number of the last of `entries`; with none, of the last refusal acknowledged (0: none yet).
        public var through: UInt64
        /// Counted, not kept, since start.
        public var notListed: UInt64
        /// This journal's epoch.
        public var epoch: UInt64
    }

    private struct State {
        var entries: [(number: UInt64, entry: Slipway_V1_AuditEntry)] = []
        var last: UInt64 = 0
        var notListed: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Random per process: numbers restart at 1 with a new epoch.
    public let epoch = UInt64.random(in: 1...UInt64.max)

    public init() {}

    /// Keeps one refusal, now, of `type` from `sender`, at `place` (e.g. "store of region eu"), for `reason`.
    public func record(_ type: Slipway_V1_MessageType, from sender: Identity?, at place: String, reason: String) {
        var entry = Slipway_V1_AuditEntry()
        entry.atUnixMicros = WireMessage.nowUnixMicros()
        entry.identity = sender?.userID ?? ""
        entry.action = "\(type)"
        entry.object = place
        entry.outcome = "refused"
        entry.detail = String(reason.prefix(300))
        record(entry)
    }

    /// One refusal by `daemon`, in full: counted in `slipway_permission_denied_total` by
    /// role and message type, summarised in `log` (at most once a minute), and kept here
    /// for the audit log. The caller answers `permission_denied` and changes nothing.
    public func refused(_ type: Slipway_V1_MessageType, from sender: Identity?, daemon: String, at place: String, reason: String,
                        log: inout RejectionLog, logger: Logger) {
        DaemonSecurity.countRefusal(daemon: daemon, type, from: sender)
        log.record(reason: "permission_denied", detail: reason, logger: logger)
        record(type, from: sender, at: place, reason: reason)
    }

    /// Keeps one refusal as another daemon recorded it (an agent's, passed on by its region).
    public func record(_ entry: Slipway_V1_AuditEntry) {
        state.withLock { state in
            guard state.entries.count < Self.capacity else {
                state.notListed = state.notListed.addingSaturated(1)
                return
            }
            state.last += 1
            state.entries.append((state.last, entry))
        }
    }

    /// Counts refusals another daemon counted but did not keep.
    public func countUnlisted(_ count: UInt64) {
        guard count > 0 else { return }
        state.withLock { $0.notListed = $0.notListed.addingSaturated(count) }
    }

    /// The oldest refusals not yet acknowledged, for the next report (at most `limit`).
    public func pending(limit: Int = perReport) -> Batch {
        state.withLock { state in
            let carried = state.entries.prefix(limit)
            // With nothing waiting, every number so far was acknowledged.
            return Batch(entries: carried.map(\.entry), through: carried.last?.number ?? state.last, notListed: state.notListed, epoch: epoch)
        }
    }

    /// Forgets every refusal up to `through`: a report that carried them was recorded.
    public func acknowledge(through: UInt64) {
        state.withLock { state in state.entries.removeAll { $0.number <= through } }
    }
}
