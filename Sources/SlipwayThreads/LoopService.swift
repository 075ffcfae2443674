public import ServiceLifecycle

/// A daemon whose I/O loop runs on a thread of its own, as a `Service`.
///
/// `body` runs on a dedicated `OwnedThread` (blocking libzmq and libpq calls are
/// safe there) and should return soon after its `StopSignal` is set; graceful
/// shutdown (SIGTERM, SIGINT through a `ServiceGroup`) sets it.
public final class LoopService: Service {
    private let name: String
    private let body: @Sendable (StopSignal) throws -> Void

    /// A service named `name` that runs `body` until it returns or throws.
    public init(name: String, body: @escaping @Sendable (StopSignal) throws -> Void) {
        self.name = name
        self.body = body
    }

    /// Runs the loop; returns when it does.
    public func run() async throws {
        let stop = StopSignal()
        let thread = OwnedThread(name: name)
        defer { thread.shutdown() }
        let body = self.body
        try await withGracefulShutdownHandler {
            try await thread.run { try body(stop) }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}
