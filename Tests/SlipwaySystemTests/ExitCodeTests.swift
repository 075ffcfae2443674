import Foundation
import SlipwayAuth
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// The CLI's exit codes as a CI script meets them (docs/operations.md, "Exit
/// codes"): each outcome of each kind, from the real binary against a real cluster.
@Suite("CLI exit codes", .serialized, .enabled(if: Cluster.isConfigured))
struct ExitCodeTests {
    @Test("0 success, 1 failed, 2 cancelled, 3 timed out, 4 unreachable, 5 refused, 64 bad input")
    func exitCodes() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let binary = "'\(Cluster.binary!)'"
            let ciKey = try cluster.clientKeyFlags(.ci, "pipeline").joined(separator: " ")
            let operatorKey = try cluster.clientKeyFlags(.operator, "tester").joined(separator: " ")
            func exit(_ arguments: String, key: String? = nil, coordinator: String? = nil) async throws -> Int32 {
                try await runShell("\(binary) \(arguments) --coordinator \(coordinator ?? cluster.intake) \(key ?? ciKey) > /dev/null 2>&1")
            }

            // 0: a build that succeeds; its --follow --json stdout is one JSON object (the log went to stderr).
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            #expect(try await exit("submit --repo \(repo.path) --commit \(commit) --artifact app --wait") == 0)
            let followed = try await shellOutput("\(binary) submit --repo \(repo.path) --commit \(commit) --artifact app --fresh --follow --json --coordinator \(cluster.intake) \(ciKey) 2>/dev/null")
            let object = try JSONSerialization.jsonObject(with: Data(followed.utf8)) as? [String: Any]
            #expect((object?["job"] as? [String: Any])?["status"] as? String == "succeeded", "stdout under --json is JSON only: \(followed)")

            // 1: a build that fails.
            let (failing, failingCommit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho nope\nexit 7\n")
            #expect(try await exit("submit --repo \(failing.path) --commit \(failingCommit) --artifact app --max-attempts 1 --wait") == 1)

            // 3: a wait that runs out while the job goes on; 2: the job cancelled, by wait and by logs -f.
            let (slow, slowCommit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho started\nsleep 60\n")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "pipeline"))
            defer { Task { await client.close() } }
            let job = try await client.submit(BuildPipelineTests.submission(slow, slowCommit)).jobID
            #expect(try await exit("wait \(job) --timeout 1s") == 3)
            #expect(try await exit("cancel \(job)") == 0)
            #expect(try await exit("wait \(job) --timeout 60s") == 2)
            #expect(try await exit("logs -f \(job)") == 2)

            // 4: nobody answers at the address.
            #expect(try await exit("job \(job)", coordinator: "tcp://127.0.0.1:\(freeLoopbackPort())") == 4)

            // 5: refused: a ci key may not deploy; an operator may not roll back what was never deployed.
            #expect(try await exit("deploy svc \(String(repeating: "a", count: 64))") == 5)
            #expect(try await exit("rollback never-deployed", key: operatorKey) == 5)

            // 64: bad input, on the command line or as the coordinator found it.
            #expect(try await exit("wait \(job) --timeout banana") == 64)
            #expect(try await exit("job \(job)", coordinator: "127.0.0.1:http") == 64, "a port that is not a number")
            #expect(try await exit("deploy svc not-a-digest", key: operatorKey) == 64)
            #expect(try await exit("job \(UUID().uuidString.lowercased())") == 64, "no such job")
            #expect(try await exit("rollout status never-deployed", key: operatorKey) == 64, "no such rollout")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
