import SlipwayCore
import Foundation
public import Logging
import SlipwayRegionStore
public import SlipwayThreads

/// The region controller daemon, four threads: the regional blob store (the
/// store's one owner: the others reach it through its ``BlobStoreMailbox``);
/// replication from the other regions; the follower of the region's targets;
/// and the agent tracker (registrations, peer lists, target pushes, the
/// region's aggregated report to the coordinator).
public enum RegionController {
    /// The services to run together until graceful shutdown.
    public static func services(config: RegionConfig, logger: Logger) throws -> [LoopService] {
        try StartupCheck.writableDirectory(config.storePath, setting: "--store-dir")
        let mailbox = try BlobStoreMailbox()
        let board = RegionTargetBoard()
        let store = StoreServer.Settings(region: config.region, id: config.id, endpoint: config.storeEndpoint, path: config.storePath,
                                           security: config.security, refusals: config.refusals, uploadSlots: config.storeUploadSlots)
        return [
            LoopService(name: "region-store") { stop in
                try StoreServer(config: store, mailbox: mailbox, logger: logger, stop: stop)
            },
            LoopService(name: "region-replication") { stop in
                try Replicator(config: config, store: mailbox, logger: logger, stop: stop)
            },
            LoopService(name: "region-targets") { stop in
                try TargetFollower(config: config, board: board, logger: logger, stop: stop)
            },
            LoopService(name: "region-tracker") { stop in
                try TrackerLoop(config: config, board: board, logger: logger, stop: stop)
            },
        ]
    }
}
