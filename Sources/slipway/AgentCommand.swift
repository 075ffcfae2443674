import ArgumentParser
import Logging
import SlipwayAgent
import SlipwayAuth
import SlipwayCore

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a machine's agent: follow its services' targets, fetch builds peer-to-peer, install, supervise, roll back.",
        discussion: """
            Each --service is installed under ROOT/services/NAME/versions/DIGEST/NAME with a `current` link \
            (and `previous`, for rollback), run as `/bin/sh -c COMMAND` with $SLIPWAY_BINARY set (default: the \
            build itself), and health-checked: by --health NAME=COMMAND exiting 0 within --health-timeout, or \
            else by staying up for --health-grace. A new build that fails is rolled back on this machine.
            """)

    @Option(help: "This machine's id in its region (default: the host name).") var machineId: String?
    @Option(help: "The machine's region.") var region = "local"
    @Option(help: "The region controller's tracker endpoint.", transform: endpoint) var tracker = Endpoint(host: "127.0.0.1", port: 7720)
    @Option(help: "The region controller's target PUB endpoint.", transform: endpoint) var targets = Endpoint(host: "127.0.0.1", port: 7721)
    @Option(help: "ROUTER endpoint where this agent serves pieces to its peers.", transform: endpoint)
    var listen = Endpoint(host: "127.0.0.1", port: 7730)
    @Option(help: "The endpoint peers should connect to, if not --listen.", transform: endpoint) var advertise: Endpoint?
    @Option(help: "Folder for downloaded pieces and installed builds.") var root = ".local/agent"
    @Option(name: .customLong("service"), help: "A service this machine runs (repeatable).") var services: [String] = []
    @Option(name: .customLong("run"), help: ArgumentHelp("The command that runs a service (repeatable).", valueName: "service=command"))
    var commands: [LabelArgument] = []
    @Option(name: .customLong("health"), help: ArgumentHelp("A command that exits 0 when a service is healthy (repeatable).", valueName: "service=command"))
    var healthChecks: [LabelArgument] = []
    @Option(help: "How long a new build has to pass its health check.", transform: parseDuration) var healthTimeout = DurationArgument(argument: "30s")!
    @Option(help: "Without --health: how long a new build must stay up to count as healthy.", transform: parseDuration) var healthGrace = DurationArgument(argument: "2s")!
    @Option(help: "Cap on download bandwidth in MiB/s (0: none).") var maxDownloadMibps = 0.0
    @Flag(help: "Fetch from the regional store only, never from peers (for comparisons).") var seedOnly = false
    @Option(help: "Peers this machine uploads pieces to at once, the others waiting their turn (1-64); 0: every peer is served as it asks.") var uploadSlots = UploadSlotDefaults.agent
    @Option(help: "Apply a signed target new to this machine only if it was set, or the coordinator vouched for it, within this long; 0: no limit.",
            transform: parseDuration)
    var targetMaxAge = DurationArgument(argument: "24h")!
    @OptionGroup var keys: AgentKeyOptions
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        try daemon.checkMetricsExposure(insecure: keys.insecure)
        guard !services.isEmpty else { throw ValidationError("name at least one --service") }
        for name in services where !SafeText.isName(name, max: 128) {
            throw ValidationError("--service: '\(name)' is not a service name (A-Z a-z 0-9 . _ -, up to 128)")
        }
        guard Set(services).count == services.count else { throw ValidationError("--service: a service is named twice") }
        for entry in commands + healthChecks where !services.contains(entry.key) {
            throw ValidationError("--run/--health: '\(entry.key)' is not one of the --service names")
        }
        if let machineId, !SafeText.isName(machineId, max: 128) { throw ValidationError("--machine-id: '\(machineId)' is not a valid id") }
        if let problem = RegionName.problem(with: region) { throw ValidationError("--region: '\(SafeText.printable(region))' is not a region name: \(problem)") }
        if advertise?.host == "*" { throw ValidationError("--advertise: peers cannot connect to '*'; name this machine's address") }
        if advertise == nil, listen.host == "*" { throw ValidationError("--listen binds every interface: give --advertise, the address peers should use") }
        guard healthTimeout.duration >= .seconds(1) else { throw ValidationError("--health-timeout must be at least 1s") }
        guard targetMaxAge.duration == .zero || targetMaxAge.duration >= .seconds(1) else {
            throw ValidationError("--target-max-age must be 0 (no limit) or at least 1s")
        }
        guard maxDownloadMibps >= 0, maxDownloadMibps < 1e6 else { throw ValidationError("--max-download-mibps must be 0 or positive") }
        guard (0...64).contains(uploadSlots) else { throw ValidationError("--upload-slots must be between 0 (none) and 64") }
    }

    func run() async throws {
        daemon.bootstrapLogging()
        let machine = machineId ?? ProcessIdentity.hostName()
        let specs = services.map { name in
            var spec = ServiceSpec(name: name)
            if let command = commands.last(where: { $0.key == name }) { spec.command = command.value }
            spec.healthCheck = healthChecks.last(where: { $0.key == name })?.value
            spec.healthTimeout = healthTimeout.duration
            spec.healthGrace = healthGrace.duration
            return spec
        }
        var config = AgentConfig(machineID: machine, region: region, root: root, services: specs, id: ProcessIdentity.make("agent-\(machine)"))
        config.trackerEndpoint = tracker.named("--tracker")
        config.targetsEndpoint = targets.named("--targets")
        config.listenEndpoint = listen.named("--listen")
        config.advertisedEndpoint = advertise?.named("--advertise")
        config.heartbeatInterval = daemon.heartbeat.duration
        config.maxDownloadBytesPerSecond = UInt64(maxDownloadMibps * 1_048_576)
        config.seedOnly = seedOnly
        config.uploadSlots = uploadSlots
        config.targetMaxAge = targetMaxAge.duration == .zero ? nil : targetMaxAge.duration
        let security: DaemonSecurity
        (security, config.regionSecurity, config.targetVerifiers) = try keys.load(machine: machine, logger: daemon.logger("agent"))
        config.security = security
        await DaemonRunner.run("agent", services: [Agent.service(config: config, logger: daemon.logger("agent"))], options: daemon,
                               insecure: !security.isAuthenticated)
    }
}
