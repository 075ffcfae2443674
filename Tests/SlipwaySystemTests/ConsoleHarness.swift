import Foundation
import SlipwayAuth
import SlipwayTestSupport
import Testing

/// A console in front of a test cluster, with an operator and a viewer (a
/// password each) and a bearer token for each role; and an HTTP client (curl).
struct ConsoleHarness {
    static let operatorPassword = "operator-pass-1"
    static let viewerPassword = "viewer-pass-1"

    let cluster: Cluster
    let base: String
    let usersFile: String
    let operatorToken: String
    let viewerToken: String

    /// Writes the users file and starts `slipway console` against `cluster`'s coordinator.
    static func start(_ cluster: Cluster, extra: [String] = []) async throws -> ConsoleHarness {
        let bin = try #require(Cluster.binary)
        let users = cluster.directory.appendingPathComponent("console-users").path
        for (name, role, password) in [("alice", "operator", operatorPassword), ("victor", "viewer", viewerPassword)] {
            let status = try await runShell("printf '%s\\n' '\(password)' | '\(bin)' console-users add --file '\(users)' --name \(name) --role \(role) --cost 10 >/dev/null")
            try #require(status == 0)
        }
        let operatorToken = try await shellOutput("'\(bin)' console-users token --file '\(users)' --name deploy-bot --role operator")
        let viewerToken = try await shellOutput("'\(bin)' console-users token --file '\(users)' --name dashboard --role viewer")
        let port = freeLoopbackPort()
        try cluster.start("console", ["console", "--listen", "127.0.0.1:\(port)", "--coordinator", "127.0.0.1:\(cluster.coordinatorPort)",
                                      "--users", users, "--heartbeat", cluster.heartbeat] + cluster.clientKeyFlags(.operator, "console") + extra)
        try await cluster.waitForLog("console", "serving")
        return ConsoleHarness(cluster: cluster, base: "http://127.0.0.1:\(port)", usersFile: users,
                              operatorToken: operatorToken, viewerToken: viewerToken)
    }
}

/// One HTTP exchange through curl: what a script or a browser without JavaScript does.
struct HTTPReply {
    let status: Int
    let body: String
    let headers: String

    /// The body as a JSON object.
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]) ?? [:] }
    /// `error.code` of a failed API call.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

    /// Sends `method path`; `token` as a bearer token, `cookies` as a curl cookie jar (read and written),
    /// `json` or `form` as the body, `headers` as `Name: value` lines.
    static func call(_ method: String, _ url: String, token: String? = nil, cookies: String? = nil, json: String? = nil,
                     form: [String: String]? = nil, headers: [String] = [], bodyFile: String? = nil) async throws -> HTTPReply {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("http-\(UUID().uuidString)")
        defer { for suffix in [".body", ".headers", ".in"] { try? FileManager.default.removeItem(atPath: scratch.path + suffix) } }
        var arguments = ["curl", "-s", "-X", method, "-o", scratch.path + ".body", "-D", scratch.path + ".headers", "-w", "%{http_code}",
                         "--max-time", "20"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let cookies { arguments += ["-b", cookies, "-c", cookies] }
        for header in headers { arguments += ["-H", header] }
        if let json {
            try Data(json.utf8).write(to: URL(fileURLWithPath: scratch.path + ".in"))
            arguments += ["-H", "Content-Type: application/json", "--data-binary", "@" + scratch.path + ".in"]
        }
        if let form {
            for (key, value) in form.sorted(by: { $0.key < $1.key }) { arguments += ["--data-urlencode", "\(key)=\(value)"] }
        }
        if let bodyFile { arguments += ["-H", "Content-Type: application/json", "--data-binary", "@" + bodyFile] }
        arguments.append(url)
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let code = try await shellOutput(quoted)
        let body = (try? String(contentsOfFile: scratch.path + ".body", encoding: .utf8)) ?? ""
        let headers = (try? String(contentsOfFile: scratch.path + ".headers", encoding: .utf8)) ?? ""
        return HTTPReply(status: Int(code) ?? 0, body: body, headers: headers)
    }
}
