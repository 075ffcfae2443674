import SlipwayCore
import Logging
import SlipwayMetrics
import SlipwayProto
import SlipwayWire

/// Delivers a region's reports to the coordinator's intake and keeps each one
/// until the coordinator answers: a lost replication `complete` would leave an
/// artifact undeployable, a lost agent report would leave `status` stale. So
/// reports are requests with replies, one outstanding at a time, re-sent on a
/// fresh socket after a timeout (Lazy Pirate). Per key (an artifact, or the
/// region) only the newest report waits: an older one is replaced.
///
/// The coordinator answers with the report's own type when it recorded it;
/// `not_found` also ends a report (its subject is gone), `unavailable` (the
/// database hiccupped) queues it again unless a newer one waits.
///
/// Non-blocking: the owner polls ``socket`` and calls ``receive()`` and ``pump(now:)``.
final class ReportSender<Report: WireBody> {
    private let context: ZMQContext
    private let endpoint: Endpoint
    private let sender: String
    private let security: ClientSecurity
    private let logger: Logger
    private let codec = WireCodec()
    private let timeout: Duration
    private let key: (Report) -> String
    private(set) var socket: ZMQSocket?
    private var pending: [String: Report] = [:]
    private var order: [String] = []
    private var outstanding: (id: String, report: Report, sentAt: ContinuousClock.Instant)?
    /// After an `unavailable` answer or a refusal, nothing is sent before this.
    private var pausedUntil: ContinuousClock.Instant?
    /// Refusals (an unknown region, say) repeat until an operator fixes the
    /// configuration: sent less and less often, logged once a minute.
    private var refusals = Backoff(initial: .seconds(1), cap: .seconds(60))
    private var refusalLog = RepeatedEvent(interval: .seconds(60))
    /// Called when the coordinator has recorded a report (or said its subject no longer exists).
    var acknowledged: (Report) -> Void = { _ in }
    /// Called before ``acknowledged`` with the coordinator's answer, when it recorded the report.
    var answered: (_ sent: Report, _ answer: Report) -> Void = { _, _ in }

    init(context: ZMQContext, endpoint: Endpoint, sender: String, security: ClientSecurity, logger: Logger,
         timeout: Duration = .seconds(3), key: @escaping (Report) -> String) {
        self.context = context
        self.endpoint = endpoint
        self.sender = sender
        self.security = security
        self.logger = logger
        self.timeout = timeout
        self.key = key
    }

    /// Reports not yet acknowledged.
    var backlog: Int { pending.count + (outstanding == nil ? 0 : 1) }

    /// Queues a report, replacing an unsent older one with the same key.
    func report(_ report: Report) {
        let key = key(report)
        if pending[key] == nil { order.append(key) }
        pending[key] = report
    }

    /// Sends the next report if none is outstanding; resends on a new socket after a timeout.
    func pump(now: ContinuousClock.Instant) throws {
        if let waiting = outstanding {
            guard now - waiting.sentAt >= timeout else { return }
            // No answer: the coordinator is down or the reply was lost. Start over on a new socket.
            socket?.close()
            socket = nil
            outstanding = nil
            let waitingKey = key(waiting.report)
            if pending[waitingKey] == nil {
                order.insert(waitingKey, at: 0)
                pending[waitingKey] = waiting.report
            }
        }
        guard !order.isEmpty, pausedUntil.map({ now >= $0 }) ?? true else { return }
        let next = order.removeFirst()
        guard let report = pending.removeValue(forKey: next) else { return }
        let message = WireMessage(report, sender: sender)
        let connected = try socket ?? ZMQSocket.requestDealer(context: context, connectedTo: endpoint, options: security.options)
        socket = connected
        _ = try connected.send(codec.encode(message), wait: .never)
        outstanding = (message.envelope.messageID, report, now)
    }

    /// Reads every reply waiting on the socket.
    func receive() throws {
        guard let socket else { return }
        while let frames = try socket.receive(wait: .never, maxFrames: 4, droppingOversize: {
            SlipwayMetrics.rejected(daemon: "region", socket: "reports", reason: "bad_message")
        }) {
            guard let message = try? codec.decode(frames), let waiting = outstanding,
                  message.envelope.inReplyTo == waiting.id else { continue }
            outstanding = nil
            if message.type == Report.messageType {
                refusals.succeeded()
                refusalLog.reset()
                if let answer = try? message.body(as: Report.self) { answered(waiting.report, answer) }
                acknowledged(waiting.report)
                continue
            }
            let error = try? message.body(as: Slipway_V1_ErrorReply.self)
            switch error?.code {
            case .notFound:
                acknowledged(waiting.report)  // its subject is gone (an artifact collected meanwhile): nothing left to report
            case .unavailable:
                // The coordinator's database is struggling: try again in a second, not at once.
                pausedUntil = .now + .seconds(1)
                if pending[key(waiting.report)] == nil { report(waiting.report) }
            default:
                let delay = refusals.failed()
                pausedUntil = .now + delay
                if let count = refusalLog.occurred(now: .now) {
                    logger.error("coordinator refused a report; sending less often until it is accepted", metadata: [
                        "type": "\(Report.messageType)", "key": "\(key(waiting.report))", "refusals": "\(count)",
                        "code": "\(error?.code.name ?? "?")", "error": "\(SafeText.printable(error?.message ?? "", limit: 300))",
                        "next_try_in": "\(delay)"])
                }
            }
        }
    }
}
