public import Logging
public import ServiceLifecycle
import SlipwayThreads
import SlipwayWire

/// The build worker daemon as a `Service`. Graceful shutdown stops taking work
/// and hands running builds back to the queue (reported retryable).
public final class Worker: Service {
    private let config: WorkerConfig
    private let logger: Logger

    /// Creates the service; nothing happens until `run()`.
    public init(config: WorkerConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        let stop = StopSignal()
        let thread = OwnedThread(name: "worker")
        defer { thread.shutdown() }
        let (config, logger) = (self.config, self.logger)
        try await withGracefulShutdownHandler {
            try await thread.run { try WorkerLoop(config: config, logger: logger, stop: stop).run() }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}
