public import Hummingbird
public import Logging
import ServiceLifecycle
public import SlipwayThreads
import Synchronization

/// An HTTP server on Hummingbird as one part of a daemon (the console, every
/// daemon's `/metrics`): ``open()`` binds the port, or says why it cannot,
/// naming the flag; ``run()`` serves until graceful shutdown or cancellation,
/// then lets open requests finish. Idle connections (half-sent requests, a
/// client that never reads) are closed after 30 s, and one slow client never
/// holds up another: each connection is served on its own.
public final class HTTPDaemonService<Responder: HTTPResponderBuilder>: DaemonService, Sendable
where Responder.Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    public let name: String
    private let host: String
    private let port: Int
    private let flag: String
    private let logger: Logger
    private let makeResponder: @Sendable () -> Responder
    private let started = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

    /// A server named `name` for what `makeResponder` builds, on `host:port` (from `flag`, for messages).
    public init(name: String, host: String, port: Int, flag: String, logger: Logger, makeResponder: @escaping @Sendable () -> Responder) {
        self.name = name
        self.host = host
        self.port = port
        self.flag = flag
        self.logger = logger
        self.makeResponder = makeResponder
    }

    @discardableResult
    public func open() async throws -> [String: String] {
        let (bound, boundContinuation) = AsyncStream<String>.makeStream()
        let fallback = "\(host):\(port)"
        let app = Application(
            router: makeResponder(),
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(host, port: port), serverName: "slipway"),
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? fallback)
                boundContinuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            defer { boundContinuation.finish() }
            try await group.run()
        }
        started.withLock { $0 = (group, task) }
        for await address in bound { return [name: "http://\(address)"] }
        // The server ended before it was running: its error names the cause (port taken, bad address).
        do {
            try await task.value
        } catch {
            throw ListenFailure(description: "\(flag) \(host):\(port): cannot listen: \(error)")
        }
        throw ListenFailure(description: "\(flag) \(host):\(port): the server stopped before it was serving")
    }

    public func run() async throws {
        if started.withLock({ $0 == nil }) { try await open() }
        guard let (group, task) = started.withLock({ $0 }) else { return }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await task.value
            } onGracefulShutdown: {
                Task { await group.triggerGracefulShutdown() }
            }
        } onCancel: {
            Task { await group.triggerGracefulShutdown() }
        }
    }

    public func discard() async {
        guard let (group, task) = started.withLock({ $0 }) else { return }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// An HTTP server could not listen where it was told to.
struct ListenFailure: Error, CustomStringConvertible {
    let description: String
}
