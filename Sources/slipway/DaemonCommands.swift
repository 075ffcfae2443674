import ArgumentParser
import Logging
import ServiceLifecycle
import SlipwayCoordinator
import SlipwayRegion
import SlipwayWorker

/// Runs one daemon in a ServiceGroup: SIGTERM and SIGINT shut it down gracefully.
func runDaemon(_ service: some Service, label: String) async throws {
    let logger = Logger(label: label)
    let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
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
    @OptionGroup var daemon: DaemonOptions

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
        try await runDaemon(Coordinator.service(config: config, logger: Logger(label: "slipway.coordinator")), label: "slipway.coordinator")
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
        try await runDaemon(Worker.service(config: config, logger: Logger(label: "slipway.worker")), label: "slipway.worker")
    }
}

struct RegionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "region",
        abstract: "Run a region controller: the regional content-addressed blob store.")

    @Option(help: "The region's name.") var name = "local"
    @Option(help: "Folder of the blob store.") var storeDir = ".local/region"
    @Option(help: "ROUTER endpoint for uploads and downloads.") var store = "tcp://127.0.0.1:7710"
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        daemon.bootstrapLogging()
        var config = RegionConfig(region: name, storePath: storeDir, id: ProcessIdentity.make("region-\(name)"))
        config.storeEndpoint = store
        try await runDaemon(RegionController.service(config: config, logger: Logger(label: "slipway.region")), label: "slipway.region")
    }
}
