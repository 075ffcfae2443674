import Foundation
import Logging
import SlipwayProducer
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import Testing

/// Every client command under `--json`, run as a CI script runs it: the real
/// binary against a real cluster, stdout parsed and checked key for key against
/// docs/json-output.md, on success and on each kind of failure.
@Suite("JSON output", .serialized, .enabled(if: Cluster.isConfigured))
struct JSONOutputTests {
    @Test("the contract page parses: every command's object and every object it names are documented")
    func pageIsComplete() throws {
        let contract = try JSONContract.load()
        for name in ["submit", "job_result", "jobs", "cancel", "log_line", "log_result", "artifacts", "artifact_result",
                     "deploy", "rollout_result", "status", "services", "audit", "error"] {
            #expect(contract.objects[name]?.isEmpty == false, "\(name) is not documented")
        }
        for (name, keys) in contract.objects {
            for (key, type) in keys {
                let base = type.replacingOccurrences(of: " or null", with: "").replacingOccurrences(of: "array of ", with: "")
                let known = ["string", "integer", "number", "boolean"].contains(base) || contract.objects[base] != nil
                #expect(known, "\(name).\(key): unknown type \(type)")
            }
        }
    }

    @Test("each command prints one object that keeps docs/json-output.md; failures keep it too, with the error and its exit code")
    func everyCommand() async throws {
        let contract = try JSONContract.load()
        let (_, statuses) = try await Cluster.with { cluster in
            try cluster.startCoordinator()
            try cluster.startRegion("region", region: "local", store: cluster.store)
            try cluster.startWorker("w1")
            try cluster.startAgent("m1", region: "local", regionProcess: "region")
            let ci = try cluster.clientKeyFlags(.ci, "pipeline").joined(separator: " ")
            let op = try cluster.clientKeyFlags(.operator, "tester").joined(separator: " ")

            /// Runs `slipway ARGS --json`: one line of stdout, checked against object `shape`, and its exit code.
            func run(_ arguments: String, key: String? = nil, shape: String, exit expected: Int32 = 0,
                     coordinator: String? = nil) async throws -> [String: Any] {
                let lines = try await jsonLines(arguments, key: key, exit: expected, coordinator: coordinator)
                #expect(lines.count == 1, "\(arguments): one line of JSON, not \(lines.count)")
                guard let object = lines.last else { return [:] }
                check(object, as: shape, arguments, exit: expected)
                return object
            }
            func jsonLines(_ arguments: String, key: String?, exit expected: Int32, coordinator: String? = nil) async throws -> [[String: Any]] {
                let out = cluster.directory.appendingPathComponent("json-\(UUID().uuidString.prefix(8))")
                let status = try await runShell("'\(Cluster.binary!)' \(arguments) --json --coordinator \(coordinator ?? cluster.intake) \(key ?? ci) > '\(out.path)' 2>/dev/null")
                let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
                #expect(status == expected, "\(arguments): exit \(status), not \(expected)\n\(text)")
                return text.split(separator: "\n").compactMap { line in
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    #expect(object != nil, "\(arguments): stdout is JSON only, not: \(line)")
                    return object
                }
            }
            func check(_ object: [String: Any], as shape: String, _ arguments: String, exit expected: Int32) {
                let problems = contract.violations(of: object, as: shape)
                #expect(problems.isEmpty, "\(arguments): \(problems.joined(separator: "; "))\n\(object)")
                let error = object["error"] as? [String: Any]
                guard shape != "log_line" else { return }
                if expected == 0 {
                    #expect(object["error"] is NSNull, "\(arguments): \(object)")
                } else {
                    #expect((error?["exit_code"] as? NSNumber)?.int32Value == expected, "\(arguments): \(object)")
                }
            }
            func job(_ object: [String: Any]) -> [String: Any] { object["job"] as? [String: Any] ?? [:] }

            // Builds: submitted, waited for, failed, timed out.
            #expect(try await run("jobs --status cancelled", shape: "jobs")["jobs"] as? [Any] != nil, "no jobs yet is [], not nothing")
            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            let submitted = try await run("submit --repo \(repo.path) --commit \(commit) --artifact app", shape: "submit")
            #expect(submitted["duplicate"] as? Bool == false)
            let built = try await run("submit --repo \(repo.path) --commit \(commit) --artifact app --fresh --wait", shape: "submit")
            #expect(job(built)["status"] as? String == "succeeded" && job(built)["artifact_digest"] is String, "\(built)")
            #expect(job(built)["submitted_by"] as? String == "ci/pipeline", "\(built)")
            let jobID = try #require(job(built)["id"] as? String)
            let digest = try #require(job(built)["artifact_digest"] as? String)

            let (failing, failingCommit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho nope\nexit 7\n")
            let failed = try await run("submit --repo \(failing.path) --commit \(failingCommit) --artifact app --max-attempts 1 --follow",
                                 shape: "submit", exit: 1)
            #expect(job(failed)["status"] as? String == "failed" && job(failed)["failure"] is String, "\(failed)")
            #expect((failed["error"] as? [String: Any])?["code"] as? String == "failed")

            let (slow, slowCommit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho started\nsleep 60\n")
            let late = try await run("submit --repo \(slow.path) --commit \(slowCommit) --artifact app --wait --wait-timeout 1s", shape: "submit", exit: 3)
            #expect(["queued", "running"].contains(job(late)["status"] as? String), "the job as last seen: \(late)")
            let slowID = try #require(job(late)["id"] as? String)

            _ = try await run("job \(jobID)", shape: "job_result")
            _ = try await run("wait \(jobID)", shape: "job_result")
            #expect(job(try await run("wait \(slowID) --timeout 1s", shape: "job_result", exit: 3))["id"] as? String == slowID)
            #expect((try await run("jobs", shape: "jobs")["jobs"] as? [Any])?.count == 4)
            _ = try await run("cancel \(slowID)", shape: "cancel")

            // Logs: JSON Lines, a result line last.
            let log = try await jsonLines("logs \(jobID)", key: nil, exit: 0)
            for line in log.dropLast() { check(line, as: "log_line", "logs", exit: 0) }
            #expect(log.contains { ($0["text"] as? String)?.hasPrefix("building \(commit)") == true }, "\(log)")
            if let last = log.last { check(last, as: "log_result", "logs", exit: 0) }
            let cancelled = try await jsonLines("logs -f \(slowID)", key: nil, exit: 2)
            if let last = cancelled.last { check(last, as: "log_result", "logs -f", exit: 2) }

            // Artifacts and deploys.
            _ = try await run("artifacts", shape: "artifacts")
            _ = try await run("artifact \(digest)", shape: "artifact_result")
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security())
            defer { Task { await client.close() } }
            let v1 = try await AgentTests.buildService(client, cluster, version: "v1")
            let deployable = try await run("artifact sha256:\(v1) --wait-deployable --timeout 60s", shape: "artifact_result")
            #expect((deployable["artifact"] as? [String: Any])?["deployable"] as? Bool == true)
            let deployed = try await run("deploy hello \(v1) --plan all --wait --timeout 2m", key: op, shape: "deploy")
            #expect((deployed["rollout"] as? [String: Any])?["state"] as? String == "succeeded", "\(deployed)")
            let status = try await run("status hello", key: op, shape: "status")
            let region = (status["regions"] as? [[String: Any]])?.first
            #expect(region?["machines"] as? Int == 1, "the service's machines: \(status)")
            _ = try await run("rollout status hello", key: op, shape: "rollout_result")
            let services = try await run("services", shape: "services")
            let hello = (services["services"] as? [[String: Any]])?.first { $0["service"] as? String == "hello" }
            #expect(((hello?["regions"] as? [[String: Any]])?.first?["machines"] as? Int) == 1, "\(services)")

            // Digests by prefix: 8 hex digits (status prints 16) name an artifact; a prefix two share is refused.
            let byPrefix = try await run("artifact sha256:\(v1.prefix(8))", shape: "artifact_result")
            #expect((byPrefix["artifact"] as? [String: Any])?["digest"] as? String == v1)
            _ = try await run("deploy hello \(v1.prefix(12)) --plan all", key: op, shape: "deploy")
            let database = try PGConnection(url: cluster.databaseURL, logger: Logger(label: "test"))
            for last in ["0", "1"] {
                _ = try database.query("INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, origin_region) VALUES ($1, 'twin', 0, 1, $2, 'local')",
                                   [.text("deadbeef" + String(repeating: "0", count: 55) + last), .bytes([])])
            }
            let ambiguous = try await run("artifact deadbeef", shape: "artifact_result", exit: 64)
            #expect("\(ambiguous["error"] ?? "")".contains("is the start of 2 digests"), "\(ambiguous)")
            let twin = try await run("deploy hello deadbeef0 --plan all", key: op, shape: "deploy", exit: 64)
            #expect("\(twin["error"] ?? "")".contains("more than one digest"), "\(twin)")
            // A service nobody runs is most likely a typo.
            let typo = try await run("deploy helo \(v1) --plan all", key: op, shape: "deploy", exit: 64)
            #expect("\(typo["error"] ?? "")".contains("--new-service"), "\(typo)")
            let audit = try await run("audit", key: op, shape: "audit")
            let objects = (audit["entries"] as? [[String: Any]] ?? []).compactMap { $0["object"] as? String }
            // Two deploys of v1, one by its full digest and one by a prefix: both audited with the digest itself.
            #expect(objects.filter { $0 == "hello@global sha256:\(v1) plan all" }.count == 2, "\(objects)")

            // Failures keep the shape: refused, unreachable, bad input.
            #expect(try await run("rollout pause hello", key: op, shape: "rollout_result", exit: 5)["rollout"] is NSNull)
            _ = try await run("rollback hello", key: op, shape: "deploy", exit: 5)
            _ = try await run("jobs", shape: "jobs", exit: 4, coordinator: "tcp://127.0.0.1:\(freeLoopbackPort())")
            _ = try await run("job", shape: "job_result", exit: 64)
            _ = try await run("wait \(jobID) --timeout banana", shape: "job_result", exit: 64)
            let bare = try await run("wait \(jobID) --timeout 90", shape: "job_result", exit: 64)
            #expect("\(bare["error"] ?? "")".contains("a number and a unit, e.g. 500ms, 90s, 15m"), "one duration syntax, shown: \(bare)")
            _ = try await run("job \(UUID().uuidString.lowercased())", shape: "job_result", exit: 64)
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }
}
