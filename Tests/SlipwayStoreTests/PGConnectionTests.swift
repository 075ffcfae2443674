import Foundation
import SlipwayStore
import SlipwayThreads
import SlipwayTestSupport
import Testing

@Suite("libpq connection", .enabled(if: TestDatabase.isConfigured))
struct PGConnectionTests {
    @Test("parameters travel apart from SQL: hostile text and binary bytes round-trip")
    func parameters() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        let hostile = "'; DROP TABLE jobs; -- \u{0}".replacingOccurrences(of: "\u{0}", with: "\"ü\\")
        let blob: [UInt8] = [0, 1, 0x5C, 0x27, 0xFF, 0]
        let row = try await client.query("SELECT $1::text AS t, $2::bytea AS b, $3::int AS n, $4::text IS NULL AS isnull",
                                         [.text(hostile), .bytes(blob), .int(-42), .null]).first!
        #expect(try row.string("t") == hostile)
        #expect(try row.bytes("b") == blob)
        #expect(try row.int("n") == -42)
        #expect(try row.bool("isnull"))
        await client.close()
    }

    @Test("text[] and bytea[] parameters round-trip element by element, quotes, backslashes and empty ones included")
    func arrays() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        let texts = ["plain", "", "a\"b", "back\\slash", "{,}", "NULL", "ü \\\""]
        let blobs: [[UInt8]] = [[], [0], [0x5C, 0x22, 0x7B, 0xFF], Array(repeating: 0xAB, count: 70_000)]
        let row = try await client.query("""
            SELECT (SELECT count(*) FROM unnest($1::text[])) AS text_count,
                   (SELECT count(*) FROM unnest($2::bytea[])) AS blob_count,
                   (SELECT array_agg(length(b) ORDER BY n) FROM unnest($2::bytea[]) WITH ORDINALITY AS y(b, n))::text AS lengths,
                   ($2::bytea[])[3] AS third, cardinality($3::bytea[]) AS empty_count
            """, [PGBind.textArray(texts), PGBind.byteaArray(blobs), PGBind.byteaArray([])]).first!
        #expect(try row.int("text_count") == texts.count)
        for (index, text) in texts.enumerated() {
            let element = try await client.query("SELECT ($1::text[])[$2::int] AS e", [PGBind.textArray(texts), .int(index + 1)]).first!
            #expect(try element.string("e") == text)
        }
        #expect(try row.int("blob_count") == blobs.count)
        #expect(try row.string("lengths") == "{0,1,4,70000}")
        #expect(try row.bytes("third") == blobs[2])
        #expect(try row.int("empty_count") == 0)
        await client.close()
    }

    @Test("server errors carry SQLSTATE; the connection stays usable")
    func sqlState() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        let syntax = await #expect(throws: PGError.self) { try await client.query("SELEC 1") }
        #expect(syntax?.sqlState == "42601")
        #expect(syntax?.code == .queryFailed)
        #expect(syntax?.debugDescription.contains("query: SELEC 1") == true)
        #expect(syntax?.description.contains("SELEC 1") == false)
        try await client.query("CREATE TEMP TABLE u (k text PRIMARY KEY)")
        try await client.query("INSERT INTO u VALUES ($1)", ["a"])
        let duplicate = await #expect(throws: PGError.self) { try await client.query("INSERT INTO u VALUES ($1)", ["a"]) }
        #expect(duplicate?.isUniqueViolation == true)
        #expect(try await client.query("SELECT 1 AS one").first!.int("one") == 1)
        await client.close()
    }

    @Test("an error inside a transaction rolls it back")
    func transactionRollback() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        try await client.query("CREATE TEMP TABLE t (n int)")
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await client.transaction { db in
                try db.query("INSERT INTO t VALUES (1)")
                throw Abort()
            }
        }
        try await client.transaction { db in _ = try db.query("INSERT INTO t VALUES (2)") }
        let rows = try await client.query("SELECT n FROM t").rows.map { try $0.int("n") }
        #expect(rows == [2])
        await client.close()
    }

    @Test("a statement that failed inside a transaction makes the whole transaction fail, not commit")
    func swallowedErrorDoesNotCommit() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        try await client.query("CREATE TEMP TABLE s (n int)")
        let error = await #expect(throws: PGError.self) {
            try await client.transaction { db in
                try db.query("INSERT INTO s VALUES (1)")
                _ = try? db.query("SELECT 1/0")
            }
        }
        #expect(error?.message.contains("rolled back") == true)
        #expect(try await client.query("SELECT count(*) AS n FROM s").first!.int("n") == 0)
        await client.close()
    }

    @Test("BEGIN goes with the first statement and COMMIT with the last, and it is still one transaction")
    func pipelinedTransaction() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        try await client.query("CREATE TEMP TABLE p (n int)")
        let ids = try await client.transaction { db in
            let first = try db.query("INSERT INTO p VALUES (1) RETURNING txid_current() AS x").first!.int("x")
            let second = try db.query("SELECT txid_current() AS x").first!.int("x")
            let last = try db.queryAndCommit("INSERT INTO p VALUES (2) RETURNING txid_current() AS x").first!.int("x")
            return [first, second, last]
        }
        #expect(Set(ids).count == 1)
        let after = try await client.query("SELECT txid_current() AS x").first!.int("x")
        #expect(after != ids[0])
        #expect(try await client.query("SELECT array_agg(n ORDER BY n)::text AS a FROM p").first!.string("a") == "{1,2}")

        // BEGIN, the statement and COMMIT at once.
        try await client.transaction { db in _ = try db.queryAndCommit("INSERT INTO p VALUES (3)") }
        #expect(try await client.query("SELECT count(*) AS n FROM p").first!.int("n") == 3)
        await client.close()
    }

    @Test("a last statement that fails commits nothing of its transaction; the connection stays usable")
    func pipelinedFailure() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        try await client.query("CREATE TEMP TABLE q (n int)")
        let failed = await #expect(throws: PGError.self) {
            try await client.transaction { db in
                try db.query("INSERT INTO q VALUES (1)")
                try db.queryAndCommit("INSERT INTO q VALUES (1/0)")
            }
        }
        #expect(failed?.sqlState == "22012")
        #expect(try await client.query("SELECT count(*) AS n FROM q").first!.int("n") == 0)
        // A statement after the commit is refused, not run outside the transaction.
        let late = await #expect(throws: PGError.self) {
            try await client.transaction { db in
                try db.queryAndCommit("INSERT INTO q VALUES (2)")
                try db.query("INSERT INTO q VALUES (3)")
            }
        }
        #expect(late?.code == .invalidArgument)
        #expect(try await client.query("SELECT array_agg(n)::text AS a FROM q").first!.string("a") == "{2}")
        await client.close()
    }

    @Test("a session killed in the middle of a pipeline: connection lost, nothing committed, the next call reconnects")
    func pipelinedConnectionLoss() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        try await client.query("CREATE TABLE r (n int)")
        let before = try await client.withConnection { $0.reconnectCount }
        let lost = await #expect(throws: PGError.self) {
            try await client.transaction { db in
                try db.query("INSERT INTO r VALUES (1)")
                try db.queryAndCommit("SELECT pg_terminate_backend(pg_backend_pid())")
            }
        }
        #expect(lost?.code == .connectionLost)
        #expect(try await client.query("SELECT count(*) AS n FROM r").first!.int("n") == 0)
        #expect(try await client.withConnection { $0.reconnectCount } == before + 1)
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("a text parameter with a NUL byte is refused before it is sent")
    func nulParameter() async throws {
        let client = PGClient(url: try require_(TestDatabase.baseURL), logger: TestDatabase.logger)
        let error = await #expect(throws: PGError.self) { try await client.query("SELECT $1::text", [.text("key\u{0}suffix")]) }
        #expect(error?.code == .invalidArgument)
        #expect(try await client.query("SELECT 2 AS two").first!.int("two") == 2)
        await client.close()
    }

    @Test("LISTEN/NOTIFY delivers, and a NOTIFY inside a transaction arrives at COMMIT")
    func listenNotify() async throws {
        let url = try require_(TestDatabase.baseURL)
        let channel = "test_" + UUID().uuidString.prefix(8).lowercased()
        let listener = PGClient(url: url, name: "listener", logger: TestDatabase.logger)
        let notifier = PGClient(url: url, name: "notifier", logger: TestDatabase.logger)
        try await listener.withConnection { try $0.listen(channel) }

        try await notifier.withConnection { db in
            try db.execute("BEGIN")
            try db.notify(channel, payload: "seq=7")
        }
        let early = try await listener.withConnection { try $0.waitForNotifications(timeout: .milliseconds(200)) }
        #expect(early.isEmpty)
        try await notifier.withConnection { _ = try $0.execute("COMMIT") }
        let delivered = try await listener.withConnection { try $0.waitForNotifications(timeout: .seconds(5)) }
        #expect(delivered.map(\.payload) == ["seq=7"])
        #expect(delivered.first?.channel == channel)
        await listener.close(); await notifier.close()
    }

    @Test("connection failures are typed and never echo the password")
    func connectionFailure() async throws {
        let client = PGClient(url: "postgresql://slipway:hunter2@127.0.0.1:1/slipway?connect_timeout=2", logger: TestDatabase.logger)
        let error = await #expect(throws: PGError.self) { try await client.query("SELECT 1") }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("hunter2") == false)
        await client.close()
    }

    @Test("a query after a server restart succeeds on a new connection",
          .enabled(if: TestDatabase.environment["SLIPWAY_TEST_RESTART_DATABASE_URL"] != nil))
    func reconnectAfterRestart() async throws {
        let url = try require_(TestDatabase.environment["SLIPWAY_TEST_RESTART_DATABASE_URL"])
        let restart = try require_(TestDatabase.environment["SLIPWAY_TEST_RESTART_COMMAND"])
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let channel = "restart_test"
        let before = try await client.withConnection { db in
            try db.listen(channel)
            return db.backendPID
        }
        let status = try await client.thread.run { try runShell(restart) }
        #expect(status == 0)
        let (one, after) = try await client.withConnection { db in (try db.query("SELECT 1 AS one").first!.int("one"), db.backendPID) }
        #expect(one == 1)
        #expect(after != before)
        // LISTEN survives the reconnect.
        try await client.withConnection { try $0.notify(channel, payload: "back") }
        let notes = try await client.withConnection { try $0.waitForNotifications(timeout: .seconds(5)) }
        #expect(notes.map(\.payload) == ["back"])
        await client.close()
    }
}

