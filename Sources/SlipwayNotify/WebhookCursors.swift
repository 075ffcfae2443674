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

    /// Events after `after` whose type is one of `types`, oldest first, and how far the outbox was read:
    /// to the newest event committed, or to the last one returned when the page is full.
    static func events(_ db: PGConnection, after: Int64, types: [String], limit: Int)
        throws -> (events: [(sequence: Int64, type: String, payload: [UInt8])], through: Int64) {
        // Numbers up to the counter belong to committed events: the counter's row lock is held to commit.
        let newest = try Outbox.lastSequence(db)
        let rows = try db.query("SELECT seq, type, payload FROM events WHERE seq > $1 AND seq <= $2 AND type = ANY($3::text[]) ORDER BY seq LIMIT $4",
                                [.int(after), .int(newest), PGBind.textArray(types), .int(limit)]).rows.map { row in
            (sequence: Int64(try row.int("seq")), type: try row.string("type"), payload: try row.bytes("payload"))
        }
        return (rows, rows.count == limit ? rows.last!.sequence : max(newest, after))
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
    /// (The session serves this one webhook, so any advisory lock it holds is this one.)
    static func holdDeliveryLock(_ db: PGConnection, url: String) throws -> DeliveryLock {
        let held = try db.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted")
        if let row = held.first, try row.int("n") > 0 { return .held }
        let taken = try db.query("SELECT pg_try_advisory_lock(hashtextextended('slipway webhook ' || $1, 0)) AS ok", [.text(url)])
        return try taken.first?.bool("ok") == true ? .taken : .busy
    }

    enum DeliveryLock {
        /// This session had it already.
        case held
        /// Newly taken (at start, or after a reconnect lost it): another process may have delivered meanwhile.
        case taken
        /// Another coordinator delivers this webhook.
        case busy
    }
}
