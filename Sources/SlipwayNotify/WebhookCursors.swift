import SlipwayStore

/// The SQL of webhook delivery: cursors in `webhook_cursors`, events from the outbox.
enum WebhookCursors {
    /// The cursor of `url`; a webhook seen for the first time starts at the newest event (it gets what happens from now on).
    static func load(_ db: PGConnection, url: String) throws -> Int64 {
        try db.query("""
            INSERT INTO webhook_cursors (url, last_seq) SELECT $1, last_seq FROM event_sequence
            ON CONFLICT (url) DO NOTHING
            """, [.text(url)])
        guard let row = try db.query("SELECT last_seq FROM webhook_cursors WHERE url = $1", [.text(url)]).first else {
            throw PGError(.badResult, message: "webhook cursor row missing after insert")
        }
        return Int64(try row.int("last_seq"))
    }

    /// Events after `after` whose type is one of `types`, oldest first.
    static func events(_ db: PGConnection, after: Int64, types: [String], limit: Int) throws -> [(sequence: Int64, type: String, payload: [UInt8])] {
        try db.query("SELECT seq, type, payload FROM events WHERE seq > $1 AND type = ANY($2::text[]) ORDER BY seq LIMIT $3",
                     [.int(after), PGBind.textArray(types), .int(limit)]).rows.map { row in
            (Int64(try row.int("seq")), try row.string("type"), try row.bytes("payload"))
        }
    }

    /// Records an acknowledged event.
    static func delivered(_ db: PGConnection, url: String, through sequence: Int64) throws {
        try db.query("""
            UPDATE webhook_cursors SET last_seq = greatest(last_seq, $2), delivered_at = now(), failures = 0, last_error = NULL
            WHERE url = $1
            """, [.text(url), .int(sequence)])
    }

    /// Records a failed attempt (for `slipway webhooks` and the runbook).
    static func failed(_ db: PGConnection, url: String, error: String) throws {
        try db.query("""
            UPDATE webhook_cursors SET failures = failures + 1, last_error = $2, last_failure_at = now() WHERE url = $1
            """, [.text(url), .text(String(error.prefix(500)))])
    }

    /// Takes (or confirms) the session lock that makes this process the one delivering `url`:
    /// every coordinator runs a deliverer, one at a time delivers. The lock ends with the
    /// session, so a reconnect must take it again; a lock already held is not taken twice.
    static func holdDeliveryLock(_ db: PGConnection, url: String) throws -> Bool {
        let held = try db.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted")
        if let row = held.first, try row.int("n") > 0 { return true }
        let taken = try db.query("SELECT pg_try_advisory_lock(hashtextextended('slipway webhook ' || $1, 0)) AS ok", [.text(url)])
        return try taken.first?.bool("ok") ?? false
    }
}
