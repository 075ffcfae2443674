import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// What a build records about its source: the full SHA whatever the submission
/// named, the build cache keyed by it, and idempotency keys that refuse reuse.
@Suite("Provenance", .serialized, .enabled(if: Cluster.isConfigured))
struct ProvenanceTests {
    @Test("HEAD, a branch and short SHAs are recorded as the full SHA built; a long short SHA hits the cache, a moved branch does not")
    func fullSHA() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "pipeline"))
            defer { Task { await client.close() } }
            let (repo, first) = try TestRepository.make(in: cluster.directory)
            let branch = try await shellOutput("git -C '\(repo.path)' symbolic-ref --short HEAD")

            func build(_ commit: String) async throws -> Slipway_V1_JobInfo {
                let ack = try await client.submit(BuildPipelineTests.submission(repo, commit))
                let done = try await client.wait(for: ack.jobID, timeout: .seconds(60))
                try #require(done.status == .succeeded, "\(commit): \(done.error)")
                return done
            }

            let head = try await build("HEAD")
            #expect(head.commit == first && head.requestedCommit == "HEAD" && !head.cacheHit, "\(head)")
            var query = Slipway_V1_ArtifactQuery()
            query.digest = head.artifactDigest
            let artifact = try #require(try await client.artifacts(query).first)
            #expect(artifact.commit == first, "the artifact's provenance is the full SHA: \(artifact.commit)")

            let long = try await build(String(first.prefix(12)))
            #expect(long.cacheHit && long.commit == first && long.artifactDigest == head.artifactDigest, "\(long)")
            let short = try await build(String(first.prefix(7)))
            #expect(!short.cacheHit && short.commit == first, "7 digits could mean another commit: built, and resolved: \(short)")

            // The branch moves on: the same name is a new build, recorded as the new commit.
            try await runShell("cd '\(repo.path)' && echo more > more && git add more && git -c user.email=t@t -c user.name=t commit -qm v2")
            let second = try await shellOutput("git -C '\(repo.path)' rev-parse HEAD")
            let moved = try await build(branch)
            #expect(!moved.cacheHit && moved.commit == second && moved.requestedCommit == branch, "\(moved)")
            #expect(try await client.job(moved.jobID).commit == second)
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("an idempotency key reused for a different build is refused (exit 5), naming what differs; the same build gets its job back")
    func idempotencyConflict() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            let cli = "'\(Cluster.binary!)' submit --repo '\(repo.path)' --commit \(commit) --artifact app --idempotency-key ci-42 "
                + "--coordinator \(cluster.intake) \(try cluster.clientKeyFlags(.ci, "pipeline").joined(separator: " "))"
            let first = try await shellOutput("\(cli) --json")
            let again = try await shellOutput("\(cli) --json")
            let id = { (text: String) in
                ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]).flatMap { ($0["job"] as? [String: Any])?["id"] as? String }
            }
            #expect(id(first) != nil && id(first) == id(again), "\(first)\n\(again)")
            let refusal = cluster.directory.appendingPathComponent("refusal.txt")
            #expect(try await runShell("\(cli) --recipe 'echo other' 2> '\(refusal.path)'") == 5)
            let message = try String(contentsOf: refusal, encoding: .utf8)
            #expect(message.contains("different recipe") && message.contains(id(first) ?? "?"), "\(message)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
