public import SlipwayAuth
public import SlipwayCore
import SlipwayWire

/// Everything a coordinator needs to run.
public struct CoordinatorConfig: Sendable {
    /// libpq URL of the database holding the queue.
    public var databaseURL: String
    /// ROUTER for producers and the CLI (submit, cancel, queries).
    public var intakeEndpoint = Endpoint(host: "127.0.0.1", port: 7700)
    /// ROUTER for workers (credit, assignments, heartbeats, logs, results).
    public var dispatchEndpoint = Endpoint(host: "127.0.0.1", port: 7701)
    /// PUB for the event stream.
    public var eventsEndpoint = Endpoint(host: "127.0.0.1", port: 7702)
    /// ROUTER where subscribers ask for the events they missed (catch-up).
    public var snapshotEndpoint = Endpoint(host: "127.0.0.1", port: 7703)
    /// Heartbeat interval, both ways.
    public var heartbeatInterval: Duration = .seconds(5)
    /// Missed heartbeats before a worker is lost.
    public var liveness: Int = 3
    /// Attempts per job when the submission does not say.
    public var defaultMaxAttempts: Int = 3
    /// Build timeout when the submission does not say.
    public var defaultTimeoutSeconds: Int = 3_600
    /// First retry back-off; doubles per attempt, capped at 5 minutes.
    public var retryBackoff: Duration = .seconds(2)
    /// Every region an artifact must reach before it is deployable. Empty: the
    /// build's own region is enough (a single-region install).
    public var regions: [String] = []
    /// Rollout plans and the gates' limits.
    public var plans = RolloutPlans()
    /// How submitted repositories may be reached (`--repo-transports`).
    public var repoTransports: Set<RepoTransport> = RepoTransport.defaultAllowed
    /// Artifacts older than this that are not a current or previous target are
    /// deleted everywhere; nil keeps every artifact.
    public var artifactRetention: Duration? = .seconds(14 * 86_400)
    /// Audit rows older than this are deleted by garbage collection; nil keeps them all.
    public var auditRetention: Duration? = .seconds(365 * 86_400)
    /// How often garbage collection runs.
    public var collectionInterval: Duration = .seconds(600)
    /// Its key and the keys it admits (CURVE with a ZAP handler on every socket),
    /// or `.insecure`: then anyone who can connect may do anything.
    public var security: DaemonSecurity = .insecure
    /// During a rotation of its key: the next key and the endpoints where each
    /// socket also listens with it, so clients can move over one by one.
    public var next: NextListeners?
    /// This process's name on the wire.
    public var id: String

    /// A configuration with defaults for everything but the database and id.
    public init(databaseURL: String, id: String) {
        self.databaseURL = databaseURL
        self.id = id
    }
}

/// The coordinator's next key and where each of its sockets also listens with
/// it (`--next-key`, `--next-intake` …): one socket, two listeners, each with
/// its own CURVE key (libzmq takes a listener's options when it binds).
public struct NextListeners: Sendable {
    public var key: Certificate
    public var intake: Endpoint
    public var dispatch: Endpoint
    public var events: Endpoint
    public var snapshot: Endpoint

    public init(key: Certificate, intake: Endpoint, dispatch: Endpoint, events: Endpoint, snapshot: Endpoint) {
        self.key = key
        self.intake = intake
        self.dispatch = dispatch
        self.events = events
        self.snapshot = snapshot
    }

    /// The options that give a listener bound after them the next key.
    var options: [ZMQOption] { [.curvePublicKey(key.publicKey), .curveSecretKey(key.secretKey!)] }
}

