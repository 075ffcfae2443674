import SlipwayCore
import Foundation
import Logging
import SlipwayProto
import SlipwayThreads
import SlipwayWire

/// Follows the coordinator's `target.changed` events for one region, on a
/// thread of its own: the global and this region's targets are kept in
/// `targets.json` beside the store, with the last event applied, so they
/// survive the coordinator and this process being down; they are posted on
/// the ``RegionTargetBoard`` the agent tracker serves.
///
/// Apart from replication: its own subscription, its own position. A change
/// and the position that covers it are saved in one atomic write, so a crash
/// replays events, never skips one (replays are harmless: ``RegionTargets``
/// ignores versions it has).
final class TargetFollower: ServingLoop {
    private let config: RegionConfig
    private let board: RegionTargetBoard
    private let logger: Logger
    private let stop: StopSignal
    private let context: ZMQContext
    private let file: URL
    private let events: EventSubscriber
    private var saved: SavedTargets
    private var current: SavedTargets
    private var nextSave = ContinuousClock.now
    private var lastSaveFailed = false

    init(config: RegionConfig, board: RegionTargetBoard, logger: Logger, stop: StopSignal) throws {
        self.config = config
        self.board = board
        self.logger = logger
        self.stop = stop
        self.context = try ZMQContext()
        file = URL(fileURLWithPath: config.storePath).appendingPathComponent("targets.json")
        do {
            saved = try SavedTargets.load(from: file)
        } catch {
            throw StartupError(setting: "--store-dir \(config.storePath)", reason: "cannot read targets.json: \(error)")
        }
        current = saved
        events = try EventSubscriber(context: context, publisher: config.coordinatorEvents, snapshot: config.coordinatorSnapshot,
                                     after: saved.appliedThrough, sender: config.id,
                                     security: config.coordinatorSecurity)
    }

    var opened: [String: String] {
        ["targets_after_sequence": "\(saved.appliedThrough)", "services": "\(saved.targets.services.count)"]
    }

    func serve() throws {
        defer { events.close() }
        board.post(current.targets)
        for service in current.targets.services {
            let target = current.targets.effective(service)!
            logger.info("regional target", metadata: ["service": "\(service)", "digest": "\(target.digest)", "version": "\(target.version)"])
        }
        while !stop.isStopped {
            if let event = try events.next(wait: .timeout(.milliseconds(200))) { apply(event) }
            // A change is saved at once (after a failed save, once a second); a
            // position that only passed other events, once a second.
            if (current.targets != saved.targets && !lastSaveFailed) || ContinuousClock.now >= nextSave { save() }
        }
        save()
    }

    private func apply(_ event: Slipway_V1_Event) {
        defer { current.appliedThrough = event.sequence }
        guard event.type == .targetChanged else { return }
        guard let change = try? Slipway_V1_TargetChange(serializedBytes: event.payload) else {
            return logger.warning("target.changed with a bad payload ignored", metadata: ["sequence": "\(event.sequence)"])
        }
        let before = current.targets.effective(change.service)
        guard current.targets.apply(change, region: config.region) else { return }
        board.post(current.targets)
        let target = current.targets.effective(change.service)
        guard target != before else { return }
        guard let target else {
            return logger.info("regional target removed", metadata: ["service": "\(change.service)", "scope": "\(change.region)"])
        }
        logger.info("regional target changed", metadata: [
            "service": "\(change.service)", "digest": "\(target.digest)", "version": "\(target.version)",
            "scope": "\(change.region.isEmpty ? "global" : change.region)", "set_by": "\(change.setBy)"])
    }

    /// Saves targets and position together; on failure keeps trying every second
    /// (agents are served from memory meanwhile).
    private func save() {
        nextSave = ContinuousClock.now + .seconds(1)
        guard current != saved else { return }
        do {
            try current.save(to: file)
            saved = current
            lastSaveFailed = false
        } catch {
            if !lastSaveFailed { logger.error("cannot save the regional targets; will retry every second", metadata: ["error": "\(error)"]) }
            lastSaveFailed = true
        }
    }
}

/// `targets.json`: a region's targets and the last coordinator event applied to them.
struct SavedTargets: Codable, Equatable {
    var appliedThrough: UInt64 = 0
    var targets = RegionTargets()

    /// Reads the file; a missing one is an empty start, and one written before
    /// the position was saved with the targets is read as targets at position 0.
    static func load(from file: URL) throws -> SavedTargets {
        guard let data = try? Data(contentsOf: file) else { return SavedTargets() }
        if let saved = try? JSONDecoder().decode(SavedTargets.self, from: data) { return saved }
        return SavedTargets(appliedThrough: 0, targets: try JSONDecoder().decode(RegionTargets.self, from: data))
    }

    func save(to file: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try encoder.encode(self), to: file)
    }
}
