import Foundation
import SlipwayTestSupport
import Testing

/// `--coordinator HOST[:PORT]`: one address for every client and daemon, the
/// coordinator's four sockets found from it in the documented layout.
@Suite("One coordinator address", .serialized, .enabled(if: Cluster.isConfigured))
struct OneAddressTests {
    @Test("a region, a worker, tap and the CLI given only --coordinator 127.0.0.1:PORT reach intake, dispatch, events and snapshots")
    func oneAddress() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion("region", region: "local", store: cluster.store, byAddress: true)
            try cluster.startWorker("w1", byAddress: true)
            let address = "--coordinator 127.0.0.1:\(cluster.coordinatorPort)"
            let binary = "'\(Cluster.binary!)'"
            let operatorKey = try cluster.clientKeyFlags(.operator, "tester").joined(separator: " ")
            // Tap finds the event PUB (PORT+2) and waits for the build's success.
            let tap = try cluster.start("tap", ["tap", "--coordinator", "127.0.0.1:\(cluster.coordinatorPort)",
                                                "--type", "job_succeeded", "--count", "1", "--duration", "60s"]
                                               + cluster.clientKeyFlags(.operator, "tester"))
            try await cluster.waitForLog("region", "serving")
            try await Task.sleep(for: .milliseconds(500))  // the tap's SUB joins before the event

            // The worker took the job from dispatch (PORT+1); the CLI spoke to intake (PORT).
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            let submitted = try await shellOutput("\(binary) submit --repo '\(repo.path)' --commit \(commit) --artifact app --wait --json \(address) "
                                                  + (try cluster.clientKeyFlags(.ci, "pipeline").joined(separator: " ")))
            let job = try #require((try JSONSerialization.jsonObject(with: Data(submitted.utf8)) as? [String: Any])?["job"] as? [String: Any])
            #expect(job["status"] as? String == "succeeded", "\(submitted)")
            #expect(await tap.exited(killAfter: .seconds(30)) == 0, "tap saw the event on PORT+2: \(cluster.logText("tap"))")
            #expect(cluster.logText("tap").contains("job_succeeded"), "\(cluster.logText("tap"))")

            // The region reported its copy to intake and follows targets on events (PORT+2) and snapshots (PORT+3).
            let digest = try #require(job["artifact_digest"] as? String)
            #expect(try await runShell("\(binary) artifact \(digest) --wait-deployable --timeout 30s \(address) \(operatorKey) > /dev/null") == 0)
            #expect(try await runShell("\(binary) deploy app \(digest) --new-service \(address) \(operatorKey) > /dev/null") == 0)
            try await cluster.waitForLog("region", "regional target changed")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
