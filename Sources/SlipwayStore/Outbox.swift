/// An event as stored in the outbox.
public struct StoredEvent: Sendable, Hashable {
    /// Gap-free, in commit order, from 1.
    public let sequence: Int64
    /// The event type name, e.g. `job_queued`.
    public let type: String
    /// The PUB topic the event is published under.
    public let topic: String
    /// The encoded `slipway.v1.Event`.
    public let payload: [UInt8]
}

/// The events outbox: events are written in the same transaction as the state
/// change they describe, then published from here (a NOTIFY on ``Outbox/channel``
/// at commit tells other processes there is more to read). Losing a PUB message never
/// loses the event; subscribers catch up by sequence number.
public enum Outbox {
    /// The NOTIFY channel that wakes the publisher after a commit.
    public static let channel = "slipway_events"

    /// Appends an event inside the caller's transaction and returns its sequence number.
    /// Call ``notifyCommitted(_:through:)`` before the transaction commits to wake
    /// other processes that follow the outbox.
    ///
    /// The counter row stays locked until the transaction ends, so concurrent
    /// writers take numbers one at a time, in commit order, and a rolled-back
    /// transaction gives its number back: the sequence has no gaps.
    public static func append(_ db: PGConnection, type: String, topic: String, payload: [UInt8]) throws -> Int64 {
        let result = try db.query("""
            WITH next AS (UPDATE event_sequence SET last_seq = last_seq + 1 RETURNING last_seq)
            INSERT INTO events (seq, type, topic, payload)
            SELECT last_seq, $1, $2, $3 FROM next
            RETURNING seq
            """, [.text(type), .text(topic), .bytes(payload)])
        guard let row = result.first else { throw PGError(.badResult, message: "outbox insert returned no row") }
        return Int64(try row.int("seq"))
    }

    /// Appends several events inside the caller's transaction, in order, with one
    /// statement that also sends the NOTIFY on ``channel`` (delivered at COMMIT):
    /// what a coordinator batch wrote, just before it commits. Taking the counter
    /// at the end of the transaction holds its lock for the shortest time.
    /// - Returns: the sequence number of the first (the rest follow one by one).
    /// With `commit`, the statement ends the caller's transaction: it and COMMIT
    /// go in one round trip (see ``PGConnection/queryAndCommit(_:_:)``).
    public static func append(_ db: PGConnection, _ events: [(type: String, topic: String, payload: [UInt8])],
                              commit: Bool = false) throws -> Int64 {
        guard !events.isEmpty else { return 0 }
        let run = commit ? db.queryAndCommit : db.query
        let result = try run("""
            WITH next AS (UPDATE event_sequence SET last_seq = last_seq + $1 RETURNING last_seq),
            stored AS (
                INSERT INTO events (seq, type, topic, payload)
                SELECT next.last_seq - $1 + e.ord, e.type, e.topic, e.payload
                FROM next, unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS e(type, topic, payload, ord)
                RETURNING seq
            ),
            woken AS (SELECT pg_notify('\(channel)', last_seq::text) FROM next)
            SELECT (SELECT last_seq - $1 + 1 FROM next) AS first, (SELECT count(*) FROM woken) AS woken, (SELECT count(*) FROM stored) AS stored
            """, [.int(events.count), PGBind.textArray(events.map(\.type)), PGBind.textArray(events.map(\.topic)), PGBind.byteaArray(events.map(\.payload))])
        guard let row = result.first else { throw PGError(.badResult, message: "outbox insert returned no row") }
        return Int64(try row.int("first"))
    }

    /// Wakes listeners on ``channel`` once the caller's transaction commits; call it
    /// once per transaction that appended events (not once per event).
    public static func notifyCommitted(_ db: PGConnection, through sequence: Int64) throws {
        try db.notify(channel, payload: String(sequence))
    }

    /// Events with sequence greater than `after`, oldest first, at most `limit`.
    public static func events(_ db: PGConnection, after: Int64, limit: Int = 1_000) throws -> [StoredEvent] {
        try db.query("SELECT seq, type, topic, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                     [.int(after), .int(limit)]).rows.map { row in
            StoredEvent(sequence: Int64(try row.int("seq")), type: try row.string("type"),
                        topic: try row.string("topic"), payload: try row.bytes("payload"))
        }
    }

    /// The newest sequence number committed (0 when there are no events).
    public static func lastSequence(_ db: PGConnection) throws -> Int64 {
        Int64(try db.query("SELECT last_seq FROM event_sequence").first?.int("last_seq") ?? 0)
    }
}
