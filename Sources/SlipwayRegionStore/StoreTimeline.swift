import Foundation
import Logging

/// The store's side of a distribution at debug level: each agent's piece
/// request, each slot handed out or taken back, and each piece handed to its
/// socket, timed from the store's start, with the asker's name. Agents log the pieces they receive; this is
/// what the store decided meanwhile (who asked, who waited, who was sent what).
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

    /// `peer` called itself `name` in a message.
    mutating func heard(_ peer: [UInt8], as name: String) {
        guard isOn, names[peer] != name else { return }
        if names.count >= Self.maxNames { names.removeAll() }
        names[peer] = name
    }

    func requested(_ peer: [UInt8], piece: Int, chosen: Int?, taken: Bool) {
        guard isOn else { return }
        logger.debug("store piece request", metadata: [
            "peer": "\(name(peer))", "asked": "\(piece)", "sent": "\(chosen.map(String.init) ?? "-")",
            "slot": "\(taken)", "seconds": "\(seconds)"])
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
        let elapsed = (ContinuousClock.now - started).components
        return String(format: "%.3f", Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
    }

    private func name(_ peer: [UInt8]) -> String { names[peer] ?? "?" }
}
