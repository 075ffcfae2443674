import Logging
import SlipwayCore
import SlipwayStore
import SlipwayTestSupport
import Testing

@Suite("Migrations", .enabled(if: TestDatabase.isConfigured))
struct MigratorTests {
    @Test("applying migrations twice is a no-op")
    func idempotent() async throws {
        let url = try await TestDatabase.create(migrate: false)
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let first = try await client.withConnection { try Migrator.migrate($0, logger: TestDatabase.logger) }
        let second = try await client.withConnection { try Migrator.migrate($0, logger: TestDatabase.logger) }
        #expect(first == SlipwaySchema.migrations.map(\.version))
        #expect(second == [])
        let recorded = try await client.query("SELECT count(*) AS n FROM schema_migrations").first!.int("n")
        #expect(recorded == SlipwaySchema.migrations.count)
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("a failing migration rolls back completely and is not recorded")
    func failedMigrationRollsBack() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let next = SlipwaySchema.migrations.last!.version + 1
        let broken = SlipwaySchema.migrations + [Migration(version: next, name: "broken", sql: "CREATE TABLE half_done (x int); SELECT 1/0;")]
        let error = await #expect(throws: PGError.self) {
            try await client.withConnection { try Migrator.migrate($0, broken, logger: TestDatabase.logger) }
        }
        #expect(error?.code == .migrationFailed)
        #expect(error?.sqlState == "22012")
        let leftovers = try await client.query("SELECT to_regclass('half_done') IS NULL AS gone, (SELECT count(*) FROM schema_migrations WHERE version = \(next)) AS v2").first!
        #expect(try leftovers.bool("gone"))
        #expect(try leftovers.int("v2") == 0)

        let fixed = SlipwaySchema.migrations + [Migration(version: next, name: "fixed", sql: "CREATE TABLE half_done (x int);")]
        let applied = try await client.withConnection { try Migrator.migrate($0, fixed, logger: TestDatabase.logger) }
        #expect(applied == [next])
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("a recorded migration whose name changed is refused")
    func drift() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let renamed = [Migration(version: 1, name: "something else", sql: "SELECT 1")]
        let error = await #expect(throws: PGError.self) {
            try await client.withConnection { try Migrator.migrate($0, renamed, logger: TestDatabase.logger) }
        }
        #expect(error?.message.contains("recorded as 'initial schema'") == true)
        await client.close()
        await TestDatabase.drop(url)
    }
}

@Suite("Job status is spelled once", .enabled(if: TestDatabase.isConfigured))
struct JobStatusSpellingTests {
    @Test("the job_status enum in PostgreSQL has exactly SlipwayCore.JobStatus's names, in order")
    func sqlEnumMatches() async throws {
        let url = try await TestDatabase.create()
        defer { Task { await TestDatabase.drop(url) } }
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let labels = try await client.query("SELECT unnest(enum_range(NULL::job_status))::text AS label").rows.map { try $0.string("label") }
        await client.close()
        #expect(labels == JobStatus.allCases.map(\.rawValue))
    }
}
