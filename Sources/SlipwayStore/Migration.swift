public import Logging

/// One schema change, applied once, in order, inside its own transaction.
public struct Migration: Sendable, Hashable {
    /// Strictly increasing; recorded in `schema_migrations`.
    public let version: Int
    /// Short name, recorded with the version and checked on later runs.
    public let name: String
    /// Statements run with the simple-query protocol (no parameters).
    public let sql: String

    /// Creates a migration.
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies migrations to a database, exactly once each.
///
/// A session advisory lock serializes concurrent migrators (two coordinators
/// starting together). Each migration runs in its own transaction with the row
/// that records it, so a failed one leaves nothing behind. Re-running is a no-op.
public enum Migrator {
    /// Advisory lock key: "slipway" in ASCII, so it cannot collide with job locks.
    static let lockKey: Int64 = 0x736c_6970_7761_79

    /// Applies every migration not yet recorded.
    /// - Returns: the versions applied by this call (empty when up to date).
    @discardableResult
    public static func migrate(_ connection: PGConnection, _ migrations: [Migration] = SlipwaySchema.migrations, logger: Logger) throws -> [Int] {
        let versions = migrations.map(\.version)
        precondition(versions == versions.sorted() && Set(versions).count == versions.count,
                     "migrations must have strictly increasing versions")
        try connection.query("SELECT pg_advisory_lock($1)", [.int(lockKey)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [.int(lockKey)]) }

        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var applied: [Int: String] = [:]
        for row in try connection.query("SELECT version, name FROM schema_migrations").rows {
            applied[try row.int("version")] = try row.string("name")
        }

        var ran: [Int] = []
        for migration in migrations {
            if let name = applied[migration.version] {
                guard name == migration.name else {
                    throw PGError(.migrationFailed,
                                  message: "migration \(migration.version) is recorded as '\(name)' but this build calls it '\(migration.name)'")
                }
                continue
            }
            do {
                try connection.transaction { connection in
                    try connection.execute(migration.sql)
                    try connection.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                         [.int(migration.version), .text(migration.name)])
                }
            } catch let error as PGError {
                throw PGError(.migrationFailed,
                              message: "migration \(migration.version) (\(migration.name)) failed and was rolled back: \(error.message)",
                              sqlState: error.sqlState, detail: error.detail, hint: error.hint, query: error.query)
            }
            logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            ran.append(migration.version)
        }
        if let newest = applied.keys.max(), newest > (versions.last ?? 0) {
            logger.warning("database schema is newer than this build", metadata: ["database": "\(newest)", "build": "\(versions.last ?? 0)"])
        }
        return ran
    }
}
