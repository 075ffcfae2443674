/// A failed PostgreSQL operation, shaped after postgres-nio's `PSQLError`:
/// a code to branch on, the server's SQLSTATE, a safe ``description`` and a
/// detailed ``debugDescription`` for logs.
public struct PGError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is.
    public enum Code: String, Sendable, Hashable {
        /// The connection could not be opened (bad URL, server down, auth).
        case connectionFailed = "connection_failed"
        /// The connection broke during the call; whether a write took effect is unknown.
        case connectionLost = "connection_lost"
        /// The server rejected the statement; see ``PGError/sqlState``.
        case queryFailed = "query_failed"
        /// A result had an unexpected shape or a value could not be decoded.
        case badResult = "bad_result"
        /// A parameter cannot be sent (a NUL byte in text); nothing was sent.
        case invalidArgument = "invalid_argument"
        /// A migration failed and was rolled back.
        case migrationFailed = "migration_failed"
    }

    /// What kind of failure this is.
    public let code: Code
    /// Five-character SQLSTATE from the server, e.g. `23505` (unique violation).
    public let sqlState: String?
    /// The primary message: the server's, or libpq's for connection problems.
    public let message: String
    /// The server's DETAIL line (may contain row values; logs only).
    public let detail: String?
    /// The server's HINT line.
    public let hint: String?
    /// The statement that failed (logs only).
    public let query: String?

    /// Creates an error.
    public init(_ code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil, query: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.query = query
    }

    /// The message on one line (libpq's connection errors span several).
    public var oneLine: String {
        message.split(separator: "\n").map { $0.drop { $0 == " " || $0 == "\t" } }.joined(separator: " ")
    }

    /// The connection failed or broke: the server may be down, and a write's outcome may be unknown.
    public var isConnectionTrouble: Bool { code == .connectionFailed || code == .connectionLost }

    /// True for SQLSTATE 23505.
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// True for SQLSTATE 40001 and 40P01: the transaction may simply be retried.
    public var isRetryableConflict: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// `PostgreSQL query_failed (23505): duplicate key value violates unique constraint "…"`.
    public var description: String {
        "PostgreSQL \(code.rawValue)\(sqlState.map { " (\($0))" } ?? ""): \(message)"
    }

    /// Everything known, including detail, hint and the statement.
    public var debugDescription: String {
        var parts = [description]
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let query { parts.append("query: \(query)") }
        return parts.joined(separator: "; ")
    }
}
