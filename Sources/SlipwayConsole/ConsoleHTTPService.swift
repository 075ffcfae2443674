import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
public import SlipwayThreads
import Synchronization

/// The console's HTTP server as a daemon part: ``open()`` binds the port (or
/// says why it cannot, naming `--listen`), ``run()`` serves until graceful
/// shutdown or cancellation, then lets open requests finish.
public final class ConsoleHTTPService: DaemonService, Sendable {
    public let name = "console-http"
    private let host: String
    private let port: Int
    private let app: ConsoleApp
    private let logger: Logger
    private let started = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

    /// A server for `app` on `host:port`.
    public init(host: String, port: Int, app: ConsoleApp, logger: Logger) {
        self.host = host
        self.port = port
        self.app = app
        self.logger = logger
    }

    @discardableResult
    public func open() async throws -> [String: String] {
        let (bound, boundContinuation) = AsyncStream<String>.makeStream()
        let app = Application(
            router: self.app.router(),
            // Idle connections (half-sent requests, a client that never reads) are closed, not kept.
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(host, port: port), serverName: "slipway-console"),
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "\(self.port)")
                boundContinuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            defer { boundContinuation.finish() }
            try await group.run()
        }
        started.withLock { $0 = (group, task) }
        for await address in bound { return ["http": "http://\(address)"] }
        // The server ended before it was running: its error names the cause (port taken, bad address).
        do {
            try await task.value
        } catch {
            throw ListenFailure(description: "--listen \(host):\(port): \(error)")
        }
        throw ListenFailure(description: "--listen \(host):\(port): the server stopped before it was serving")
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

/// The console could not listen where it was told to.
struct ListenFailure: Error, CustomStringConvertible {
    let description: String
}
