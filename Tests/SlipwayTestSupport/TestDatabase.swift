import Foundation
public import Logging
import SlipwayStore

/// Integration tests get PostgreSQL from `ops/pg` (started by `ops/test`):
/// `SLIPWAY_TEST_DATABASE_URL` names a server where each test creates a fresh
/// database of its own, so suites can run in parallel.
public enum TestDatabase {
    public static let environment = ProcessInfo.processInfo.environment
    public static let baseURL = environment["SLIPWAY_TEST_DATABASE_URL"]
    public static var isConfigured: Bool { baseURL != nil }
    public static let logger = Logger(label: "slipway.test.store")

    /// A fresh, migrated database on the server at `server` (the shared test
    /// server by default); dropped by `drop(_:)`.
    public static func create(migrate: Bool = true, server: String? = nil) async throws -> String {
        let base = try require_(server ?? baseURL)
        let name = "slipway_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = PGClient(url: base, name: "pg-admin", logger: logger)
        try await admin.query("CREATE DATABASE \(name)")
        await admin.close()
        let url = replacingDatabase(in: base, with: name)
        if migrate {
            let client = PGClient(url: url, logger: logger)
            _ = try await client.withConnection { try Migrator.migrate($0, logger: logger) }
            await client.close()
        }
        return url
    }

    public static func drop(_ url: String) async {
        let name = String(url.split(separator: "/").last!)
        let base = replacingDatabase(in: url, with: "postgres")
        let admin = PGClient(url: base, name: "pg-admin", logger: logger)
        _ = try? await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }

    static func replacingDatabase(in url: String, with name: String) -> String {
        var parts = url.split(separator: "/", omittingEmptySubsequences: false)
        parts[parts.count - 1] = Substring(name)
        return parts.joined(separator: "/")
    }
}

public struct MissingConfiguration: Error {}

public func require_<T>(_ value: T?) throws -> T {
    guard let value else { throw MissingConfiguration() }
    return value
}
