import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// Webhooks from a real coordinator to real HTTP receivers (ops/examples/webhook-receiver.py):
/// each event once per delivery attempt, signed, in order; retried while a receiver
/// answers 500; and delivered to a receiver that was down once it comes up.
@Suite("Webhooks", .serialized, .enabled(if: Cluster.isConfigured))
struct WebhookTests {
    static let receiver = ConsoleBrowserTests.repositoryRoot.appendingPathComponent("ops/examples/webhook-receiver.py").path

    struct Delivery {
        let id: String
        let attempt: String
        let event: String
        let signatureOK: Bool
        let status: Int
        let body: [String: Any]
    }

    static func deliveries(_ log: URL) -> [Delivery] {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Delivery(id: record["delivery"] as? String ?? "", attempt: record["attempt"] as? String ?? "", event: record["event"] as? String ?? "",
                            signatureOK: record["signature_ok"] as? Bool ?? false, status: record["status"] as? Int ?? 0,
                            body: record["body"] as? [String: Any] ?? [:])
        }
    }

    @Test func everyReceiverGetsEachEventInOrderAlsoAfterFailuresAndDowntime() async throws {
        _ = try await Cluster.with { cluster in
            let secret = cluster.directory.appendingPathComponent("webhook.secret")
            try Data((0..<32).map { UInt8($0) }).write(to: secret)
            let (up, flaky, down) = (freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort())
            let logs = ["up", "flaky", "down"].map { cluster.directory.appendingPathComponent("hook-\($0).jsonl") }
            var receivers = [
                try SpawnedProcess(["/usr/bin/env", "python3", Self.receiver, "--port", "\(up)", "--log", logs[0].path, "--secret", secret.path],
                                   log: cluster.log("receiver-up")),
                try SpawnedProcess(["/usr/bin/env", "python3", Self.receiver, "--port", "\(flaky)", "--log", logs[1].path, "--fail", "2"],
                                   log: cluster.log("receiver-flaky")),
            ]
            defer { for receiver in receivers { receiver.stop(grace: .seconds(2)) } }
            try cluster.startCoordinator(extra: ["--webhook", "http://127.0.0.1:\(up)/hook", "--webhook", "http://127.0.0.1:\(flaky)/hook",
                                                 "--webhook", "http://127.0.0.1:\(down)/hook", "--webhook-secret-file", secret.path])
            try await ReplicationTests.waitFor("three webhook deliverers", timeout: .seconds(20)) {
                cluster.logText("coordinator").components(separatedBy: "webhook delivering").count == 4
            }
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let client = try SlipwayClient(endpoint: cluster.intake, security: try cluster.security(.ci, "pipeline"))
            defer { Task { await client.close() } }
            var jobs: [String: Slipway_V1_JobInfo] = [:]
            for (name, recipe) in [("good", "mkdir -p out && echo ok > out/app"), ("bad", "echo broken; exit 1")] {
                let (repo, commit) = try TestRepository.make(in: cluster.directory, content: name)
                var request = Slipway_V1_SubmitBuild()
                request.idempotencyKey = UUID().uuidString
                request.repoURL = repo.path
                request.commit = commit
                request.artifactName = "app"
                request.recipe = recipe
                request.artifactPath = "out/app"
                request.maxAttempts = 1
                jobs[name] = try await client.wait(for: try await client.submit(request).jobID, timeout: .seconds(60))
            }
            let good = try #require(jobs["good"]), bad = try #require(jobs["bad"])
            #expect(good.status == .succeeded && bad.status == .failed)

            // The healthy receiver: each event once, signed, in outbox order, with the job in it.
            let expected: Set<String> = ["job_succeeded", "job_failed", "artifact_deployable"]
            try await ReplicationTests.waitFor("three events at the receiver", timeout: .seconds(30)) {
                Set(Self.deliveries(logs[0]).map(\.event)).isSuperset(of: expected)
            }
            let received = Self.deliveries(logs[0])
            #expect(Set(received.map(\.id)).count == received.count, "each event once: \(received.map(\.id))")
            #expect(received.allSatisfy { $0.signatureOK && $0.attempt == "1" && ($0.body["id"] as? String) == $0.id })
            let sequences = received.compactMap { $0.body["sequence"] as? Int }
            #expect(sequences == sequences.sorted() && sequences.count == received.count)
            let succeeded = try #require(received.first { $0.event == "job_succeeded" })
            #expect((succeeded.body["job"] as? [String: Any])?["id"] as? String == good.jobID)
            let deployable = try #require(received.first { $0.event == "artifact_deployable" })
            #expect((deployable.body["artifact"] as? [String: Any])?["digest"] as? String == good.artifactDigest)
            #expect(received.allSatisfy { expected.contains($0.event) }, "only the configured events")

            // The flaky receiver answered 500 twice per event: each came three times, then stopped.
            try await ReplicationTests.waitFor("the flaky receiver to accept every event", timeout: .seconds(60)) {
                Self.deliveries(logs[1]).filter { $0.status == 204 }.count == received.count
            }
            let flakyLog = Self.deliveries(logs[1])
            for id in received.map(\.id) {
                #expect(flakyLog.filter { $0.id == id }.map(\.attempt) == ["1", "2", "3"], "\(id)")
            }

            // The receiver that was down all along gets everything once it comes up.
            receivers.append(try SpawnedProcess(["/usr/bin/env", "python3", Self.receiver, "--port", "\(down)", "--log", logs[2].path],
                                                log: cluster.log("receiver-down")))
            try await ReplicationTests.waitFor("the late receiver to catch up", timeout: .seconds(90)) {
                Set(Self.deliveries(logs[2]).map(\.id)) == Set(received.map(\.id))
            }
            #expect(Self.deliveries(logs[2]).map(\.id) == received.map(\.id), "in the same order")
        }
    }
}
