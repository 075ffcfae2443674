import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayJSON
import SlipwayProto

func describe(_ artifact: Slipway_V1_ArtifactInfo, detailed: Bool, wide: Bool = false) -> String {
    let regions = artifact.replicas.map { "\($0.region):\(replicaState($0))" }.joined(separator: " ")
    let deployable = artifact.deployableAtUnixMicros > 0 ? "deployable" : "not deployable yet"
    guard detailed else {
        let provenance = wide ? " job \(artifact.jobID) \(artifact.repoURL)@\(artifact.commit) from \(artifact.originRegion)" : ""
        return "\(artifact.name) sha256:\(artifact.digest) \(artifact.size) B \(deployable) [\(regions)]\(provenance)"
    }
    return """
        artifact  \(artifact.name)
        digest    sha256:\(artifact.digest)
        size      \(artifact.size) bytes in \(artifact.pieceCount) pieces \(artifact.piecesByContent ? "cut by content, up to" : "of") \(artifact.pieceSize) bytes
        built by  job \(artifact.jobID)
        repo      \(artifact.repoURL)
        commit    \(artifact.commit)
        recipe    \(artifact.recipe.isEmpty ? "(.slipway/build)" : artifact.recipe)
        origin    \(artifact.originRegion)
        status    \(deployable)
        regions   \(regions)
        """
}

/// A digest as typed, with or without the `sha256:` prefix the CLI prints.
func bareDigest(_ typed: String) -> String {
    typed.hasPrefix("sha256:") ? String(typed.dropFirst(7)) : typed
}

private func replicaState(_ status: Slipway_V1_ReplicationStatus) -> String {
    switch status.state {
    case .complete: "complete"
    case .copying: "copying \(status.piecesDone)/\(status.piecesTotal)"
    case .failed: "failed (\(status.error))"
    default: "pending"
    }
}

struct ArtifactsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "artifacts", abstract: "List artifacts and where each is stored.")

    @Argument(help: "Only artifacts of this name.") var name: String?
    @Option(help: "How many.") var limit: UInt32 = 20
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var query = Slipway_V1_ArtifactQuery()
        query.name = name ?? ""
        query.limit = limit
        let format = options.format
        let artifacts = try await withClient(options) { try await $0.artifacts(query) }
        JSONReport.shared["artifacts"] = .array(artifacts.map(\.json))
        if format != .json { for artifact in artifacts { print(describe(artifact, detailed: false, wide: format == .wide)) } }
    }
}

extension ArtifactsCommand: JSONOutputCommand {
    static let jsonKeys = ["artifacts"]
    var output: OutputFormat { options.format }
}

struct ArtifactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "artifact", abstract: "Show an artifact's provenance and regions.")
    @Argument(help: "The artifact's SHA-256 digest, or its first 8+ hex characters (with or without sha256:).") var digest: String
    @Flag(help: "Print replication progress until every region has a verified copy; exit 1 if --timeout passes first.")
    var waitDeployable = false
    @Option(help: "How long --wait-deployable waits (exit 3 after).", transform: parseDuration) var timeout = DurationArgument(argument: "10m")!
    @OptionGroup var options: ClientOptions

    func validate() throws {
        let bare = bareDigest(digest)
        guard DigestPrefix.isValid(bare) else {
            throw ValidationError("'\(SafeText.printable(digest, limit: 80))' is not a digest: 64 lowercase hex characters or at least the first 8, optionally after sha256:")
        }
        guard timeout.duration > .zero else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        var query = Slipway_V1_ArtifactQuery()
        query.digest = bareDigest(digest)
        let format = options.format
        if waitDeployable { return try await waitUntilDeployable(query) }
        let artifact = try await withClient(options) { try Self.one(try await $0.artifacts(query), query.digest) }
        JSONReport.shared["artifact"] = artifact.json
        if format != .json { print(describe(artifact, detailed: true)) }
    }

    /// The artifact a digest or prefix names; more than one is bad input.
    static func one(_ artifacts: [Slipway_V1_ArtifactInfo], _ typed: String) throws -> Slipway_V1_ArtifactInfo {
        guard let first = artifacts.first else { throw CLIFailure(.badInput, "no artifact sha256:\(typed)") }
        guard artifacts.count == 1 else {
            throw CLIFailure(.badInput, "sha256:\(typed) is the start of \(artifacts.count) digests ("
                             + artifacts.prefix(3).map { "sha256:\($0.digest.prefix(16))" }.joined(separator: ", ") + "); give more of it")
        }
        return first
    }

    /// Polls the coordinator and prints a line (on stderr under --json) whenever
    /// another region completes its copy.
    private func waitUntilDeployable(_ query: Slipway_V1_ArtifactQuery) async throws {
        let deadline = ContinuousClock.now + timeout.duration
        let say: (String) -> Void = options.format == .json ? { printError($0) } : { print($0) }
        var shown = -1
        try await withClient(options) { client in
            while true {
                let artifact = try Self.one(try await client.artifacts(query), query.digest)
                JSONReport.shared["artifact"] = artifact.json
                let complete = artifact.replicas.filter { $0.state == .complete }.map(\.region)
                if complete.count != shown {
                    shown = complete.count
                    say("   replicated \(complete.count)/\(artifact.replicas.count) (\(complete.joined(separator: " ")))")
                }
                if artifact.deployableAtUnixMicros > 0 {
                    say("   deployable: every region holds a verified copy")
                    return
                }
                guard ContinuousClock.now < deadline else {
                    throw CLIFailure(.timedOut, "sha256:\(query.digest) is in \(complete.count) of \(artifact.replicas.count) regions after \(timeout.duration)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

extension ArtifactCommand: JSONOutputCommand {
    static let jsonKeys = ["artifact"]
    var output: OutputFormat { options.format }
}
