public import SlipwayCore
public import SlipwayWire

/// Everything a build worker needs to run.
public struct WorkerConfig: Sendable {
    /// The coordinator's dispatch ROUTER.
    public var coordinatorEndpoint = Endpoint(host: "127.0.0.1", port: 7701)
    /// How the worker proves itself to the coordinator (its `worker` key, the
    /// coordinator's key pinned), or `.plain` when run `--insecure`. With a key,
    /// ``id`` must be a ``SlipwayCore/WorkerID`` naming it.
    public var coordinatorSecurity: ClientSecurity = .plain
    /// How the worker proves itself to its region's store (the region's key pinned).
    public var storeSecurity: ClientSecurity = .plain
    /// This region's store ROUTER, where artifacts are uploaded.
    public var storeEndpoint = Endpoint(host: "127.0.0.1", port: 7710)
    /// The worker's region.
    public var region: String
    /// Builds run at once.
    public var slots: Int = 1
    /// Labels jobs may require (os and arch are added automatically).
    public var labels: [String: String] = [:]
    /// Workspaces and the repository cache live here.
    public var workDirectory: String
    /// Heartbeat interval, both ways.
    public var heartbeatInterval: Duration = .seconds(5)
    /// Missed coordinator heartbeats before reconnecting.
    public var liveness: Int = 3
    /// Unique per process start; also the DEALER routing id.
    public var id: String

    /// A configuration with defaults for the rest.
    public init(region: String, workDirectory: String, id: String) {
        self.region = region
        self.workDirectory = workDirectory
        self.id = id
    }
}
