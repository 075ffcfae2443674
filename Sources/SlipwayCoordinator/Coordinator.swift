public import Logging
public import ServiceLifecycle
import SlipwayThreads
import SlipwayWire

/// The coordinator daemon as a `Service`: its loop runs on a thread of its own;
/// graceful shutdown (SIGTERM) stops it after the message in hand, and it exits
/// with its sockets closed and every write committed.
public final class Coordinator: Service {
    private let config: CoordinatorConfig
    private let logger: Logger

    /// Creates the service; nothing happens until `run()`.
    public init(config: CoordinatorConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Waits to become leader (standby until then), then serves until shutdown.
    public func run() async throws {
        let stop = StopSignal()
        let thread = OwnedThread(name: "coordinator")
        defer { thread.shutdown() }
        let (config, logger) = (self.config, self.logger)
        try await withGracefulShutdownHandler {
            try await thread.run {
                let loop = try CoordinatorLoop(config: config, logger: logger, stop: stop)
                try loop.run()
            }
        } onGracefulShutdown: {
            logger.info("coordinator: shutdown requested")
            stop.stop()
        }
    }
}
