import Foundation
public import Logging
import Metrics
import SlipwayCore
import SlipwayJSON
import SlipwayProto
import SlipwayStore
public import SlipwayThreads

/// One webhook's deliverer, on a thread of its own with its own database
/// session: the pipeline never waits for it, and a receiver that is down or
/// slow holds up only its own webhook. Every coordinator process runs one per
/// webhook; a PostgreSQL session lock makes exactly one of them deliver.
final class WebhookLoop: ServingLoop {
    private let target: WebhookTarget
    private let databaseURL: String
    private let logger: Logger
    private let stop: StopSignal
    private let poster: WebhookPoster
    private var db: PGConnection?
    private var delivery: WebhookDelivery?
    private var reconnect = Backoff(initial: .milliseconds(500), cap: .seconds(10))
    private var failureLog = RepeatedEvent(interval: .seconds(60))
    let opened: [String: String]

    init(target: WebhookTarget, databaseURL: String, timeout: Duration, logger: Logger, stop: StopSignal) {
        self.target = target
        self.databaseURL = databaseURL
        self.logger = logger
        self.stop = stop
        poster = WebhookPoster(timeout: timeout)
        opened = ["webhook": target.redacted]
    }

    func serve() throws {
        defer {
            poster.shutdown()
            db = nil  // closes the session, and with it the delivery lock
        }
        while !stop.isStopped {
            do {
                try step()
            } catch {
                // The database is away: what was acknowledged is in the cursor; what was not is sent again.
                logger.warning("webhook delivery paused: database unavailable", metadata: ["webhook": "\(target.redacted)", "error": "\(error)"])
                db = nil
                delivery = nil
                pause(reconnect.failed())
            }
        }
    }

    private func step() throws {
        let db = try connection()
        switch try WebhookCursors.holdDeliveryLock(db, url: target.url) {
        case .held: break
        case .taken: delivery = nil  // start from the stored cursor: another process may have moved it
        case .busy:
            delivery = nil
            pause(.seconds(5))  // another coordinator delivers this webhook
            return
        }
        if delivery == nil {
            let cursor = try WebhookCursors.load(db, url: target.url)
            delivery = WebhookDelivery(cursor: cursor)
            reconnect.succeeded()
            logger.info("webhook delivering", metadata: ["webhook": "\(target.redacted)", "after_event": "\(cursor)"])
        }
        switch delivery!.next(now: .now) {
        case .wait(let duration):
            if try !db.waitForNotifications(timeout: min(duration, .milliseconds(500))).isEmpty { delivery!.woken() }
        case .fetch(let after):
            let page = try WebhookCursors.events(db, after: after, types: target.events, limit: 100)
            delivery!.fetched(page.events.map(Self.event), through: page.through, now: .now)
            Gauge(label: "slipway_webhook_backlog", dimensions: [("webhook", target.redacted)]).record(delivery!.backlog)
        case .send(let event, let attempt):
            switch poster.post(event, to: target, attempt: attempt) {
            case .delivered:
                delivery!.delivered(event.sequence)
                Counter(label: "slipway_webhook_deliveries_total", dimensions: [("webhook", target.redacted), ("outcome", "delivered")]).increment()
                try WebhookCursors.delivered(db, url: target.url, through: event.sequence)
            case .failed(let reason):
                let delay = delivery!.failed(now: .now)
                Counter(label: "slipway_webhook_deliveries_total", dimensions: [("webhook", target.redacted), ("outcome", "failed")]).increment()
                if let repeats = failureLog.occurred(now: .now) {
                    logger.warning("webhook delivery failed; retrying", metadata: [
                        "webhook": "\(target.redacted)", "event": "\(event.deliveryID)", "attempt": "\(attempt)",
                        "retry_in": "\(delay)", "error": "\(SafeText.printable(reason, limit: 200))", "similar": "\(repeats)"])
                }
                try WebhookCursors.failed(db, url: target.url, error: reason)
            }
        }
    }

    private func connection() throws -> PGConnection {
        if let db { return db }
        let fresh = try PGConnection(url: databaseURL, logger: logger)
        try fresh.listen(Outbox.channel)
        db = fresh
        return fresh
    }

    /// Sleeps `duration` in short steps, so a stop is never kept waiting.
    private func pause(_ duration: Duration) {
        let until = ContinuousClock.now + duration
        while !stop.isStopped, ContinuousClock.now < until { Thread.sleep(forTimeInterval: 0.1) }
    }

    /// The body a receiver gets: the event object with its delivery id first.
    static func event(_ stored: (sequence: Int64, type: String, payload: [UInt8])) -> WebhookEvent {
        var event = (try? Slipway_V1_Event(serializedBytes: stored.payload)) ?? Slipway_V1_Event()
        event.sequence = UInt64(stored.sequence)
        // The type as the body spells it (the outbox's own names are the same for every type a webhook can ask for).
        let type = event.type == .unspecified ? stored.type : event.type.word
        let delivery = WebhookEvent(sequence: stored.sequence, type: type, body: [])
        guard case .object(let fields) = event.json else { return delivery }
        let body = JSONValue.object([("id", .string(delivery.deliveryID))] + fields).rendered
        return WebhookEvent(sequence: stored.sequence, type: type, body: Array(body.utf8))
    }
}

/// The webhook deliverers a coordinator runs.
public enum Webhooks {
    /// One service per webhook, each delivering `target`'s events from the database at `databaseURL`.
    public static func services(_ targets: [WebhookTarget], databaseURL: String, timeout: Duration = .seconds(10),
                                logger: Logger) -> [LoopService] {
        targets.enumerated().map { index, target in
            LoopService(name: "webhook-\(index + 1)") { stop in
                WebhookLoop(target: target, databaseURL: databaseURL, timeout: timeout, logger: logger, stop: stop)
            }
        }
    }
}
