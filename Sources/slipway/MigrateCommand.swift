import ArgumentParser
import Logging
import SlipwayStore

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply Slipway's schema migrations to a PostgreSQL database (safe to re-run).")

    @Option(name: .customLong("database-url"), help: "libpq URL, e.g. postgresql://slipway@127.0.0.1:15432/slipway (env: SLIPWAY_DATABASE_URL).")
    var databaseURL: String?

    func run() async throws {
        guard let url = databaseURL ?? Environment.value("SLIPWAY_DATABASE_URL") else {
            throw ValidationError("no database: pass --database-url or set SLIPWAY_DATABASE_URL")
        }
        let logger = Logger(label: "slipway.migrate")
        let client = PGClient(url: url, name: "migrate", logger: logger)
        defer { client.thread.shutdown() }
        do {
            let applied = try await client.withConnection { try Migrator.migrate($0, logger: logger) }
            let newest = SlipwaySchema.migrations.last?.version ?? 0
            print(applied.isEmpty ? "schema is up to date (version \(newest))"
                                  : "applied migrations \(applied.map(String.init).joined(separator: ", ")); schema is at version \(newest)")
        } catch let error as PGError {
            // The safe description only: the URL (and any password in it) stays out.
            throw CommandFailure("slipway migrate: \(error.description)")
        }
    }
}
