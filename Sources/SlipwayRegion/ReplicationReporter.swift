import Logging
import SlipwayProto
import SlipwayWire

/// Sends replication reports to the coordinator's intake and keeps each one
/// until the coordinator answers: losing a "complete" would leave an artifact
/// undeployable, so reports are requests with replies, retried on a fresh
/// socket after a timeout (Lazy Pirate), newest state per artifact winning.
///
/// Non-blocking: the owner polls ``socket`` and calls ``receive()`` and ``pump(now:)``.
final class ReplicationReporter {
    private let context: ZMQContext
    private let endpoint: String
    private let sender: String
    private let logger: Logger
    private let codec = WireCodec()
    private let timeout: Duration
    private(set) var socket: ZMQSocket?
    private var pending: [String: Slipway_V1_ReplicationStatus] = [:]
    private var order: [String] = []
    private var outstanding: (id: String, report: Slipway_V1_ReplicationStatus, sentAt: ContinuousClock.Instant)?
    /// Called when the coordinator has recorded a report (or said the artifact no longer exists).
    var acknowledged: (Slipway_V1_ReplicationStatus) -> Void = { _ in }

    init(context: ZMQContext, endpoint: String, sender: String, logger: Logger, timeout: Duration = .seconds(3)) {
        self.context = context
        self.endpoint = endpoint
        self.sender = sender
        self.logger = logger
        self.timeout = timeout
    }

    /// Reports not yet acknowledged.
    var backlog: Int { pending.count + (outstanding == nil ? 0 : 1) }

    /// Queues a report, replacing an unsent older one for the same artifact.
    func report(_ status: Slipway_V1_ReplicationStatus) {
        if pending[status.digest] == nil { order.append(status.digest) }
        pending[status.digest] = status
    }

    /// Sends the next report if none is outstanding; resends on a new socket after a timeout.
    func pump(now: ContinuousClock.Instant) throws {
        if let waiting = outstanding {
            guard now - waiting.sentAt >= timeout else { return }
            // No answer: the coordinator is down or the reply was lost. Start over on a new socket.
            socket?.close()
            socket = nil
            outstanding = nil
            if pending[waiting.report.digest] == nil {
                order.insert(waiting.report.digest, at: 0)
                pending[waiting.report.digest] = waiting.report
            }
        }
        guard !order.isEmpty else { return }
        let digest = order.removeFirst()
        guard let report = pending.removeValue(forKey: digest) else { return }
        let message = WireMessage(report, sender: sender)
        let connected = try socket ?? ZMQSocket.requestDealer(context: context, connectedTo: endpoint)
        socket = connected
        _ = try connected.send(codec.encode(message), wait: .never)
        outstanding = (message.envelope.messageID, report, now)
    }

    /// Reads every reply waiting on the socket.
    func receive() throws {
        guard let socket else { return }
        while let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
            guard let message = try? codec.decode(frames), let waiting = outstanding,
                  message.envelope.inReplyTo == waiting.id else { continue }
            outstanding = nil
            switch message.type {
            case .replicationStatus:
                acknowledged(waiting.report)
            case .errorReply:
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                if error?.code == "not_found" {
                    acknowledged(waiting.report)  // collected meanwhile: nothing left to report
                } else if error?.code == "unavailable" {
                    // The coordinator's database hiccupped: try again, unless a newer report is already waiting.
                    if pending[waiting.report.digest] == nil { report(waiting.report) }
                } else {
                    logger.error("coordinator refused a replication report", metadata: [
                        "digest": "\(waiting.report.digest)", "code": "\(error?.code ?? "?")", "error": "\(error?.message ?? "")"])
                }
            default:
                continue
            }
        }
    }
}
