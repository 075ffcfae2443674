import Foundation
public import Logging
import SlipwayArtifact
public import SlipwayThreads

/// The region controller daemon: the regional blob store, served on one thread,
/// and replication from the other regions, on another. The deploy tracker joins
/// them in later work.
public enum RegionController {
    /// The services to run together until graceful shutdown.
    public static func services(config: RegionConfig, logger: Logger) throws -> [LoopService] {
        // Clean up after a crash once, before either thread opens the store.
        _ = try BlobStore(root: URL(fileURLWithPath: config.storePath))
        return [
            LoopService(name: "region-store") { stop in
                try RegionStoreLoop(config: config, logger: logger, stop: stop).run()
            },
            LoopService(name: "region-replication") { stop in
                try Replicator(config: config, logger: logger, stop: stop).run()
            },
        ]
    }
}
