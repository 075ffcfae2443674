import Foundation
import Logging
import SlipwayArtifact
import SlipwayProto
import SlipwayRegionStore
import SlipwayWire

/// One build attempt, run start to finish on a thread of its own. It talks to
/// the worker loop only through an inproc PUSH socket (log chunks, then the
/// result) and watches `control` for cancellation.
struct BuildJob {
    let assignment: Slipway_V1_WorkAssignment
    let config: WorkerConfig
    let context: ZMQContext
    let outbox: String
    let control: BuildControl
    let logger: Logger

    func run() {
        let clock = ContinuousClock()
        let started = clock.now
        var result: Slipway_V1_BuildResult
        let push: ZMQSocket
        do {
            push = try ZMQSocket(context: context, type: .push)
            try push.connect(outbox)
        } catch {
            logger.error("build cannot reach the worker loop", metadata: ["error": "\(error)"])
            return
        }
        defer { push.close() }
        var log = LogWriter(assignment: assignment, push: push, sender: config.id, secrets: config.buildEnvironment.secretValues)
        let workspace = URL(fileURLWithPath: config.workDirectory).appendingPathComponent("jobs/\(assignment.jobID)-\(assignment.attempt)")
        result = execute(in: workspace, log: &log)
        result.jobID = assignment.jobID
        result.attempt = assignment.attempt
        result.region = config.region
        result.environment = config.buildEnvironment.described
        let elapsed = clock.now - started
        result.durationMillis = UInt64(elapsed.components.seconds * 1_000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        log.system("build \(result.outcome) in \(result.durationMillis) ms\(result.error.isEmpty ? "" : ": \(result.error)")\n")
        try? FileManager.default.removeItem(at: workspace)
        _ = try? push.send(WireCodec().encode(WireMessage(result, sender: config.id)))
    }

    private func execute(in workspace: URL, log: inout LogWriter) -> Slipway_V1_BuildResult {
        try? FileManager.default.removeItem(at: workspace)
        do {
            try FileManager.default.createDirectory(at: workspace.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            return outcome(.retryable, "cannot create the workspace: \(error)")
        }
        let control = self.control
        let git = GitCheckout(cacheRoot: URL(fileURLWithPath: config.workDirectory).appendingPathComponent("cache"),
                              cancelled: { control.aborted != nil })
        let commit: String
        do {
            var messages: [String] = []
            commit = try git.checkout(repo: assignment.repoURL, commit: assignment.commit, into: workspace) { messages.append($0) }
            for message in messages { log.system(message) }
        } catch let failure as GitCheckout.Failure {
            return outcome(failure.retryable ? .retryable : .failed, failure.description)
        } catch {
            return outcome(.retryable, "checkout failed: \(error)")
        }
        var result = build(commit, in: workspace, log: &log)
        result.commit = commit
        return result
    }

    /// Runs the recipe on the checked-out `commit` (a full SHA) and uploads what it made.
    private func build(_ commit: String, in workspace: URL, log: inout LogWriter) -> Slipway_V1_BuildResult {
        if let stopped = stoppedOutcome() { return stopped }

        guard let recipe = recipeCommand(in: workspace) else {
            return outcome(.failed, "no recipe: the submission has none and the repository has no .slipway/build")
        }
        guard let artifactPath = artifactPath(in: workspace) else {
            return outcome(.failed, "no artifact path: the submission has none and the repository has no .slipway/artifact")
        }
        let environment = config.buildEnvironment.applied(to: [
            "HOME": workspace.path,
            "SLIPWAY_JOB_ID": assignment.jobID,
            "SLIPWAY_ATTEMPT": String(assignment.attempt),
            "SLIPWAY_COMMIT": commit,
            "SLIPWAY_ARTIFACT_NAME": assignment.artifactName,
        ])
        log.system("environment: \(config.buildEnvironment.described.joined(separator: " "))\n")
        if let user = config.buildUser {
            // The recipe writes only into its workspace, which it then owns; the worker's files stay the worker's.
            let (status, output) = (try? ChildProcess.run(["/bin/chown", "-R", "--no-dereference", "\(user.uid):\(user.gid)", workspace.path],
                                                          environment: [:])) ?? (-1, "cannot run chown")
            guard status == 0 else { return outcome(.retryable, "cannot hand the workspace to \(user.name): \(output)") }
        }
        log.system("running recipe at \(commit)\(config.buildUser.map { " as \($0.name)" } ?? "")\n")
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(["/bin/sh", "-c", recipe], environment: environment, directory: workspace.path,
                                           user: config.buildUser)
        } catch {
            return outcome(.retryable, "\(error)")
        }
        let timeout = Duration.seconds(Int(assignment.timeoutSeconds == 0 ? 3_600 : assignment.timeoutSeconds))
        let end = child.pump(until: ContinuousClock.now + timeout, cancelled: { control.aborted != nil }) { isStderr, bytes in
            log.write(bytes, stream: isStderr ? .stderr : .stdout)
        }
        if end != .finished { child.killGroup() }
        log.flush()
        let status = child.waitForExit()
        switch end {
        case .cancelled: return stoppedOutcome()!
        case .timedOut: return outcome(.timedOut, "timed out: recipe ran longer than \(timeout.components.seconds) s; its process group was killed")
        case .finished: break
        }
        guard status == 0 else {
            var result = outcome(.failed, "recipe exited with status \(status)")
            result.exitCode = status
            return result
        }
        let artifact: URL
        do {
            artifact = try ArtifactPath.resolve(artifactPath, in: workspace)
        } catch {
            return outcome(.failed, "\(error)")
        }
        do {
            var manifest = try Manifest.build(fileAt: artifact.path, name: assignment.artifactName)
            manifest.jobID = assignment.jobID
            manifest.originRegion = config.region
            log.system("uploading \(manifest.size) bytes (sha256 \(manifest.digest)) to \(config.storeEndpoint)\n")
            let client = StoreClient(context: context, endpoint: config.storeEndpoint, sender: config.id, security: config.storeSecurity)
            defer { client.close() }
            try client.upload(artifact, manifest: manifest, cancelled: { control.aborted != nil })
            var result = outcome(.succeeded, "")
            result.artifactDigest = manifest.digest
            result.artifactSize = manifest.size
            result.manifest = manifest
            return result
        } catch let tooLarge as StoreClient.ManifestTooLarge {
            // Every attempt would fail the same way, so the job fails now.
            return outcome(.failed, "\(tooLarge)")
        } catch {
            if let stopped = stoppedOutcome() { return stopped }
            return outcome(.retryable, "upload failed: \(error)")
        }
    }

    private func recipeCommand(in workspace: URL) -> String? {
        if !assignment.recipe.isEmpty { return assignment.recipe }
        let file = workspace.appendingPathComponent(".slipway/build")
        return FileManager.default.fileExists(atPath: file.path) ? "/bin/sh ./.slipway/build" : nil
    }

    private func artifactPath(in workspace: URL) -> String? {
        if !assignment.artifactPath.isEmpty { return assignment.artifactPath }
        guard let text = try? String(contentsOf: workspace.appendingPathComponent(".slipway/artifact"), encoding: .utf8) else { return nil }
        let line = text.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return line.isEmpty ? nil : line
    }

    private func stoppedOutcome() -> Slipway_V1_BuildResult? {
        switch control.aborted {
        case .cancelled: outcome(.cancelled, "cancelled")
        case .shutdown: outcome(.retryable, "worker shut down during the build")
        case .superseded: outcome(.retryable, "attempt superseded")
        case nil: nil
        }
    }

    private func outcome(_ outcome: Slipway_V1_BuildOutcome, _ error: String) -> Slipway_V1_BuildResult {
        var result = Slipway_V1_BuildResult()
        result.outcome = outcome
        result.error = error
        return result
    }
}
