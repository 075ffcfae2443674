import Logging
import SlipwayProto
import SlipwayWire

/// Delivers the region's aggregated agent counts to the coordinator's intake.
/// Only the newest report matters: one is outstanding at a time, and one
/// unanswered after the timeout is re-sent on a fresh socket with whatever is
/// newest by then (Lazy Pirate, latest value wins).
///
/// Non-blocking: the owner polls ``socket`` and calls ``receive()`` and ``pump(now:)``.
final class RegionReportSender {
    private let context: ZMQContext
    private let endpoint: String
    private let sender: String
    private let logger: Logger
    private let codec = WireCodec()
    private let timeout: Duration
    private(set) var socket: ZMQSocket?
    private var latest: Slipway_V1_RegionReport?
    private var outstanding: (id: String, report: Slipway_V1_RegionReport, sentAt: ContinuousClock.Instant)?
    /// The last report the coordinator acknowledged.
    private(set) var delivered: Slipway_V1_RegionReport?
    /// When the last report was acknowledged.
    private(set) var deliveredAt: ContinuousClock.Instant?

    init(context: ZMQContext, endpoint: String, sender: String, logger: Logger, timeout: Duration = .seconds(3)) {
        self.context = context
        self.endpoint = endpoint
        self.sender = sender
        self.logger = logger
        self.timeout = timeout
    }

    /// Queues `report`, replacing any unsent one.
    func send(_ report: Slipway_V1_RegionReport) { latest = report }

    /// Sends the queued report if none is outstanding; gives up on a silent one after the timeout.
    func pump(now: ContinuousClock.Instant) throws {
        if let waiting = outstanding {
            guard now - waiting.sentAt >= timeout else { return }
            socket?.close()
            socket = nil
            outstanding = nil
            if latest == nil { latest = waiting.report }
        }
        guard let report = latest else { return }
        latest = nil
        let message = WireMessage(report, sender: sender)
        let connected = try socket ?? ZMQSocket.requestDealer(context: context, connectedTo: endpoint)
        socket = connected
        _ = try connected.send(codec.encode(message), wait: .never)
        outstanding = (message.envelope.messageID, report, now)
    }

    /// Reads every reply waiting on the socket.
    func receive(now: ContinuousClock.Instant) throws {
        guard let socket else { return }
        while let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: {}) {
            guard let message = try? codec.decode(frames), let waiting = outstanding,
                  message.envelope.inReplyTo == waiting.id else { continue }
            outstanding = nil
            if message.type == .regionReport {
                delivered = waiting.report
                deliveredAt = now
            } else {
                let error = try? message.body(as: Slipway_V1_ErrorReply.self)
                logger.warning("coordinator refused the region report", metadata: [
                    "code": "\(error?.code ?? "?")", "error": "\(error?.message ?? "")"])
                if latest == nil, error?.code == "unavailable" { latest = waiting.report }
            }
        }
    }
}
