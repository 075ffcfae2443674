import ArgumentParser
import SlipwayCore
import SlipwayJSON
import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayWire
import SwiftProtobuf

struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The coordinator: HOST[:PORT] (PORT its intake's, default 7700), tcp://HOST:PORT or ipc://PATH (env: SLIPWAY_COORDINATOR).",
                               valueName: "address"))
    var coordinator: String?
    @OptionGroup var keys: UserKeyOptions
    @Flag(help: "Print one JSON object on stdout, logs and progress on stderr (docs/json-output.md); the same as -o json.")
    var json = false
    @Option(name: .shortAndLong, help: "text, wide (more columns) or json.")
    var output: OutputFormat = .text

    /// The format asked for: `--json` or `-o`.
    var format: OutputFormat { json ? .json : output }

    /// The intake endpoint: of the flag, else of the environment, else of 127.0.0.1:7700.
    var endpoint: String {
        get throws {
            let text = coordinator ?? Environment.value("SLIPWAY_COORDINATOR")
            if let text, text.hasPrefix("ipc://") {
                return "\(try Endpoint(parsing: text, origin: coordinator == nil ? "SLIPWAY_COORDINATOR" : "--coordinator"))"
            }
            return "\(try coordinatorAddress(coordinator).intake)"
        }
    }

    func validate() throws {
        do {
            _ = try endpoint
        } catch let error as EndpointError {
            throw ValidationError("\(error)")
        }
        if json && output == .wide { throw ValidationError("--json and -o wide ask for two formats; use one") }
    }

    func client() throws -> SlipwayClient {
        try SlipwayClient(endpoint: try endpoint, security: try keys.security(), sender: "cli")
    }
}

/// Runs a client call; its errors become a ``CLIFailure`` (one line on
/// stderr, the `error` object under --json, an exit code of the table).
func withClient<T>(_ options: ClientOptions, _ body: (SlipwayClient) async throws -> T) async throws -> T {
    let client = try options.client()
    do {
        let value = try await body(client)
        await client.close()
        return value
    } catch {
        await client.close()
        throw CLIFailure(error)
    }
}

extension CLIFailure {
    /// What a producer error means for the exit code; other errors pass as they are.
    init(_ error: any Error) {
        switch error {
        case let failure as CLIFailure: self = failure
        case let error as ProducerError:
            switch (error.code, error.serverCode) {
            case (.timedOut, _): self.init(.timedOut, error.description)
            case (_, .notFound), (_, .invalidArgument), (_, .unsupported): self.init(.badInput, error.description)
            case (_, .failedPrecondition), (_, .permissionDenied): self.init(.refused, error.description)
            default: self.init(.unavailable, error.description)
            }
        case let error as ValidationError: self.init(.badInput, error.message)
        default: self.init(.error, "\(error)")
        }
    }

    /// How a finished job ended, as a failure; nil when it succeeded.
    init?(job info: Slipway_V1_JobInfo) {
        switch info.status {
        case .succeeded: return nil
        case .cancelled: self.init(.cancelled, "job \(info.jobID) was cancelled\(info.error.isEmpty ? "" : ": \(info.error)")")
        default: self.init(.failed, "job \(info.jobID) \(info.status.word)\(info.error.isEmpty ? "" : ": \(info.error)")")
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func describe(_ info: Slipway_V1_JobInfo, wide: Bool = false) -> String {
    var line = "job \(info.jobID) \(info.status.word) attempt \(info.attempt)/\(info.maxAttempts) \(info.artifactName) @ \(info.commit.prefix(wide ? 40 : 12))"
    if !info.artifactDigest.isEmpty { line += " artifact sha256:\(info.artifactDigest)" }
    if info.cacheHit { line += " (cache hit)" }
    if wide {
        line += " repo \(info.repoURL)"
        if !info.workerID.isEmpty { line += " worker \(info.workerID)" }
        if !info.region.isEmpty { line += " region \(info.region)" }
        if case let .string(created) = JSONValue.time(unixMicros: info.createdAtUnixMicros) { line += " created \(created)" }
        if case let .string(finished) = JSONValue.time(unixMicros: info.finishedAtUnixMicros) { line += " finished \(finished)" }
    }
    if !info.error.isEmpty { line += " — \(info.error)" }
    return line
}

extension Slipway_V1_JobStatus {
    /// The wire status a user typed (`queued`, `running`, …), or nil.
    init?(name: String) {
        guard let status = JobStatus(rawValue: name) else { return nil }
        self = status.wire
    }
}

/// Waits for or follows a job; under --json the job as last seen is in the
/// report whatever happens, a timeout included.
func awaitJob(_ client: SlipwayClient, _ id: String, follow: Bool, timeout: Duration, format: OutputFormat,
              log: @escaping @Sendable ([UInt8]) -> Void) async throws -> Slipway_V1_JobInfo {
    let report = JSONReport.shared
    do {
        if follow {
            return try await client.followLog(id, timeout: timeout, sink: log)
        }
        return try await client.wait(for: id, timeout: timeout) { info in
            report["job"] = info.json
            if format != .json {
                print("job \(info.jobID) \(info.status.word)")
                fflush(nil)  // every stream: stdout included
            }
        }
    } catch let error as ProducerError where error.code == .timedOut {
        if let info = try? await client.job(id) { report["job"] = info.json }
        throw error
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
    @Option(help: "Build command, run with /bin/sh in the checkout (default: the repository's .slipway/build script).") var recipe = ""
    @Option(help: "Where the recipe leaves the binary, relative to the checkout (default: the path written in the repository's .slipway/artifact file).")
    var artifactPath = ""
    @Option(name: .customLong("label"), help: "Required worker label key=value (repeatable).") var labels: [LabelArgument] = []
    @Option(help: "Idempotency key; resubmitting it returns the same job (default: new).") var idempotencyKey: String?
    @Option(help: "Attempts before the job fails.") var maxAttempts: UInt32 = 0
    @Option(help: "Build timeout, e.g. 30m (default: the coordinator's).", transform: parseDuration) var timeout: DurationArgument?
    @Flag(help: "Build even if the cache has this commit's artifact.") var fresh = false
    @Flag(help: "Wait until the job ends; exit code reflects the outcome.") var wait = false
    @Flag(help: "Stream the build log until the job ends (implies --wait).") var follow = false
    @Option(help: "How long --wait/--follow waits.", transform: parseDuration) var waitTimeout = DurationArgument(argument: "60m")!
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
        request.timeoutSeconds = UInt32(clamping: timeout?.duration.components.seconds ?? 0)
        request.fresh = fresh
        let (format, follow, wait, waitFor) = (options.format, self.follow, self.wait, waitTimeout.duration)
        let report = JSONReport.shared
        let final = try await withClient(options) { client -> Slipway_V1_JobInfo in
            let ack = try await client.submit(request)
            report["duplicate"] = .bool(ack.duplicate)
            report["job"] = Self.accepted(request, ack).json
            if format != .json {
                print("job \(ack.jobID) \(ack.status.word)\(ack.duplicate ? " (existing job for this idempotency key)" : "")\(ack.cacheHit ? " (cache hit)" : "")")
            }
            // Now, not when the job ends: a CI log must show the id to cancel while the build runs.
            fflush(nil)  // every stream: stdout included
            guard follow || wait else {
                // Under --json the whole job, every key known, for one more query.
                return format == .json ? (try? await client.job(ack.jobID)) ?? Self.accepted(request, ack) : Self.accepted(request, ack)
            }
            // Under --json stdout carries JSON only; the log goes to stderr.
            return try await awaitJob(client, ack.jobID, follow: follow, timeout: waitFor, format: format,
                                      log: { (format == .json ? FileHandle.standardError : .standardOutput).write(Data($0)) })
        }
        report["job"] = final.json
        guard follow || wait else { return }
        if format != .json { print(describe(final, wide: format == .wide)) }
        if let failure = CLIFailure(job: final) { throw failure }
    }

    /// The job as the ack describes it, for when the coordinator cannot be asked again.
    static func accepted(_ request: Slipway_V1_SubmitBuild, _ ack: Slipway_V1_SubmitBuildAck) -> Slipway_V1_JobInfo {
        var info = Slipway_V1_JobInfo()
        info.jobID = ack.jobID
        info.status = ack.status
        info.repoURL = request.repoURL
        info.commit = request.commit
        info.artifactName = request.artifactName
        info.recipe = request.recipe
        info.cacheHit = ack.cacheHit
        return info
    }
}

extension SubmitCommand: JSONOutputCommand {
    static let jsonKeys = ["job", "duplicate"]
    var output: OutputFormat { options.format }
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
        let format = options.format
        let jobs = try await withClient(options) { try await $0.jobs(query) }
        JSONReport.shared["jobs"] = .array(jobs.map(\.json))
        if format != .json { for job in jobs { print(describe(job, wide: format == .wide)) } }
    }
}

extension JobsCommand: JSONOutputCommand {
    static let jsonKeys = ["jobs"]
    var output: OutputFormat { options.format }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job", abstract: "Show one job.")

    @Argument(help: "The job id.") var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, format) = (self.id, options.format)
        let info = try await withClient(options) { try await $0.job(id) }
        JSONReport.shared["job"] = info.json
        guard format != .json else { return }
        print(describe(info, wide: format == .wide))
        if info.requestedCommit != info.commit, !info.requestedCommit.isEmpty { print("  commit \(info.commit) (asked for \(info.requestedCommit))") }
        if !info.submittedBy.isEmpty || !info.labels.isEmpty {
            print("  submitted by \(info.submittedBy.isEmpty ? "(unauthenticated)" : info.submittedBy)"
                  + (info.labels.isEmpty ? "" : ", needs labels \(info.labels.joined(separator: " "))"))
        }
        if !info.environment.isEmpty { print("  environment \(info.environment.joined(separator: " "))") }
    }
}

extension JobCommand: JSONOutputCommand {
    static let jsonKeys = ["job"]
    var output: OutputFormat { options.format }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a job to end; the exit code is its outcome.",
        discussion: "0 succeeded, 1 failed, 2 cancelled, 3 --timeout passed (the job goes on), 4 coordinator unreachable, 64 no such job.")

    @Argument(help: "The job id.") var id: String
    @Option(help: "Give up after this long.", transform: parseDuration) var timeout = DurationArgument(argument: "60m")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, format, timeout) = (self.id, options.format, self.timeout.duration)
        let final = try await withClient(options) { client in
            try await awaitJob(client, id, follow: false, timeout: timeout, format: format, log: { _ in })
        }
        JSONReport.shared["job"] = final.json
        if format != .json { print(describe(final, wide: format == .wide)) }
        if let failure = CLIFailure(job: final) { throw failure }
    }
}

extension WaitCommand: JSONOutputCommand {
    static let jsonKeys = ["job"]
    var output: OutputFormat { options.format }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a job.")

    @Argument(help: "The job id.") var id: String
    @Option(help: "Why (recorded with the job).") var reason = ""
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, reason, format) = (self.id, self.reason, options.format)
        let ack = try await withClient(options) { try await $0.cancel(id, reason: reason) }
        for (key, value) in ack.jsonFields { JSONReport.shared[key] = value }
        if format != .json {
            print(ack.status == .running ? "job \(id) cancelling (its worker is stopping the build)" : "job \(id) \(ack.status.word)")
        }
    }
}

extension CancelCommand: JSONOutputCommand {
    static let jsonKeys = ["job_id", "status", "stopping"]
    var output: OutputFormat { options.format }
}
