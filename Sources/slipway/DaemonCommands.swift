import ArgumentParser
import Logging
import ServiceLifecycle
import SlipwayCoordinator
import SlipwayMetrics
import SlipwayRegion
import SlipwayWire
import SlipwayWorker

/// Runs a daemon's services in one ServiceGroup: SIGTERM and SIGINT shut them all
/// down gracefully, and one that fails stops the others.
func runDaemon(_ services: [any Service], label: String, options: DaemonOptions) async throws {
    let logger = Logger(label: label)
    var services = services
    if let listen = options.metricsListen {
        services.append(try MetricsEndpoint.service(listen: listen))
        logger.info("metrics served", metadata: ["endpoint": "http://\(listen)/metrics"])
    }
    let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                  gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: job intake, dispatch to workers, events. A second one waits as standby.")

    @Option(name: .customLong("database-url"), help: "libpq URL of the job database (env: SLIPWAY_DATABASE_URL).")
    var databaseURL: String?
    @Option(help: "ROUTER endpoint for producers and the CLI.") var intake = "tcp://127.0.0.1:7700"
    @Option(help: "ROUTER endpoint for workers.") var dispatch = "tcp://127.0.0.1:7701"
    @Option(help: "PUB endpoint for events.") var events = "tcp://127.0.0.1:7702"
    @Option(help: "ROUTER endpoint where event subscribers catch up.") var snapshot = "tcp://127.0.0.1:7703"
    @Option(help: "First retry back-off (doubles per attempt).") var retryBackoff = DurationArgument(argument: "2s")!
    @Option(help: "Default attempts per job.") var maxAttempts = 3
    @Option(help: "Default build timeout in seconds.") var timeout = 3_600
    @Option(help: "Comma-separated regions every artifact must reach before it is deployable (default: its build region alone).")
    var regions = ""
    @Option(help: "Delete artifacts older than this that are not a current or previous target; 0 keeps everything.")
    var artifactRetention = DurationArgument(argument: "14d")!
    @Option(help: "How often garbage collection runs.") var gcInterval = DurationArgument(argument: "10m")!
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        for region in regionList where !RegionCommand.isRegionName(region) {
            throw ValidationError("--regions: '\(region)' is not a region name (A-Z a-z 0-9 . _ -, starting with a letter or digit, up to 64)")
        }
    }

    private var regionList: [String] {
        regions.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        guard let url = databaseURL ?? Environment.value("SLIPWAY_DATABASE_URL") else {
            throw ValidationError("no database: pass --database-url or set SLIPWAY_DATABASE_URL")
        }
        daemon.bootstrapLogging()
        var config = CoordinatorConfig(databaseURL: url, id: ProcessIdentity.make("coordinator"))
        config.intakeEndpoint = intake
        config.dispatchEndpoint = dispatch
        config.eventsEndpoint = events
        config.snapshotEndpoint = snapshot
        config.heartbeatInterval = daemon.heartbeat.duration
        config.retryBackoff = retryBackoff.duration
        config.defaultMaxAttempts = maxAttempts
        config.defaultTimeoutSeconds = timeout
        config.regions = regionList
        config.artifactRetention = artifactRetention.duration == .zero ? nil : artifactRetention.duration
        config.collectionInterval = max(gcInterval.duration, .seconds(1))
        try await runDaemon([Coordinator.service(config: config, logger: Logger(label: "slipway.coordinator"))], label: "slipway.coordinator", options: daemon)
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a build worker: takes jobs from the coordinator, builds, uploads to its region's store.")

    @Option(help: "The coordinator's dispatch endpoint.") var coordinator = "tcp://127.0.0.1:7701"
    @Option(help: "This region's store endpoint.") var store = "tcp://127.0.0.1:7710"
    @Option(help: "This worker's region.") var region = "local"
    @Option(help: "Builds run at once.") var slots = 1
    @Option(name: .customLong("label"), help: "A label jobs may require, key=value (repeatable).") var labels: [LabelArgument] = []
    @Option(help: "Folder for workspaces and the repository cache.") var workDir = ".local/worker"
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        guard (1...256).contains(slots) else { throw ValidationError("--slots must be between 1 and 256") }
    }

    func run() async throws {
        daemon.bootstrapLogging()
        var config = WorkerConfig(region: region, workDirectory: workDir, id: ProcessIdentity.make("worker"))
        config.coordinatorEndpoint = coordinator
        config.storeEndpoint = store
        config.slots = slots
        config.labels = Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        config.heartbeatInterval = daemon.heartbeat.duration
        try await runDaemon([Worker.service(config: config, logger: Logger(label: "slipway.worker"))], label: "slipway.worker", options: daemon)
    }
}

struct RegionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "region",
        abstract: "Run a region controller: the regional blob store, replication from the other regions, and the tracker its agents use.")

    @Option(help: "The region's name.") var name = "local"
    @Option(help: "Folder of the blob store.") var storeDir = ".local/region"
    @Option(help: "ROUTER endpoint for uploads and downloads.") var store = "tcp://127.0.0.1:7710"
    @Option(name: .customLong("peer"), help: ArgumentHelp("Another region's store, to replicate from (repeatable).", valueName: "name=endpoint"))
    var peers: [LabelArgument] = []
    @Option(help: "The coordinator's intake endpoint (replication reports).") var coordinatorIntake = "tcp://127.0.0.1:7700"
    @Option(help: "The coordinator's event PUB endpoint.") var coordinatorEvents = "tcp://127.0.0.1:7702"
    @Option(help: "The coordinator's event catch-up endpoint.") var coordinatorSnapshot = "tcp://127.0.0.1:7703"
    @Option(help: "ROUTER endpoint where agents register and ask for peers.") var tracker = "tcp://127.0.0.1:7720"
    @Option(help: "PUB endpoint that pushes target changes to agents.") var targets = "tcp://127.0.0.1:7721"
    @Option(help: "The store endpoint agents should use, if not --store (e.g. when binding tcp://*).") var advertiseStore: String?
    @Option(help: "A machine unheard of for this long is no longer counted.") var agentTimeout = DurationArgument(argument: "20s")!
    @Option(help: "Pieces in flight per peer region while replicating.") var replicationWindow = 16
    @Option(help: "Cap on replication bandwidth into this region, in MiB/s (0: none).") var replicationMaxMibps = 0.0
    @Option(help: "A copy with no new piece for this long steps aside for the rest of the queue.")
    var replicationStallTimeout = DurationArgument(argument: "60s")!
    @OptionGroup var daemon: DaemonOptions

    /// The coordinator's rule for region names, so a region it would refuse never starts.
    static func isRegionName(_ text: String) -> Bool { SafeText.isName(text, max: 64) }

    func validate() throws {
        guard Self.isRegionName(name) else { throw ValidationError("--name: '\(name)' is not a region name (A-Z a-z 0-9 . _ -, starting with a letter or digit, up to 64)") }
        for peer in peers {
            guard Self.isRegionName(peer.key) else { throw ValidationError("--peer: '\(peer.key)' is not a region name") }
            guard peer.value.hasPrefix("tcp://") || peer.value.hasPrefix("ipc://") else {
                throw ValidationError("--peer \(peer.key): endpoint must start with tcp:// or ipc://")
            }
        }
        guard (1...256).contains(replicationWindow) else { throw ValidationError("--replication-window must be 1…256") }
        guard replicationMaxMibps >= 0, replicationMaxMibps < 1e6 else { throw ValidationError("--replication-max-mibps must be 0 or positive") }
    }

    func run() async throws {
        daemon.bootstrapLogging()
        var config = RegionConfig(region: name, storePath: storeDir, id: ProcessIdentity.make("region-\(name)"))
        config.storeEndpoint = store
        config.peers = Dictionary(peers.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        config.coordinatorIntake = coordinatorIntake
        config.coordinatorEvents = coordinatorEvents
        config.coordinatorSnapshot = coordinatorSnapshot
        config.trackerEndpoint = tracker
        config.targetsEndpoint = targets
        config.advertisedStoreEndpoint = advertiseStore
        config.agentTimeout = max(agentTimeout.duration, .seconds(1))
        config.replicationWindow = replicationWindow
        config.replicationBatch = min(8, replicationWindow)
        config.replicationMaxBytesPerSecond = UInt64(replicationMaxMibps * 1_048_576)
        config.stallTimeout = max(replicationStallTimeout.duration, .seconds(1))
        try await runDaemon(try RegionController.services(config: config, logger: Logger(label: "slipway.region")), label: "slipway.region", options: daemon)
    }
}
