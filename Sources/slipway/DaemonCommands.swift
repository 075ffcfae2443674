import SlipwayThreads
import SlipwayAuth
import ArgumentParser
import Foundation
import Logging
import SlipwayCore
import SlipwayCoordinator
import SlipwayNotify
import SlipwayRegion
import SlipwayWorker
#if canImport(Glibc)
import Glibc
#endif

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: job intake, dispatch to workers, events. A second one waits as standby.")

    @Option(name: .customLong("database-url"), help: "libpq URL of the job database (env: SLIPWAY_DATABASE_URL).")
    var databaseURL: String?
    @Option(help: "ROUTER endpoint for producers and the CLI.", transform: endpoint) var intake = Endpoint(host: "127.0.0.1", port: 7700)
    @Option(help: "ROUTER endpoint for workers.", transform: endpoint) var dispatch = Endpoint(host: "127.0.0.1", port: 7701)
    @Option(help: "PUB endpoint for events.", transform: endpoint) var events = Endpoint(host: "127.0.0.1", port: 7702)
    @Option(help: "ROUTER endpoint where event subscribers catch up.", transform: endpoint) var snapshot = Endpoint(host: "127.0.0.1", port: 7703)
    @Option(help: "First retry back-off (doubles per attempt).", transform: parseDuration) var retryBackoff = DurationArgument(argument: "2s")!
    @Option(help: "Default attempts per job.") var maxAttempts = 3
    @Option(help: "Default build timeout (e.g. 60m), for submissions that give none.", transform: parseDuration)
    var timeout = DurationArgument(argument: "60m")!
    @Option(help: "Comma-separated regions every artifact must reach before it is deployable (default: its build region alone).")
    var regions = ""
    @Option(help: "How submitted repositories may be reached, comma-separated: https, http, ssh, git, file. Remote helpers such as ext:: are always refused.")
    var repoTransports = "https,ssh,git,file"
    @Option(help: "Delete artifacts older than this that are not a current or previous target; 0 keeps everything.", transform: parseDuration)
    var artifactRetention = DurationArgument(argument: "14d")!
    @Option(help: "Delete audit log entries older than this; 0 keeps everything.", transform: parseDuration)
    var auditRetention = DurationArgument(argument: "365d")!
    @Option(help: "How often garbage collection runs.", transform: parseDuration) var gcInterval = DurationArgument(argument: "10m")!
    @Option(name: .customLong("rollout-plan"), help: ArgumentHelp(
        "A named rollout plan (repeatable): NAME=WAVE;WAVE;…[;pause-on-failure][;prefetch][;deadline=D], a wave being SHARES [bake=D] [min-healthy=P%] [max-failed=N] and SHARES REGION:COUNT or REGION:P% (REGION may be *), comma-separated.",
        valueName: "plan"))
    var rolloutPlans: [String] = []
    @Option(help: "The plan of a global deploy that names none: all, canary or a --rollout-plan.") var defaultPlan = "all"
    @Option(help: "The canary plan's bake time per wave.", transform: parseDuration) var canaryBake = DurationArgument(argument: "1m")!
    @Option(help: "How long the built-in plans' waves may take to become healthy before the rollout pauses.", transform: parseDuration)
    var waveDeadline = DurationArgument(argument: "10m")!
    @Option(help: "A region report older than this leaves a rollout's gate unable to see that region: the rollout pauses.", transform: parseDuration)
    var reportStaleAfter = DurationArgument(argument: "45s")!
    @Option(name: .customLong("webhook"), help: ArgumentHelp(
        "POST notable events as JSON to this URL, at least once and in order, retried with back-off while it fails (repeatable; docs/console.md).",
        valueName: "url"))
    var webhooks: [String] = []
    @Option(help: ArgumentHelp("Comma-separated event types webhooks get (default: \(WebhookTarget.defaultEvents.joined(separator: ","))).", valueName: "types"))
    var webhookEvents: String?
    @Option(help: ArgumentHelp("A file whose bytes sign every webhook body (HMAC-SHA256, hex, in X-Slipway-Signature).", valueName: "file"))
    var webhookSecretFile: String?
    @Option(help: "How long a webhook receiver has to answer before the attempt counts as failed.", transform: parseDuration)
    var webhookTimeout = DurationArgument(argument: "10s")!
    @OptionGroup var keys: ServerKeyOptions
    @Option(help: ArgumentHelp("During a key rotation: the next secret key file; every socket also listens with it on the --next-* endpoints.",
                               valueName: "file"))
    var nextKey: String?
    @Option(help: "With --next-key: where intake also listens.", transform: endpoint) var nextIntake: Endpoint?
    @Option(help: "With --next-key: where dispatch also listens.", transform: endpoint) var nextDispatch: Endpoint?
    @Option(help: "With --next-key: where events are also published.", transform: endpoint) var nextEvents: Endpoint?
    @Option(help: "With --next-key: where the snapshot socket also listens.", transform: endpoint) var nextSnapshot: Endpoint?
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        try daemon.checkMetricsExposure(insecure: keys.insecure)
        let next = [nextIntake, nextDispatch, nextEvents, nextSnapshot]
        guard next.allSatisfy({ ($0 == nil) == (nextKey == nil) }) else {
            throw ValidationError("--next-key goes with all four of --next-intake, --next-dispatch, --next-events and --next-snapshot")
        }
        for region in regionList where !RegionName.isValid(region) {
            throw ValidationError("--regions: \(InvalidValue(kind: RegionName.kind, text: region, rule: RegionName.problem(with: region)!))")
        }
        guard (1...20).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1…20") }
        do { _ = try RepoTransport.parseList(repoTransports) } catch { throw ValidationError("--repo-transports: \(error)") }
        guard (.seconds(1) ... .seconds(86_400)).contains(timeout.duration) else { throw ValidationError("--timeout must be 1s…24h") }
        if let databaseURL { try checkDatabaseURL(databaseURL) }
        let plans = try rolloutPlanSet()
        guard plans.plan(defaultPlan, regions: regionList) != nil else {
            throw ValidationError("--default-plan: no plan '\(defaultPlan)'; plans: \(plans.names.joined(separator: ", "))")
        }
        guard reportStaleAfter.duration >= .seconds(16) else {
            throw ValidationError("--report-stale-after must be at least 16s: regions refresh their reports every 5s, and one late refresh must not pause a rollout")
        }
        _ = try webhookTargets(secret: nil)
        guard (.seconds(1) ... .seconds(120)).contains(webhookTimeout.duration) else { throw ValidationError("--webhook-timeout must be 1s…2m") }
    }

    /// The `--webhook` URLs with their event list and secret; one line naming the flag when one is wrong.
    private func webhookTargets(secret: [UInt8]?) throws -> [WebhookTarget] {
        let events = webhookEvents.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? WebhookTarget.defaultEvents
        guard Set(webhooks).count == webhooks.count else { throw ValidationError("--webhook: a URL is given twice") }
        return try webhooks.map { url in
            do { return try WebhookTarget(url: url, events: events, secret: secret) } catch let error as InvalidValue {
                throw ValidationError("\(error.kind == "webhook URL" ? "--webhook" : "--webhook-events"): \(error)")
            }
        }
    }

    private func rolloutPlanSet() throws -> RolloutPlans {
        var plans = RolloutPlans()
        for text in rolloutPlans {
            let plan: RolloutPlan
            do { plan = try RolloutPlan.parse(text) } catch { throw ValidationError("--rollout-plan: \(error)") }
            guard plans.named[plan.name] == nil else { throw ValidationError("--rollout-plan: plan '\(plan.name)' is defined twice") }
            // A wave naming a region nobody reports for would only ever pause.
            let unknown = Set(plan.waves.flatMap(\.shares).map(\.region)).subtracting(regionList + ["*"])
            guard regionList.isEmpty || unknown.isEmpty else {
                throw ValidationError("--rollout-plan \(plan.name): \(unknown.sorted().joined(separator: ", ")) not in --regions")
            }
            plans.named[plan.name] = plan
        }
        plans.defaultPlan = defaultPlan
        plans.canaryBake = canaryBake.duration
        plans.waveDeadline = min(max(waveDeadline.duration, .seconds(1)), .seconds(RolloutPlan.longest))
        plans.canaryBake = min(canaryBake.duration, .seconds(RolloutPlan.longest))
        plans.reportStaleAfter = reportStaleAfter.duration
        return plans
    }

    private var regionList: [String] {
        regions.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        guard let url = databaseURL ?? Environment.value("SLIPWAY_DATABASE_URL") else {
            throw ValidationError("no database: pass --database-url or set SLIPWAY_DATABASE_URL")
        }
        try checkDatabaseURL(url)
        daemon.bootstrapLogging()
        var config = CoordinatorConfig(databaseURL: url, id: ProcessIdentity.make("coordinator"))
        config.intakeEndpoint = intake.named("--intake")
        config.dispatchEndpoint = dispatch.named("--dispatch")
        config.eventsEndpoint = events.named("--events")
        config.snapshotEndpoint = snapshot.named("--snapshot")
        config.heartbeatInterval = daemon.heartbeat.duration
        config.retryBackoff = retryBackoff.duration
        config.defaultMaxAttempts = maxAttempts
        config.defaultTimeoutSeconds = Int(timeout.duration.components.seconds)
        config.regions = regionList
        config.plans = try rolloutPlanSet()
        config.repoTransports = (try? RepoTransport.parseList(repoTransports)) ?? RepoTransport.defaultAllowed
        config.artifactRetention = artifactRetention.duration == .zero ? nil : artifactRetention.duration
        config.auditRetention = auditRetention.duration == .zero ? nil : auditRetention.duration
        config.collectionInterval = max(gcInterval.duration, .seconds(1))
        config.security = try keys.load(role: .coordinator, logger: daemon.logger("coordinator"))
        if let nextKey, let nextIntake, let nextDispatch, let nextEvents, let nextSnapshot {
            guard config.security.isAuthenticated else { throw ValidationError("--next-key cannot be combined with --insecure") }
            let key: Certificate
            do { key = try Certificate.loadSecret(path: nextKey) } catch { throw ValidationError("--next-key: \(error.message)") }
            guard key.identity.role == .coordinator else { throw ValidationError("--next-key \(nextKey): is a \(key.identity.role.rawValue) key") }
            config.next = NextListeners(key: key, intake: nextIntake.named("--next-intake"), dispatch: nextDispatch.named("--next-dispatch"),
                                        events: nextEvents.named("--next-events"), snapshot: nextSnapshot.named("--next-snapshot"))
        }
        let secret = try webhookSecretFile.map { try secretFileBytes($0, flag: "--webhook-secret-file", minimum: 16) }
        let hooks = Webhooks.services(try webhookTargets(secret: secret), databaseURL: url, timeout: webhookTimeout.duration,
                                      logger: daemon.logger("coordinator"))
        await DaemonRunner.run("coordinator", services: [Coordinator.service(config: config, logger: daemon.logger("coordinator"))] + hooks,
                               options: daemon, insecure: !config.security.isAuthenticated)
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a build worker: takes jobs from the coordinator, builds, uploads to its region's store.")

    @Option(help: ArgumentHelp("The coordinator: HOST[:PORT] or tcp://HOST:PORT, PORT its intake port (default 7700; dispatch is PORT+1; env: SLIPWAY_COORDINATOR).",
                               valueName: "address"))
    var coordinator: String?
    @Option(help: "The coordinator's dispatch endpoint, where it is not at --coordinator's PORT+1.", transform: endpoint)
    var coordinatorDispatch: Endpoint?
    @Option(help: "This region's store endpoint.", transform: endpoint) var store = Endpoint(host: "127.0.0.1", port: 7710)
    @Option(help: "This worker's region.") var region = "local"
    @Option(help: "Builds run at once.") var slots = 1
    @Option(name: .customLong("label"), help: "A label jobs may require, key=value (repeatable).") var labels: [LabelArgument] = []
    @Option(help: "Folder for workspaces and the repository cache.") var workDir = ".local/worker"
    @Option(help: ArgumentHelp("Run recipes as this unprivileged user, so a build cannot read the worker's key (the worker must run as root).",
                               valueName: "user"))
    var buildUser: String?
    @Option(name: .customLong("path"), help: ArgumentHelp("A folder put first on recipes' PATH, e.g. a toolchain's bin (repeatable, in order).",
                                                          valueName: "folder"))
    var paths: [String] = []
    @Option(name: .customLong("env"), help: ArgumentHelp("A variable recipes get (repeatable); shown in `slipway job`.", valueName: "name=value"))
    var variables: [String] = []
    @Option(name: .customLong("secret-env"), help: ArgumentHelp("A variable recipes get whose value is never recorded, logged or shown (masked as *** in build logs).",
                                                                valueName: "name=value"))
    var secrets: [String] = []
    @Option(help: ArgumentHelp("A file of build settings, one per line: NAME=VALUE, 'secret NAME=VALUE' or 'path /FOLDER' (# comments); flags add to it.",
                               valueName: "file"))
    var envFile: String?
    @OptionGroup var keys: WorkerKeyOptions
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        try daemon.checkMetricsExposure(insecure: keys.insecure)
        guard (1...256).contains(slots) else { throw ValidationError("--slots must be between 1 and 256") }
        if coordinatorDispatch == nil {
            let address = try coordinatorAddress(coordinator)
            // Before, the worker's --coordinator was the dispatch endpoint: an old unit file would now
            // point dispatch at the events socket and the worker would wait for work forever.
            if let coordinator, coordinator.hasPrefix("tcp://"), address.port == CoordinatorAddress.defaultPort + 1 {
                throw ValidationError("--coordinator \(coordinator) looks like the coordinator's dispatch endpoint, which this flag used to take; "
                                      + "it is now the coordinator's address (its intake port): write --coordinator \(address.host), "
                                      + "or --coordinator-dispatch \(coordinator)")
            }
        }
        _ = try buildEnvironment()
        if let problem = RegionName.problem(with: region) { throw ValidationError("--region: '\(SafeText.printable(region))' is not a region name: \(problem)") }
        for label in labels where !SafeText.isName(label.key, max: 64) || label.value.utf8.count > 128 {
            throw ValidationError("--label \(SafeText.printable(label.key)): keys are up to 64 characters of A-Z a-z 0-9 . _ -, values up to 128")
        }
    }

    func run() async throws {
        daemon.bootstrapLogging()
        let (security, coordinatorSecurity, storeSecurity) = try keys.load(logger: daemon.logger("worker"))
        // With a key, the worker id names it: the coordinator accepts the id only from that key.
        let id = security.identity.map { "\($0.name)@\(ProcessIdentity.make("w"))" } ?? ProcessIdentity.make("worker")
        var config = WorkerConfig(region: region, workDirectory: workDir, id: id)
        config.coordinatorEndpoint = try coordinatorDispatch?.named("--coordinator-dispatch") ?? coordinatorAddress(coordinator).dispatch
        config.coordinatorSecurity = coordinatorSecurity
        config.storeSecurity = storeSecurity
        if let buildUser {
            config.buildUser = try Self.resolve(buildUser)
        } else if security.isAuthenticated {
            daemon.logger("worker").warning("""
                recipes run as this worker's own user (uid \(geteuid())) and can read its secret key: \
                give --build-user USER (the worker running as root) so that they cannot
                """)
        }
        config.buildEnvironment = try buildEnvironment()
        config.storeEndpoint = store.named("--store")
        config.slots = slots
        config.labels = Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        config.heartbeatInterval = daemon.heartbeat.duration
        await DaemonRunner.run("worker", services: [Worker.service(config: config, logger: daemon.logger("worker"))], options: daemon,
                               insecure: !security.isAuthenticated)
    }
}

extension WorkerCommand {
    /// What recipes get from this worker: the file first, then the flags; each refusal names its flag or line.
    func buildEnvironment() throws -> BuildEnvironment {
        var environment = BuildEnvironment()
        func named(_ flag: String, _ apply: () throws -> Void) throws {
            do { try apply() } catch { throw ValidationError("\(flag): \(error)") }
        }
        if let envFile {
            let text: String
            do { text = try String(contentsOfFile: envFile, encoding: .utf8) } catch {
                throw ValidationError("--env-file \(envFile): cannot read it: \(error.localizedDescription)")
            }
            try named("--env-file \(envFile)") { try environment.load(file: text) }
        }
        for folder in paths {
            try named("--path") { try environment.prepend(path: folder) }
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw ValidationError("--path \(SafeText.printable(folder, limit: 200)): no such folder on this machine")
            }
        }
        for variable in variables { try named("--env") { try environment.add(variable, secret: false) } }
        for secret in secrets { try named("--secret-env") { try environment.add(secret, secret: true) } }
        return environment
    }

    /// The `--build-user` account, checked at start: it exists, is not root, and the
    /// worker can switch to it (it runs as root, with setpriv at hand).
    static func resolve(_ name: String) throws -> BuildUser {
        guard let entry = getpwnam(name) else { throw ValidationError("--build-user: no user \(SafeText.printable(name)) on this machine") }
        let user = BuildUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
        guard user.uid != 0 else { throw ValidationError("--build-user: \(name) is root; recipes must run unprivileged") }
        guard geteuid() == 0 else {
            throw ValidationError("--build-user: the worker runs as uid \(geteuid()); switching builds to \(name) needs the worker to run as root")
        }
        guard access(BuildUser.setpriv, X_OK) == 0 else { throw ValidationError("--build-user: \(BuildUser.setpriv) is missing (util-linux)") }
        return user
    }
}

struct RegionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "region",
        abstract: "Run a region controller: the regional blob store, replication from the other regions, and the tracker its agents use.")

    @Option(help: "The region's name.") var name = "local"
    @Option(help: "Folder of the blob store.") var storeDir = ".local/region"
    @Option(help: "ROUTER endpoint for uploads and downloads.", transform: endpoint) var store = Endpoint(host: "127.0.0.1", port: 7710)
    @Option(name: .customLong("peer"), help: ArgumentHelp("Another region's store, to replicate from (repeatable).", valueName: "name=endpoint"))
    var peers: [LabelArgument] = []
    @Option(help: ArgumentHelp("The coordinator: HOST[:PORT] or tcp://HOST:PORT, PORT its intake port (default 7700; events PORT+2, snapshots PORT+3; env: SLIPWAY_COORDINATOR).",
                               valueName: "address"))
    var coordinator: String?
    @Option(help: "The coordinator's intake endpoint (replication reports), where it is not --coordinator's.", transform: endpoint)
    var coordinatorIntake: Endpoint?
    @Option(help: "The coordinator's event PUB endpoint, where it is not at --coordinator's PORT+2.", transform: endpoint)
    var coordinatorEvents: Endpoint?
    @Option(help: "The coordinator's event catch-up endpoint, where it is not at --coordinator's PORT+3.", transform: endpoint)
    var coordinatorSnapshot: Endpoint?
    @Option(help: "ROUTER endpoint where agents register and ask for peers.", transform: endpoint) var tracker = Endpoint(host: "127.0.0.1", port: 7720)
    @Option(help: "PUB endpoint that pushes target changes to agents.", transform: endpoint) var targets = Endpoint(host: "127.0.0.1", port: 7721)
    @Option(help: "The store endpoint agents should use, if not --store (e.g. when binding tcp://*).", transform: endpoint)
    var advertiseStore: Endpoint?
    @Option(help: "A machine unheard of for this long is no longer counted.", transform: parseDuration) var agentTimeout = DurationArgument(argument: "20s")!
    @Option(help: "How often to ask the coordinator to vouch afresh for this region's targets; keep it well under the agents' --target-max-age.",
            transform: parseDuration)
    var vouchInterval = DurationArgument(argument: "10m")!
    @Option(help: "Pieces in flight per peer region while replicating.") var replicationWindow = 16
    @Option(help: "Agents the store sends pieces to at once, the others waiting their turn (1-64); 0: every agent is served as it asks.") var storeUploadSlots = UploadSlotDefaults.store
    @Option(help: "Cap on replication bandwidth into this region, in MiB/s (0: none).") var replicationMaxMibps = 0.0
    @Option(help: "A copy with no new piece for this long steps aside for the rest of the queue.", transform: parseDuration)
    var replicationStallTimeout = DurationArgument(argument: "60s")!
    @OptionGroup var keys: RegionKeyOptions
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        try daemon.checkMetricsExposure(insecure: keys.insecure)
        if let problem = RegionName.problem(with: name) { throw ValidationError("--name: '\(SafeText.printable(name))' is not a region name: \(problem)") }
        for peer in peers {
            guard RegionName.isValid(peer.key) else { throw ValidationError("--peer: '\(SafeText.printable(peer.key))' is not a region name") }
            do { _ = try Endpoint(parsing: peer.value, origin: "--peer \(peer.key)") } catch { throw ValidationError("\(error)") }
        }
        let bound = [("--store", store), ("--tracker", tracker), ("--targets", targets)]
        for (index, (flag, endpoint)) in bound.enumerated() {
            if let other = bound[..<index].first(where: { $0.1 == endpoint }) {
                throw ValidationError("\(flag) and \(other.0) are both \(endpoint); each needs its own endpoint")
            }
        }
        guard (1...256).contains(replicationWindow) else { throw ValidationError("--replication-window must be 1…256") }
        guard (0...64).contains(storeUploadSlots) else { throw ValidationError("--store-upload-slots must be between 0 (none) and 64") }
        _ = try coordinatorAddress(coordinator)
        guard replicationMaxMibps >= 0, replicationMaxMibps < 1e6 else { throw ValidationError("--replication-max-mibps must be 0 or positive") }
    }

    func run() async throws {
        daemon.bootstrapLogging()
        var config = RegionConfig(region: name, storePath: storeDir, id: ProcessIdentity.make("region-\(name)"))
        config.storeEndpoint = store.named("--store")
        config.peers = Dictionary(try peers.map { ($0.key, try Endpoint(parsing: $0.value, origin: "--peer \($0.key)")) },
                                  uniquingKeysWith: { _, last in last })
        let address = try coordinatorAddress(coordinator)
        config.coordinatorIntake = coordinatorIntake?.named("--coordinator-intake") ?? address.intake
        config.coordinatorEvents = coordinatorEvents?.named("--coordinator-events") ?? address.events
        config.coordinatorSnapshot = coordinatorSnapshot?.named("--coordinator-snapshot") ?? address.snapshot
        (config.security, config.coordinatorSecurity, config.peerSecurity) = try keys.load(
            region: name, peers: config.peers.keys.filter { $0 != name }.sorted(), logger: daemon.logger("region"))
        config.trackerEndpoint = tracker.named("--tracker")
        config.targetsEndpoint = targets.named("--targets")
        config.advertisedStoreEndpoint = advertiseStore?.named("--advertise-store")
        config.agentTimeout = max(agentTimeout.duration, .seconds(1))
        config.vouchInterval = max(vouchInterval.duration, .seconds(1))
        config.replicationWindow = replicationWindow
        config.storeUploadSlots = storeUploadSlots
        config.replicationBatch = min(8, replicationWindow)
        config.replicationMaxBytesPerSecond = UInt64(replicationMaxMibps * 1_048_576)
        config.stallTimeout = max(replicationStallTimeout.duration, .seconds(1))
        let services: [LoopService]
        do {
            services = try RegionController.services(config: config, logger: daemon.logger("region"))
        } catch {
            daemonStartFailed("region", error)
        }
        await DaemonRunner.run("region", services: services, options: daemon, insecure: !config.security.isAuthenticated)
    }
}
