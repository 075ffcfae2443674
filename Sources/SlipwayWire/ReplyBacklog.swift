/// Answers waiting for a ROUTER peer whose send queue is full, in order per
/// peer. An answer sent with `wait: .never` into a full queue is lost, and its
/// asker waits out its request timeout (measured at agents and the region store),
/// so it waits here instead and goes before anything else for that peer.
/// Bounded per peer and in bytes for all peers; past that an answer is dropped.
public struct ReplyBacklog {
    /// What became of one answer.
    public enum Outcome: Equatable {
        case sent, queued, dropped, gone
    }

    /// Answers kept per peer at most.
    public let perPeer: Int
    /// Bytes kept for all peers at most.
    public let maxBytes: Int
    /// A peer that takes none of its waiting answers for this long loses them (nil: never).
    public let staleAfter: Duration?
    private var waiting: [[UInt8]: (messages: [[[UInt8]]], progress: ContinuousClock.Instant)] = [:]
    private var bytes = 0

    /// A backlog of at most `perPeer` answers per peer and `maxBytes` in all.
    public init(perPeer: Int = 16, maxBytes: Int = 64 << 20, staleAfter: Duration? = nil) {
        self.perPeer = perPeer
        self.maxBytes = maxBytes
        self.staleAfter = staleAfter
    }

    /// Whether no answer waits for anyone.
    public var isEmpty: Bool { waiting.isEmpty }

    /// Whether answers wait for `peer` (then nothing else should go to it first).
    public func isWaiting(for peer: [UInt8]) -> Bool { waiting[peer] != nil }

    /// Sends `message` (routed to `peer`) now, or keeps it behind the answers already waiting.
    public mutating func send(_ message: [[UInt8]], to peer: [UInt8], on socket: ZMQSocket, now: ContinuousClock.Instant = .now) -> Outcome {
        if waiting[peer] == nil {
            do {
                if try socket.send(message, wait: .never) { return .sent }
            } catch {
                return .gone
            }
        }
        let size = Self.size(message)
        guard (waiting[peer]?.messages.count ?? 0) < perPeer, bytes + size <= maxBytes else { return .dropped }
        waiting[peer, default: ([], now)].messages.append(message)
        bytes += size
        return .queued
    }

    /// Sends each peer's waiting answers while its queue takes them; forgets peers that are gone or stale.
    public mutating func flush(on socket: ZMQSocket, now: ContinuousClock.Instant = .now) {
        for peer in Array(waiting.keys) {
            while let message = waiting[peer]?.messages.first {
                let sent: Bool
                do { sent = try socket.send(message, wait: .never) } catch { forget(peer); break }
                guard sent else { break }
                waiting[peer]!.messages.removeFirst()
                waiting[peer]!.progress = now
                bytes -= Self.size(message)
            }
            if waiting[peer]?.messages.isEmpty == true { waiting[peer] = nil }
            if let staleAfter, let held = waiting[peer], now - held.progress >= staleAfter { forget(peer) }
        }
    }

    private mutating func forget(_ peer: [UInt8]) {
        guard let held = waiting.removeValue(forKey: peer) else { return }
        bytes -= held.messages.reduce(0) { $0 + Self.size($1) }
    }

    private static func size(_ message: [[UInt8]]) -> Int { message.reduce(0) { $0 + $1.count } }
}
