import Foundation
@testable import SlipwayHTTP
import Testing

@Suite("The /metrics bearer token")
struct MetricsTokenTests {
    let folder: URL

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    func write(_ text: String, mode: Int = 0o600, name: String = "token") throws -> String {
        let file = folder.appendingPathComponent(name).path
        try? FileManager.default.removeItem(atPath: file)
        #expect(FileManager.default.createFile(atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: mode]))
        return file
    }

    static let secret = String(repeating: "a1", count: 16)

    @Test("only `Bearer <token>` is admitted; the newline ending the file is not part of it")
    func admits() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let token = try MetricsToken(path: try write(Self.secret + "\n"))
        #expect(token.check(authorization: "Bearer \(Self.secret)") == .admitted)
        #expect(token.check(authorization: "bearer  \(Self.secret)") == .admitted)
        #expect(token.check(authorization: nil) == .refused)
        #expect(token.check(authorization: "Basic \(Self.secret)") == .refused)
        #expect(token.check(authorization: "Bearer \(Self.secret)x") == .refused)
        #expect(token.check(authorization: "Bearer \(Self.secret.dropLast())") == .refused)
        #expect(token.check(authorization: "Bearer \(Self.secret)\n") == .refused)
        #expect(token.check(authorization: "Bearer") == .refused)
    }

    @Test("the file is read at each check: a new token replaces the old one; a removed or loosened file admits nobody")
    func rereads() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = try write(Self.secret)
        let token = try MetricsToken(path: path)
        let next = String(repeating: "b2", count: 20)
        _ = try write(next)
        #expect(token.check(authorization: "Bearer \(next)") == .admitted)
        #expect(token.check(authorization: "Bearer \(Self.secret)") == .refused)
        #expect(chmod(path, 0o640) == 0)
        guard case .unavailable(let reason) = token.check(authorization: "Bearer \(next)") else { Issue.record("a group-readable file admitted"); return }
        #expect(reason.contains("chmod 600"), "\(reason)")
        try FileManager.default.removeItem(atPath: path)
        guard case .unavailable = token.check(authorization: "Bearer \(next)") else { Issue.record("a removed file admitted"); return }
    }

    @Test("a token file that cannot be a secret is refused at start, naming why")
    func refusesBadFiles() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases: [(String, String)] = [
            (try write(Self.secret, mode: 0o644), "chmod 600"),
            (try write("short\n", name: "short"), "at least 32"),
            (try write(Self.secret + " " + Self.secret, name: "spaced"), "printable ASCII"),
            (try write(Self.secret + "\n" + Self.secret + "\n", name: "two-lines"), "one line"),
            (try write(String(repeating: "x", count: MetricsToken.maximumBytes + 1), name: "huge"), "more than"),
            (folder.path, "not a regular file"),
            (folder.appendingPathComponent("missing").path, "No such file"),
        ]
        for (path, reason) in cases {
            let error = #expect(throws: MetricsToken.Problem.self) { _ = try MetricsToken(path: path) }
            #expect(error?.description.contains(reason) == true, "\(path): \(String(describing: error))")
        }
    }

    @Test("metrics need a token on every address, loopback too, unless the daemon runs --insecure")
    func exposure() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        for listen in ["0.0.0.0:9100", "10.1.2.3:9100", "127.0.0.1:9100", "127.0.0.2:9100"] {
            let error = #expect(throws: MetricsEndpoint.Failure.self) { try MetricsEndpoint.checkExposure(listen: listen, tokenGiven: false, insecure: false) }
            #expect(error?.description.contains("--metrics-token-file") == true, "\(listen): \(String(describing: error))")
            try MetricsEndpoint.checkExposure(listen: listen, tokenGiven: true, insecure: false)
            try MetricsEndpoint.checkExposure(listen: listen, tokenGiven: false, insecure: true)
        }
        #expect(throws: MetricsEndpoint.Failure.self) { try MetricsEndpoint.checkExposure(listen: "localhost:9100", tokenGiven: true, insecure: false) }
    }
}
