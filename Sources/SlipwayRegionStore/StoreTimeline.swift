import Foundation
import Logging
import SlipwayCore

/// The store's side of a distribution at debug level: each agent's piece
/// request, each slot handed out or taken back, and each piece handed to its
/// socket, timed from the store's start, with the asker's name. Agents log the
/// pieces they receive; this is what the store decided meanwhile (who asked,
/// who waited, who was sent what).
struct StoreTimeline {
    private let logger: Logger
    private let started = ContinuousClock.now
    /// Names peers gave in their envelopes, by routing id; bounded, forgotten all at once past the bound.
    private var names: [[UInt8]: String] = [:]
    private static let maxNames = 4096

    init(logger: Logger) {
        self.logger = logger
    }

    var isOn: Bool { logger.logLevel <= .debug }

    /// How a request stood with the store's upload slots.
    enum Slot: String {
        /// Taken on a slot the asker holds.
        case taken
        /// Not taken: the asker waits for a slot.
        case refused
        /// Served outside the slots (no slots, an older agent, a replica, several pieces).
        case none
    }

    /// `peer` called itself `name` in a message (kept printable and at most 64 characters).
    mutating func heard(_ peer: [UInt8], as name: String) {
        guard isOn else { return }
        let printable = SafeText.printable(name, limit: 64)
        guard names[peer] != printable else { return }
        if names.count >= Self.maxNames { names.removeAll() }
        names[peer] = printable
    }

    /// `peer` asked for `piece`; `sent` is what was queued for it (nil: nothing, turned away).
    func requested(_ peer: [UInt8], piece: Int, sent: Int?, slot: Slot) {
        guard isOn else { return }
        logger.debug("store piece request", metadata: [
            "peer": "\(name(peer))", "asked": "\(piece)", "sent": "\(sent.map(String.init) ?? "-")",
            "slot": "\(slot.rawValue)", "seconds": "\(seconds)"])
    }

    func slot(_ peer: [UInt8], choked: Bool) {
        guard isOn else { return }
        logger.debug("store slot", metadata: ["peer": "\(name(peer))", "choked": "\(choked)", "seconds": "\(seconds)"])
    }

    func sent(_ peer: [UInt8], piece: Int) {
        guard isOn else { return }
        logger.debug("store piece sent", metadata: ["peer": "\(name(peer))", "piece": "\(piece)", "seconds": "\(seconds)"])
    }

    private var seconds: String {
        String(format: "%.3f", (ContinuousClock.now - started).inSeconds)
    }

    private func name(_ peer: [UInt8]) -> String { names[peer] ?? "?" }
}
