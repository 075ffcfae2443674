public import Logging
public import ServiceLifecycle
import SlipwayThreads
import SlipwayWire

/// The region controller daemon as a `Service`. Today it serves the regional
/// blob store; replication and the deploy tracker join it in later work.
public final class RegionController: Service {
    private let config: RegionConfig
    private let logger: Logger

    /// Creates the service; nothing happens until `run()`.
    public init(config: RegionConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        let stop = StopSignal()
        let thread = OwnedThread(name: "region-store")
        defer { thread.shutdown() }
        let (config, logger) = (self.config, self.logger)
        try await withGracefulShutdownHandler {
            try await thread.run { try RegionStoreLoop(config: config, logger: logger, stop: stop).run() }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}
