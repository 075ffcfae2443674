public import SlipwayAuth
public import SlipwayCore
public import SlipwayWire

/// One service an agent runs.
public struct ServiceSpec: Sendable, Equatable {
    /// The service's name; builds are installed as `services/<name>/versions/<digest>/<name>`.
    public var name: String
    /// Shell command that runs the service (`/bin/sh -c`); `$SLIPWAY_BINARY` is the installed build.
    public var command: String = "exec \"$SLIPWAY_BINARY\""
    /// Shell command that exits 0 when the service is healthy; nil: healthy once up for ``healthGrace``.
    public var healthCheck: String?
    /// How long a new build has to pass its health check before the machine rolls back.
    public var healthTimeout: Duration = .seconds(30)
    /// Without a health command: how long the process must stay up to count as healthy.
    public var healthGrace: Duration = .seconds(2)
    /// How long a stopping service gets after SIGTERM before SIGKILL.
    public var stopTimeout: Duration = .seconds(5)

    /// A service named `name` with the default command and checks.
    public init(name: String) { self.name = name }
}

/// Everything an agent needs to run.
public struct AgentConfig: Sendable {
    /// This machine's name in its region (unique there).
    public var machineID: String
    /// The region the machine is in.
    public var region: String
    /// How the agent proves itself to its region (its `agent` key, named after
    /// the machine, and the region's key pinned): tracker, target PUB and store.
    public var regionSecurity: ClientSecurity = .plain
    /// The machine's own key and the folder of the keys its piece server admits
    /// (`--key`, `--trust-dir`): peers connect to it over CURVE, pinning the key
    /// the tracker saw it register with, and it serves only `agent` keys in the
    /// folder. `.insecure`: it serves whoever connects.
    public var security: DaemonSecurity = .insecure
    /// The coordinator's target-signing keys: with any, a target change is applied
    /// only if one of them signed it (two during a rotation of the coordinator's
    /// key; empty: `--insecure`, nothing is checked).
    public var targetVerifiers: [Certificate.SigningKey] = []
    /// A signed target new to this machine is applied only if it was set, or the
    /// coordinator vouched for it, within this long (nil: no limit).
    public var targetMaxAge: Duration? = .seconds(86_400)
    /// The region controller's tracker ROUTER.
    public var trackerEndpoint = Endpoint(host: "127.0.0.1", port: 7720)
    /// The region controller's target PUB.
    public var targetsEndpoint = Endpoint(host: "127.0.0.1", port: 7721)
    /// Where this agent serves pieces to its peers (ROUTER bind).
    public var listenEndpoint = Endpoint(host: "127.0.0.1", port: 7730)
    /// What peers connect to, if not ``listenEndpoint`` (e.g. when binding `tcp://*`).
    public var advertisedEndpoint: Endpoint?
    /// Folder for the agent's piece store and installed builds.
    public var root: String
    /// The services this machine runs.
    public var services: [ServiceSpec]
    /// How often the agent reports to its region (and re-reads its targets).
    public var heartbeatInterval: Duration = .seconds(2)
    /// Cap on download bandwidth (bytes per second, 0 = none), to spare the machine's service traffic.
    public var maxDownloadBytesPerSecond: UInt64 = 0
    /// Fetch from the regional store only, never from peers (comparison
    /// benchmarks; machines that must not depend on their neighbours). Pieces
    /// held are still served to peers that ask.
    public var seedOnly = false
    /// Peers this machine uploads to at once (``UploadChoker``); the others wait their
    /// turn. 0: every downloader is served as it asks. 4 measured best where links set
    /// the pace (simulated up to 128 agents a region, and 16 real agents at 20 Mbit/s;
    /// docs/benchmarks.md); on machines whose CPU is the limit slots gain nothing.
    public var uploadSlots = UploadSlotDefaults.agent
    /// This process's name on the wire.
    public var id: String

    /// A configuration with the default endpoints.
    public init(machineID: String, region: String, root: String, services: [ServiceSpec], id: String) {
        self.machineID = machineID
        self.region = region
        self.root = root
        self.services = services
        self.id = id
    }
}
