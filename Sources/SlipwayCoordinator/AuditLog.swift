import SlipwayAuth
import SlipwayProto
import SlipwayStore

/// One row of the audit log: a privileged action (cancel, deploy, rollback)
/// or a refusal, queued in the turn's ``Batch`` and written in its transaction.
struct AuditRecord: Equatable {
    enum Outcome: String {
        case ok, refused, failed
    }

    /// `role/name`, or empty when nobody is authenticated (`--insecure`).
    let identity: String
    let action: String
    let object: String
    let outcome: Outcome
    let detail: String
    /// Whose refusals these count against in the ``AuditBudget``: the identity, or the region that reported it.
    let source: String
    /// A row that counts refusals not written one by one: how many.
    let counts: Int?

    init(_ identity: Identity?, action: String, object: String, outcome: Outcome, detail: String = "") {
        self.init(identityText: identity?.userID ?? "", action: action, object: object, outcome: outcome, detail: detail)
    }

    /// A record for an identity another daemon authenticated (a region's refusals), as text.
    init(identityText: String, action: String, object: String, outcome: Outcome, detail: String = "", source: String? = nil,
         counts: Int? = nil) {
        self.identity = String(identityText.prefix(200))
        self.source = source.map { String($0.prefix(200)) } ?? self.identity
        self.counts = counts
        self.action = String(action.prefix(64))
        self.object = String(object.prefix(200))
        self.outcome = outcome
        self.detail = String(detail.prefix(500))
    }
}

/// Refusals waiting for the next transaction: at most ``capacity`` are kept,
/// the rest only counted, so a flood of refused requests costs bounded memory
/// and one summary row.
struct PendingAudit {
    static let capacity = 1_000
    private(set) var records: [AuditRecord] = []
    private(set) var dropped = 0

    mutating func append(_ record: AuditRecord) {
        if records.count < Self.capacity { records.append(record) } else { dropped += 1 }
    }

    /// Everything waiting, with a summary row for what was only counted; empties the queue.
    mutating func take() -> [AuditRecord] {
        var taken = records
        if dropped > 0 {
            taken.append(AuditRecord(identityText: "", action: "refusals", object: "", outcome: .refused,
                                     detail: "\(dropped) more refusals were not recorded one by one (more than \(Self.capacity) in a turn)",
                                     counts: dropped))
        }
        records = []
        dropped = 0
        return taken
    }

    var isEmpty: Bool { records.isEmpty && dropped == 0 }
}

extension CoordinatorQueries {
    /// Writes `records` in one statement.
    func writeAudit(_ db: PGConnection, _ records: [AuditRecord]) throws {
        guard !records.isEmpty else { return }
        try db.query("""
            INSERT INTO audit (identity, action, object, outcome, detail)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
            """, [PGBind.textArray(records.map(\.identity)), PGBind.textArray(records.map(\.action)),
                  PGBind.textArray(records.map(\.object)), PGBind.textArray(records.map(\.outcome.rawValue)),
                  PGBind.textArray(records.map(\.detail))])
    }

    /// Deletes up to `limit` of the oldest entries older than `retention`. - Returns: how many.
    func expireAudit(_ db: PGConnection, olderThan retention: Duration, limit: Int) throws -> Int {
        try db.query("""
            DELETE FROM audit WHERE id IN (
                SELECT id FROM audit WHERE at < now() - make_interval(secs => $1) ORDER BY at LIMIT $2)
            """, [.int(Int(retention.components.seconds)), .int(limit)]).affectedRows
    }

    /// The newest `limit` entries at or after `since` (microseconds since the epoch; 0: any).
    func audit(_ db: PGConnection, since: Int64, limit: Int) throws -> Slipway_V1_AuditList {
        var list = Slipway_V1_AuditList()
        list.entries = try db.query("""
            SELECT (extract(epoch FROM at) * 1000000)::bigint AS at_us, identity, action, object, outcome, detail FROM audit
            WHERE at >= to_timestamp($1::float8 / 1000000) ORDER BY id DESC LIMIT $2
            """, [.int(since), .int(limit)]).rows.map { row in
            var entry = Slipway_V1_AuditEntry()
            entry.atUnixMicros = Int64(try row.int("at_us"))
            entry.identity = try row.string("identity")
            entry.action = try row.string("action")
            entry.object = try row.string("object")
            entry.outcome = try row.string("outcome")
            entry.detail = try row.string("detail")
            return entry
        }
        return list
    }
}
