import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// The console's HTTP API against a real cluster: every endpoint with each
/// role, and hostile or mistaken input answered with a clear 4xx that changes nothing.
@Suite("Console API", .serialized, .enabled(if: Cluster.isConfigured))
struct ConsoleAPITests {
    /// A coordinator, one region, a worker and two agents of service `hello`; two builds, deployable.
    static func fleet(_ cluster: Cluster) async throws -> (SlipwayClient, [String], [String]) {
        try cluster.startCoordinator()
        try cluster.startRegion()
        try cluster.startWorker("w1")
        for name in ["m1", "m2"] { try cluster.startAgent(name, region: "local", regionProcess: "region") }
        let client = try SlipwayClient(endpoint: cluster.intake, security: try cluster.security(.ci, "pipeline"))
        var digests: [String] = [], jobs: [String] = []
        for version in ["v1", "v2"] {
            let (repo, commit) = try TestRepository.make(in: cluster.directory, content: "hello \(version)")
            var request = Slipway_V1_SubmitBuild()
            request.idempotencyKey = UUID().uuidString
            request.repoURL = repo.path
            request.commit = commit
            request.artifactName = "hello"
            request.recipe = "echo building \(version); mkdir -p out && printf '#!/bin/sh\\necho hello \(version)\\nexec sleep 600\\n' > out/app"
            request.artifactPath = "out/app"
            let done = try await client.wait(for: try await client.submit(request).jobID, timeout: .seconds(60))
            try #require(done.status == .succeeded, "build failed: \(done.error)")
            try await ReplicationTests.waitFor("\(version) deployable", timeout: .seconds(60)) {
                try await ReplicationTests.artifact(client, done.artifactDigest).deployableAtUnixMicros > 0
            }
            digests.append(done.artifactDigest)
            jobs.append(done.jobID)
        }
        return (client, digests, jobs)
    }

    static func target(_ client: SlipwayClient) async throws -> Slipway_V1_TargetChange? {
        try await client.status(service: "hello").targets.first { $0.region.isEmpty }
    }

    @Test func readsAndActionsByRoleWithBadInputRefused() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let (client, digests, jobs) = try await Self.fleet(cluster)
            defer { Task { await client.close() } }
            let console = try await ConsoleHarness.start(cluster)
            let api = console.base + "/api/v1"

            // No credentials, a wrong token: refused before anything is read.
            let health = try await HTTPReply.call("GET", console.base + "/healthz")
            #expect(health.status == 200 && health.json.keys.sorted() == ["status"], "liveness and nothing else: \(health.body)")
            let anonymous = try await HTTPReply.call("GET", api + "/jobs")
            #expect(anonymous.status == 401 && anonymous.errorCode == "not_signed_in")
            let forged = try await HTTPReply.call("GET", api + "/jobs", token: "slw_" + String(repeating: "0", count: 64))
            #expect(forged.status == 401 && forged.errorCode == "bad_token")
            let page = try await HTTPReply.call("GET", console.base + "/services")
            #expect(page.status == 302 && page.headers.contains("/login?next=%2Fservices"))

            // Every read, as a viewer: the objects of docs/json-output.md, error last and null.
            let viewer = console.viewerToken
            let me = try await HTTPReply.call("GET", api + "/me", token: viewer)
            #expect(me.json["name"] as? String == "dashboard" && me.json["role"] as? String == "viewer")
            let list = try await HTTPReply.call("GET", api + "/jobs?status=succeeded&limit=10", token: viewer)
            #expect(list.status == 200)
            #expect(Set(((list.json["jobs"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }) == Set(jobs))
            #expect(list.body.hasSuffix("\"error\":null}\n"))
            let job = try await HTTPReply.call("GET", api + "/jobs/\(jobs[0])", token: viewer)
            #expect((job.json["job"] as? [String: Any])?["artifact_digest"] as? String == digests[0])
            let log = try await HTTPReply.call("GET", api + "/jobs/\(jobs[0])/log?offset=0", token: viewer)
            #expect((log.json["text"] as? String)?.contains("building v1") == true, "\(log.body)")
            let rest = try await HTTPReply.call("GET", api + "/jobs/\(jobs[0])/log?offset=\(log.json["next_offset"] as? Int ?? 0)", token: viewer)
            #expect(rest.json["complete"] as? Bool == true && rest.json["text"] as? String == "", "\(rest.body)")
            let artifacts = try await HTTPReply.call("GET", api + "/artifacts?name=hello", token: viewer)
            #expect(((artifacts.json["artifacts"] as? [[String: Any]]) ?? []).count == 2)
            let byPrefix = try await HTTPReply.call("GET", api + "/artifacts/sha256:\(digests[1].prefix(12))", token: viewer)
            #expect((byPrefix.json["artifact"] as? [String: Any])?["digest"] as? String == digests[1])
            #expect(try await HTTPReply.call("GET", api + "/services", token: viewer).status == 200)
            // Metrics are for signed-in users (or Prometheus with --metrics-token-file), never anonymous.
            let scraped = try await HTTPReply.call("GET", console.base + "/metrics", token: viewer).body
            #expect(scraped.contains("slipway_console_requests_total") && scraped.contains("slipway_console_live_watchers"), "\(scraped.prefix(400))")
            let anonymousScrape = try await HTTPReply.call("GET", console.base + "/metrics")
            #expect(anonymousScrape.status == 401 && !anonymousScrape.body.contains("slipway_"), "\(anonymousScrape.body)")
            #expect(try await HTTPReply.call("GET", console.base + "/metrics", token: String(repeating: "f", count: 64)).status == 401)

            // A viewer may not act; nothing changes.
            let viewerDeploy = try await HTTPReply.call("POST", api + "/services/hello/deploy", token: viewer,
                                                        json: #"{"artifact":"\#(digests[0])","new_service":true}"#)
            #expect(viewerDeploy.status == 403 && viewerDeploy.errorCode == "forbidden")
            #expect(try await HTTPReply.call("GET", api + "/audit", token: viewer).status == 403)
            #expect(try await HTTPReply.call("POST", api + "/jobs/\(jobs[0])/cancel", token: viewer).status == 403)
            #expect(try await Self.target(client) == nil)

            // Live events: a viewer's stream sees the deploy below as it happens.
            let stream = cluster.directory.appendingPathComponent("events.sse")
            let watcher = try SpawnedProcess(["/usr/bin/curl", "-s", "-N", "--max-time", "20", "-o", stream.path,
                                              "-H", "Authorization: Bearer \(viewer)", api + "/events"], log: nil)
            try await ReplicationTests.waitFor("the event stream to open", timeout: .seconds(10)) {
                ((try? String(contentsOf: stream, encoding: .utf8)) ?? "").contains(": connected")
            }

            // The operator deploys v1, then v2; both reach every machine.
            let op = console.operatorToken
            let first = try await HTTPReply.call("POST", api + "/services/hello/deploy", token: op,
                                                 json: #"{"artifact":"\#(digests[0])","plan":"all","new_service":true}"#)
            #expect(first.status == 200, "\(first.body)")
            #expect(((first.json["rollout"] as? [String: Any])?["set_by"] as? String) == "deploy-bot (console)")
            let second = try await HTTPReply.call("POST", api + "/services/hello/deploy", token: op,
                                                  json: #"{"artifact":"\#(digests[1].prefix(16))"}"#)
            #expect(second.status == 200, "\(second.body)")
            try await ReplicationTests.waitFor("v2 on both machines", timeout: .seconds(60)) {
                let state = try await client.rollout(service: "hello").state
                return cluster.serviceOutput("m1").contains("hello v2") && cluster.serviceOutput("m2").contains("hello v2") && state == .succeeded
            }
            func streamed() -> [String] {
                ((try? String(contentsOf: stream, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("data: ") }.compactMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])?["type"] as? String
                }
            }
            // The console relays what the coordinator published a moment ago.
            try? await ReplicationTests.waitFor("the deploy's events on the stream", timeout: .seconds(10)) {
                Set(streamed()).isSuperset(of: ["target_changed", "rollout_started", "rollout_succeeded"])
            }
            #expect(Set(streamed()).isSuperset(of: ["target_changed", "rollout_started", "rollout_succeeded"]), "\(streamed())")
            watcher.signal(SIGTERM)
            _ = await watcher.exited(killAfter: .seconds(5))
            let status = try await HTTPReply.call("GET", api + "/services/hello", token: viewer)
            #expect(((status.json["targets"] as? [[String: Any]])?.first?["artifact_digest"] as? String) == digests[1])
            let rollout = try await HTTPReply.call("GET", api + "/services/hello/rollout", token: viewer)
            #expect((rollout.json["rollout"] as? [String: Any])?["to_digest"] as? String == digests[1])

            // Mistakes and hostile input: a clear 4xx each, and the target stays where it is.
            let version = try #require(try await Self.target(client)).version
            let cases: [(String, String, String?, Int, String)] = [
                ("GET", "/jobs/not-a-job", nil, 400, "bad_input"),
                ("GET", "/jobs/\(UUID().uuidString.lowercased())", nil, 404, "not_found"),
                ("GET", "/artifacts/xyz", nil, 400, "bad_input"),
                ("GET", "/artifacts/\(String(repeating: "ab", count: 32))", nil, 404, "not_found"),
                ("GET", "/jobs?status=exploded", nil, 400, "bad_input"),
                ("POST", "/services/hello/deploy", #"{"artifact":"zz"}"#, 400, "bad_input"),
                ("POST", "/services/hello/deploy", #"{"artifact":"#, 400, "bad_input"),
                ("POST", "/services/hello/deploy", #"{"artifact":"\#(digests[0])","plan":"no-such-plan"}"#, 400, "bad_input"),
                ("POST", "/services/hello/deploy", #"{"artifact":"\#(digests[0])","region":"../etc"}"#, 400, "bad_input"),
                ("POST", "/services/Bad Name!/deploy", #"{"artifact":"\#(digests[0])"}"#, 400, "bad_input"),
                ("POST", "/services/hello/explode", "{}", 404, "not_found"),
                ("POST", "/services/hello/rollout/jump", "{}", 404, "not_found"),
            ]
            for (method, path, body, expected, code) in cases {
                let reply = try await HTTPReply.call(method, api + path.replacingOccurrences(of: " ", with: "%20"), token: op, json: body)
                #expect(reply.status == expected && reply.errorCode == code, "\(method) \(path): \(reply.status) \(reply.body)")
            }
            let big = cluster.directory.appendingPathComponent("big.json").path
            try Data(("{\"artifact\":\"" + String(repeating: "a", count: 200_000) + "\"}").utf8).write(to: URL(fileURLWithPath: big))
            let oversized = try await HTTPReply.call("POST", api + "/services/hello/deploy", token: op, bodyFile: big)
            #expect(oversized.status == 413 && oversized.errorCode == "too_large", "\(oversized.body)")
            #expect(try await Self.target(client)?.version == version)

            // A signed-in browser: actions need the session's CSRF token, in a header or a form field.
            let jar = cluster.directory.appendingPathComponent("cookies").path
            let wrong = try await HTTPReply.call("POST", console.base + "/login", cookies: jar, form: ["name": "alice", "password": "nope"])
            #expect(wrong.status == 401 && wrong.body.contains("unknown user or wrong password"))
            let unknown = try await HTTPReply.call("POST", console.base + "/login", cookies: jar, form: ["name": "mallory", "password": "x"])
            #expect(unknown.status == 401)
            let signIn = try await HTTPReply.call("POST", console.base + "/login", cookies: jar,
                                                  form: ["name": "alice", "password": ConsoleHarness.operatorPassword, "next": "https://evil.example/"])
            #expect(signIn.status == 302 && signIn.headers.lowercased().contains("location: /\r") && signIn.headers.contains("HttpOnly"), "\(signIn.headers)")
            let behindProxy = try await HTTPReply.call("GET", api + "/me", cookies: jar, headers: ["Authorization: Basic cHJveHk6cGFzcw=="])
            #expect(behindProxy.status == 200, "a proxy's Basic credentials leave the cookie to decide: \(behindProxy.body)")
            let builds = try await HTTPReply.call("GET", console.base + "/builds", cookies: jar)
            #expect(builds.headers.lowercased().contains("x-frame-options: deny") && builds.headers.contains("frame-ancestors 'none'"))
            let noToken = try await HTTPReply.call("POST", api + "/services/hello/rollback", cookies: jar, json: "{}")
            #expect(noToken.status == 403 && noToken.errorCode == "csrf")
            let formNoToken = try await HTTPReply.call("POST", console.base + "/actions", cookies: jar, form: ["action": "rollback", "service": "hello"])
            #expect(formNoToken.status == 403)
            #expect(try await Self.target(client)?.version == version)
            let csrf = try #require(try await HTTPReply.call("GET", api + "/me", cookies: jar).json["csrf_token"] as? String)
            let rollback = try await HTTPReply.call("POST", api + "/services/hello/rollback", cookies: jar, json: "{}", headers: ["X-CSRF-Token: \(csrf)"])
            #expect(rollback.status == 200, "\(rollback.body)")
            #expect(try await Self.target(client)?.artifactDigest == digests[0])
            #expect(try await Self.target(client)?.setBy == "alice (console)")

            // The confirmation names what will change; the form carries the token.
            let confirm = try await HTTPReply.call("GET", console.base + "/deploy?service=hello&artifact=\(digests[1])&plan=all", cookies: jar)
            #expect(confirm.status == 200 && confirm.body.contains("every region") && confirm.body.contains("name=\"csrf\" value=\"\(csrf)\""))
            let confirmed = try await HTTPReply.call("POST", console.base + "/actions", cookies: jar,
                                                     form: ["action": "deploy", "service": "hello", "artifact": digests[1], "plan": "all", "csrf": csrf])
            #expect(confirmed.status == 303 && confirmed.headers.contains("/services/hello?done=deploy"), "\(confirmed.status) \(confirmed.headers) \(confirmed.body)")
            #expect(try await Self.target(client)?.artifactDigest == digests[1])

            // A viewer's browser sees no buttons and may not open a confirmation.
            let viewerJar = cluster.directory.appendingPathComponent("viewer-cookies").path
            _ = try await HTTPReply.call("POST", console.base + "/login", cookies: viewerJar, form: ["name": "victor", "password": ConsoleHarness.viewerPassword])
            let viewerPage = try await HTTPReply.call("GET", console.base + "/services/hello", cookies: viewerJar)
            #expect(viewerPage.status == 200 && !viewerPage.body.contains("Roll back") && viewerPage.body.contains("victor (viewer)"))
            #expect(try await HTTPReply.call("GET", console.base + "/services/hello/confirm?action=rollback", cookies: viewerJar).status == 403)
            #expect(try await HTTPReply.call("GET", console.base + "/audit", cookies: viewerJar).status == 403)
            let auditPage = try await HTTPReply.call("GET", console.base + "/audit?since=1h", cookies: jar)
            #expect(auditPage.status == 200 && auditPage.body.contains("operator/console") && auditPage.body.contains(">Audit</a>"))
            #expect(try await HTTPReply.call("GET", console.base + "/audit?since=soon", cookies: jar).status == 400)

            // The audit log records the console's key as the identity and the user as the actor.
            let audit = try await HTTPReply.call("GET", api + "/audit?since=1h", token: op)
            let entries = (audit.json["entries"] as? [[String: Any]]) ?? []
            #expect(entries.contains { ($0["identity"] as? String) == "operator/console" }, "\(audit.body.prefix(600))")

            // Removing a line from the users file revokes that account at once.
            let text = try String(contentsOfFile: console.usersFile, encoding: .utf8)
            try text.split(separator: "\n").filter { !$0.contains(" dashboard ") }.joined(separator: "\n").appending("\n")
                .write(toFile: console.usersFile, atomically: true, encoding: .utf8)
            try await ReplicationTests.waitFor("the viewer token revoked", timeout: .seconds(10)) {
                try await HTTPReply.call("GET", api + "/services", token: viewer).status == 401
            }
        }
        #expect(statuses["console"] == 0, "the console exits 0 when stopped")
    }
}
