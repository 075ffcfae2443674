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
    /// The unprivileged user recipes run as (`--build-user`), so a build cannot read
    /// the worker's key or speak as the worker; nil: recipes run as the worker's user.
    public var buildUser: BuildUser?
    /// What recipes get on top of the clean environment: toolchain folders first on `PATH`, variables, secrets.
    public var buildEnvironment = BuildEnvironment()
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

/// A user account recipes run as: resolved once at start.
public struct BuildUser: Sendable, Equatable {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32

    public init(name: String, uid: UInt32, gid: UInt32) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// The program that drops to the user before the recipe starts (util-linux, always on Debian).
    public static let setpriv = "/usr/bin/setpriv"

    /// The command that runs `arguments` as this user: no supplementary groups, and
    /// no way back up (`no_new_privs`: setuid programs such as sudo gain nothing).
    func wrap(_ arguments: [String]) -> [String] {
        [Self.setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--no-new-privs", "--"] + arguments
    }
}
