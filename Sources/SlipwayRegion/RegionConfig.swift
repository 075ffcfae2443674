public import SlipwayAuth
public import SlipwayCore
public import SlipwayWire

/// Everything a region controller needs to run.
public struct RegionConfig: Sendable {
    /// The region's name, e.g. `eu-west`.
    public var region: String
    /// Folder of the regional blob store.
    public var storePath: String
    /// ROUTER for uploads and downloads (workers, agents, other regions).
    public var storeEndpoint = Endpoint(host: "127.0.0.1", port: 7710)
    /// The store endpoint agents are told to use as their seed (the bind endpoint unless set).
    public var advertisedStoreEndpoint: Endpoint?
    /// ROUTER where agents register, heartbeat and ask for peers (the tracker).
    public var trackerEndpoint = Endpoint(host: "127.0.0.1", port: 7720)
    /// PUB where target changes reach agents at once.
    public var targetsEndpoint = Endpoint(host: "127.0.0.1", port: 7721)
    /// A machine unheard of for this long is no longer counted or handed out as a peer.
    public var agentTimeout: Duration = .seconds(20)
    /// How often the region asks the coordinator to vouch afresh for its targets
    /// (agents apply a target only if it was set or vouched for within their `--target-max-age`).
    public var vouchInterval: Duration = .seconds(600)
    /// The other regions' store endpoints by region name: where replicas are copied from.
    public var peers: [String: Endpoint] = [:]
    /// The coordinator's intake ROUTER, where replication reports go.
    public var coordinatorIntake = Endpoint(host: "127.0.0.1", port: 7700)
    /// The region's key and the keys its store and tracker admit (workers,
    /// agents, other regions), or `.insecure`.
    public var security: DaemonSecurity = .insecure
    /// How the region reaches each peer region's store (that region's key pinned), by name.
    public var peerSecurity: [String: ClientSecurity] = [:]
    /// How the region proves itself to the coordinator (its `region` key, the
    /// coordinator's key pinned), or `.plain` when run `--insecure`.
    public var coordinatorSecurity: ClientSecurity = .plain
    /// The coordinator's event PUB.
    public var coordinatorEvents = Endpoint(host: "127.0.0.1", port: 7702)
    /// The coordinator's snapshot ROUTER (event catch-up).
    public var coordinatorSnapshot = Endpoint(host: "127.0.0.1", port: 7703)
    /// Pieces in flight per source region (credit); times the piece size bounds memory.
    public var replicationWindow: Int = 16
    /// Agents the store sends pieces to at once (`--store-upload-slots`; 0: every agent as it asks).
    /// With the agents' own slots, 4 kept the time flat from 16 to 128 agents a region (docs/benchmarks.md).
    public var storeUploadSlots = UploadSlotDefaults.store
    /// Pieces asked for in one request.
    public var replicationBatch: Int = 8
    /// Cap on replication bandwidth into this region (bytes per second, 0 = none):
    /// a share of a cross-region link, enforced on requests.
    public var replicationMaxBytesPerSecond: UInt64 = 0
    /// A copy that gets no new piece for this long steps aside (back of the line,
    /// retried after `retryAfterFailure`) so one unreachable region cannot hold
    /// up every other artifact.
    public var stallTimeout: Duration = .seconds(60)
    /// How long a failed replication waits before it is tried again.
    public var retryAfterFailure: Duration = .seconds(30)
    /// This process's name on the wire.
    public var id: String
    /// Requests the store and tracker refused, until a report carries them to the coordinator's audit log.
    public var refusals = RefusalJournal()

    /// A configuration with the default endpoints.
    public init(region: String, storePath: String, id: String) {
        self.region = region
        self.storePath = storePath
        self.id = id
    }
}
