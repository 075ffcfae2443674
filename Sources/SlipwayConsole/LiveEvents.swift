public import SlipwayCore
public import SlipwayJSON
import SlipwayProto
public import SlipwayThreads
public import SlipwayWire
import Synchronization

/// Fans the coordinator's event stream out to the browsers watching it.
///
/// Each watcher gets a bounded buffer: one that does not keep up loses its
/// oldest events, never the console's memory. The pages treat an event as
/// "this changed, look again" and re-read what it names, so a lost hint costs
/// a refresh a moment later (each page also re-reads every few seconds).
public final class LiveEventHub: Sendable {
    private struct State {
        var watchers: [Int: (owner: String, continuation: AsyncStream<String>.Continuation)] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    /// Events each watcher may have waiting before the oldest is dropped.
    public let bufferLimit: Int
    /// Watchers at once; more are refused (HTTP 503) instead of growing without bound.
    public let watcherLimit: Int
    /// Watchers of one account at once: a few tabs, not the whole allowance.
    public let watcherLimitPerAccount: Int

    public init(bufferLimit: Int = 256, watcherLimit: Int = 1_000, watcherLimitPerAccount: Int = 20) {
        self.bufferLimit = bufferLimit
        self.watcherLimit = watcherLimit
        self.watcherLimitPerAccount = watcherLimitPerAccount
    }

    /// A new stream of event JSON lines for account `owner`, or nil when there are too many.
    public func watch(owner: String) -> AsyncStream<String>? {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(bufferLimit))
        let id: Int? = state.withLock { state in
            guard state.watchers.count < watcherLimit,
                  state.watchers.values.filter({ $0.owner == owner }).count < watcherLimitPerAccount else { return nil }
            defer { state.nextID += 1 }
            state.watchers[state.nextID] = (owner, continuation)
            ConsoleMetrics.watchers(state.watchers.count)
            return state.nextID
        }
        guard let id else { return nil }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.watchers[id] = nil
                ConsoleMetrics.watchers(state.watchers.count)
            }
        }
        return stream
    }

    /// Watchers connected now.
    public var watcherCount: Int { state.withLock { $0.watchers.count } }

    /// Sends one event's JSON to every watcher.
    public func publish(_ json: JSONValue) {
        let line = json.rendered
        let watchers = state.withLock { $0.watchers.values.map(\.continuation) }
        for watcher in watchers { watcher.yield(line) }
    }

    /// Ends every watcher's stream (the console is stopping).
    public func finishAll() {
        let watchers = state.withLock { state in
            defer {
                state.watchers.removeAll()
                ConsoleMetrics.watchers(0)
            }
            return state.watchers.values.map(\.continuation)
        }
        for watcher in watchers { watcher.finish() }
    }
}

/// The thread that follows the coordinator's event stream for a ``LiveEventHub``.
final class LiveEventLoop: ServingLoop {
    private let subscriber: EventSubscriber
    private let context: ZMQContext
    private let hub: LiveEventHub
    private let stop: StopSignal
    let opened: [String: String]

    init(events: Endpoint, snapshot: Endpoint, security: ClientSecurity, hub: LiveEventHub, stop: StopSignal) throws {
        context = try ZMQContext()
        subscriber = try EventSubscriber(context: context, publisher: events, snapshot: snapshot, fromNewest: true,
                                         sender: "console", security: security)
        self.hub = hub
        self.stop = stop
        opened = ["events": "\(events)"]
        // The hub is made before the metrics backend is up, so its gauge starts here.
        ConsoleMetrics.watchers(hub.watcherCount)
    }

    func serve() throws {
        defer {
            subscriber.close()
            hub.finishAll()
        }
        while !stop.isStopped {
            if let event = try subscriber.next(wait: .timeout(.milliseconds(250))) {
                hub.publish(event.json)
            }
        }
    }
}

extension LiveEventHub {
    /// The daemon part that follows the coordinator's events (`events` PUB, `snapshot` ROUTER) into this hub.
    public static func service(events: Endpoint, snapshot: Endpoint, security: ClientSecurity, hub: LiveEventHub) -> LoopService {
        LoopService(name: "console-events") { stop in
            try LiveEventLoop(events: events, snapshot: snapshot, security: security, hub: hub, stop: stop)
        }
    }
}
