import ArgumentParser
import SlipwayCore
import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayWire
import SwiftProtobuf

/// The exit codes of every client command, for CI scripts (docs/operations.md, "Exit codes").
enum CLIExit {
    /// The build or the rollout failed.
    static let failed = ExitCode(1)
    /// The job was cancelled.
    static let cancelled = ExitCode(2)
    /// A wait ran out (the job or rollout goes on).
    static let timedOut = ExitCode(3)
    /// No answer from the coordinator, or it could not serve (its database down).
    static let unavailable = ExitCode(4)
    /// The coordinator refused: not now (a precondition) or not this key (permission).
    static let refused = ExitCode(5)
    /// Bad input: a malformed flag, address, digest or duration (ArgumentParser's
    /// usage code), or a name the coordinator does not know (job, artifact, commit).
    static let badInput = ExitCode(64)
}

struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator's intake endpoint (env: SLIPWAY_COORDINATOR).")
    var coordinator: String?
    @OptionGroup var keys: UserKeyOptions
    @Flag(help: "Print JSON instead of text.")
    var json = false

    /// The intake endpoint: the flag, else the environment, else the default.
    var endpoint: String { coordinator ?? Environment.value("SLIPWAY_COORDINATOR") ?? "tcp://127.0.0.1:7700" }

    func validate() throws {
        do {
            _ = try Endpoint(parsing: endpoint)
        } catch {
            throw ValidationError("\(coordinator == nil ? "SLIPWAY_COORDINATOR" : "--coordinator"): \(error)")
        }
    }

    func client() throws -> SlipwayClient {
        try SlipwayClient(endpoint: endpoint, security: try keys.security(), sender: "cli")
    }
}

/// Runs a client call; producer errors become one line on stderr and an exit code.
func withClient<T>(_ options: ClientOptions, _ body: (SlipwayClient) async throws -> T) async throws -> T {
    let client = try options.client()
    do {
        let value = try await body(client)
        await client.close()
        return value
    } catch let error as ProducerError {
        await client.close()
        printError("slipway: \(error.description)")
        switch (error.code, error.serverCode) {
        case (.timedOut, _): throw CLIExit.timedOut
        case (_, .notFound), (_, .invalidArgument), (_, .unsupported): throw CLIExit.badInput
        case (_, .failedPrecondition), (_, .permissionDenied): throw CLIExit.refused
        default: throw CLIExit.unavailable
        }
    } catch {
        await client.close()
        throw error
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func describe(_ info: Slipway_V1_JobInfo) -> String {
    var line = "job \(info.jobID) \(info.status.name) attempt \(info.attempt)/\(info.maxAttempts) \(info.artifactName) @ \(info.commit.prefix(12))"
    if !info.artifactDigest.isEmpty { line += " artifact sha256:\(info.artifactDigest)" }
    if info.cacheHit { line += " (cache hit)" }
    if !info.error.isEmpty { line += " — \(info.error)" }
    return line
}

func printJSON(_ message: some SwiftProtobuf.Message) {
    print((try? message.jsonString()) ?? "{}")
}

extension Slipway_V1_JobStatus {
    /// The status as people read it: the one spelling in `SlipwayCore.JobStatus`.
    var name: String { JobStatus(self)?.rawValue ?? "unknown" }

    /// The wire status a user typed (`queued`, `running`, …), or nil.
    init?(name: String) {
        guard let status = JobStatus(rawValue: name) else { return nil }
        self = status.wire
    }
}

/// The exit code a finished job maps to.
func jobExitCode(for info: Slipway_V1_JobInfo) -> ExitCode {
    switch info.status {
    case .succeeded: .success
    case .cancelled: CLIExit.cancelled
    default: CLIExit.failed
    }
}

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a build of a repository at a commit.",
        discussion: "Exit codes: 0 submitted (or succeeded with --wait), 1 failed, 2 cancelled, 3 timed out waiting, 4 coordinator unreachable, 5 refused, 64 bad input.")

    @Option(help: "Repository URL (https, ssh, git; git@host:path) or path (a relative path to a folder here is made absolute).") var repo: String
    @Option(help: "Commit SHA (40 hex) or a branch/tag name.") var commit: String
    @Option(help: "Artifact name.") var artifact: String
    @Option(help: "Build command (default: the repository's .slipway/build).") var recipe = ""
    @Option(help: "Path of the produced binary in the checkout (default: .slipway/artifact).") var artifactPath = ""
    @Option(name: .customLong("label"), help: "Required worker label key=value (repeatable).") var labels: [LabelArgument] = []
    @Option(help: "Idempotency key; resubmitting it returns the same job (default: new).") var idempotencyKey: String?
    @Option(help: "Attempts before the job fails.") var maxAttempts: UInt32 = 0
    @Option(help: "Build timeout in seconds.") var timeout: UInt32 = 0
    @Flag(help: "Build even if the cache has this commit's artifact.") var fresh = false
    @Flag(help: "Wait until the job ends; exit code reflects the outcome.") var wait = false
    @Flag(help: "Stream the build log until the job ends (implies --wait).") var follow = false
    @Option(help: "How long --wait/--follow waits.") var waitTimeout = DurationArgument(argument: "60m")!
    @OptionGroup var options: ClientOptions

    /// A relative path to a folder that exists here becomes absolute: the
    /// coordinator refuses relative paths (they would mean the worker's folder).
    static func absoluteIfLocal(_ repo: String) -> String {
        var isFolder: ObjCBool = false
        guard !repo.hasPrefix("/"), !repo.contains(":"), FileManager.default.fileExists(atPath: repo, isDirectory: &isFolder), isFolder.boolValue
        else { return repo }
        return URL(fileURLWithPath: repo).standardizedFileURL.path
    }

    func run() async throws {
        var request = Slipway_V1_SubmitBuild()
        request.idempotencyKey = idempotencyKey ?? "cli-\(UUID().uuidString.lowercased())"
        request.repoURL = Self.absoluteIfLocal(repo)
        request.commit = commit
        request.artifactName = artifact
        request.recipe = recipe
        request.artifactPath = artifactPath
        request.labels = Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        request.maxAttempts = maxAttempts
        request.timeoutSeconds = timeout
        request.fresh = fresh
        let (json, follow, wait, waitFor) = (options.json, self.follow, self.wait, waitTimeout.duration)
        let final = try await withClient(options) { client -> Slipway_V1_JobInfo? in
            let ack = try await client.submit(request)
            if json && !(wait || follow) { printJSON(ack) }
            if !json { print("job \(ack.jobID) \(ack.status.name)\(ack.duplicate ? " (existing job for this idempotency key)" : "")\(ack.cacheHit ? " (cache hit)" : "")") }
            // Now, not when the job ends: a CI log must show the id to cancel while the build runs.
            fflush(nil)  // every stream: stdout included
            if follow {
                // Under --json stdout carries JSON only; the log goes to stderr.
                let out = json ? FileHandle.standardError : FileHandle.standardOutput
                return try await client.followLog(ack.jobID, timeout: waitFor) { bytes in out.write(Data(bytes)) }
            }
            if wait {
                return try await client.wait(for: ack.jobID, timeout: waitFor) { info in
                    if !json { print("  \(info.status.name)") }
                }
            }
            return nil
        }
        guard let final else { return }
        if json { printJSON(final) } else { print(describe(final)) }
        let code = jobExitCode(for: final)
        if code != .success { throw code }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List recent jobs, newest first.")

    @Option(help: "Only jobs in this status (queued, running, succeeded, failed, cancelled).") var status: String?
    @Option(help: "Only jobs of this artifact name.") var artifact = ""
    @Option(help: "How many.") var limit: UInt32 = 20
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let status, Slipway_V1_JobStatus(name: status) == nil {
            throw ValidationError("unknown status '\(status)'; use queued, running, succeeded, failed or cancelled")
        }
    }

    func run() async throws {
        var query = Slipway_V1_JobListQuery()
        query.status = status.flatMap(Slipway_V1_JobStatus.init(name:)) ?? .unspecified
        query.artifactName = artifact
        query.limit = limit
        let json = options.json
        let jobs = try await withClient(options) { try await $0.jobs(query) }
        for job in jobs { if json { printJSON(job) } else { print(describe(job)) } }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job", abstract: "Show one job.")

    @Argument(help: "The job id.") var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, json) = (self.id, options.json)
        let info = try await withClient(options) { try await $0.job(id) }
        if json { printJSON(info) } else { print(describe(info)) }
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's build log.",
        discussion: "With -f the exit code is the job's outcome: 0 succeeded, 1 failed, 2 cancelled, 3 --timeout passed.")

    @Argument(help: "The job id.") var id: String
    @Flag(name: .shortAndLong, help: "Keep streaming until the job ends.") var follow = false
    @Option(help: "With -f: how long to follow.") var timeout = DurationArgument(argument: "60m")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, follow, timeout) = (self.id, self.follow, self.timeout.duration)
        let final = try await withClient(options) { client -> Slipway_V1_JobInfo? in
            if follow {
                return try await client.followLog(id, timeout: timeout) { FileHandle.standardOutput.write(Data($0)) }
            }
            var offset: UInt64 = 0
            while true {
                let (_, bytes) = try await client.log(id, from: offset)
                if bytes.isEmpty { break }
                FileHandle.standardOutput.write(Data(bytes))
                offset += UInt64(bytes.count)
            }
            return nil
        }
        if let final, jobExitCode(for: final) != .success { throw jobExitCode(for: final) }
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a job to end; the exit code is its outcome.",
        discussion: "0 succeeded, 1 failed, 2 cancelled, 3 --timeout passed (the job goes on), 4 coordinator unreachable, 64 no such job.")

    @Argument(help: "The job id.") var id: String
    @Option(help: "Give up after this long.") var timeout = DurationArgument(argument: "60m")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, json, timeout) = (self.id, options.json, self.timeout.duration)
        let final = try await withClient(options) { client in
            try await client.wait(for: id, timeout: timeout) { info in
                if !json {
                    print("job \(info.jobID) \(info.status.name)")
                    fflush(nil)  // every stream: stdout included
                }
            }
        }
        if json { printJSON(final) } else { print(describe(final)) }
        if jobExitCode(for: final) != .success { throw jobExitCode(for: final) }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a job.")

    @Argument(help: "The job id.") var id: String
    @Option(help: "Why (recorded with the job).") var reason = ""
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, reason) = (self.id, self.reason)
        let ack = try await withClient(options) { try await $0.cancel(id, reason: reason) }
        print(ack.status == .running ? "job \(id) cancelling (its worker is stopping the build)" : "job \(id) \(ack.status.name)")
    }
}
