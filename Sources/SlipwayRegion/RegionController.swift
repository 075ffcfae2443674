import SlipwayCore
import Foundation
public import Logging
import SlipwayArtifact
public import SlipwayThreads

/// The region controller daemon, three threads: the regional blob store; the
/// follower of the coordinator's events (replication from the other regions,
/// and the region's targets); and the agent tracker (registrations, peer lists,
/// target pushes, the region's aggregated report to the coordinator).
public enum RegionController {
    /// The services to run together until graceful shutdown.
    public static func services(config: RegionConfig, logger: Logger) throws -> [LoopService] {
        // Clean up after a crash once, before either thread opens the store.
        try StartupCheck.writableDirectory(config.storePath, setting: "--store-dir")
        _ = try BlobStore(root: URL(fileURLWithPath: config.storePath))
        let board = RegionTargetBoard()
        return [
            LoopService(name: "region-store") { stop in
                try RegionStoreLoop(config: config, logger: logger, stop: stop)
            },
            LoopService(name: "region-replication") { stop in
                try Replicator(config: config, board: board, logger: logger, stop: stop)
            },
            LoopService(name: "region-tracker") { stop in
                try TrackerLoop(config: config, board: board, logger: logger, stop: stop)
            },
        ]
    }
}
