public import Logging
public import SlipwayThreads

/// The region controller daemon. Today it serves the regional blob store;
/// replication and the deploy tracker join it in later work.
public enum RegionController {
    /// A service that serves until graceful shutdown.
    public static func service(config: RegionConfig, logger: Logger) -> LoopService {
        LoopService(name: "region-store") { stop in
            try RegionStoreLoop(config: config, logger: logger, stop: stop).run()
        }
    }
}
