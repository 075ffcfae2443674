import CLibPQ
#if canImport(Glibc)
import Glibc
#endif
public import Logging

/// One libpq connection, used by one thread at a time.
///
/// libpq connections are not thread-safe, so this class is not `Sendable`:
/// keep it inside one actor pinned to an `OwnedThread` (see ``PGClient``).
/// Every call blocks the calling thread until the server answers.
///
/// When the server restarts, the next call notices the dead socket before it
/// sends anything, reconnects (re-issuing LISTENs) and runs the statement on the
/// new connection. A connection that breaks *during* a statement throws
/// `.connectionLost` instead, because whether the statement took effect is unknown.
public final class PGConnection {
    private var handle: OpaquePointer?
    private let logger: Logger
    private let noticeSink: NoticeSink
    private var listening: Set<String> = []
    /// Statements prepared on this session, by SQL text: parsed and planned once,
    /// not on every call. Cleared on reconnect (prepared statements are per session).
    private var prepared: [String: String] = [:]
    private var transactionDepth = 0
    /// Inside ``transaction(_:)`` before its first statement: BEGIN travels
    /// with that statement, in one round trip.
    private var beginPending = false
    /// ``queryAndCommit(_:_:)`` ended the current transaction.
    private var committedEarly = false

    /// How many times the connection was re-established. Session state (advisory
    /// locks, temporary tables) does not survive a reconnect; owners of such state
    /// compare this before and after.
    public private(set) var reconnectCount = 0

    /// Opens a connection from a libpq URL or keyword string,
    /// e.g. `postgresql://app@127.0.0.1:5433/slipway` (see ``defaultConnectTimeout``).
    public init(url: String, logger: Logger) throws(PGError) {
        self.logger = logger
        self.noticeSink = NoticeSink(logger: logger)
        guard let handle = PQconnectdb(Self.withConnectTimeout(url)) else {
            throw PGError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        self.handle = handle
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = Self.libpqMessage(handle)
            PQfinish(handle)
            self.handle = nil
            throw PGError(.connectionFailed, message: message)
        }
        installNoticeProcessor()
        _ = try execute("SET TIME ZONE 'UTC'")
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Checks that `url` is something libpq can parse, without connecting: a
    /// typo in the URL is a configuration error, not a server to wait for.
    public static func checkSyntax(_ url: String) throws(PGError) {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &message) else {
            let text = message.map { String(cString: $0).trimmingTrailingNewlines() } ?? "not a libpq URL or keyword string"
            if let message { PQfreemem(message) }
            throw PGError(.invalidArgument, message: text)
        }
        PQconninfoFree(options)
    }

    /// True inside a transaction that a failed statement has aborted; only
    /// `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`) is accepted until then.
    public var isTransactionFailed: Bool { handle.map { PQtransactionStatus($0) == PQTRANS_INERROR } ?? false }

    /// The server's process id for this session (changes after a reconnect).
    public var backendPID: Int32 { handle.map(PQbackendPID) ?? 0 }

    /// The socket libpq reads from, for waiting on notifications in a poll loop.
    public var socketDescriptor: Int32 { handle.map(PQsocket) ?? -1 }

    /// Runs one statement with parameters, sent separately from the SQL text.
    ///
    /// Use `$1`, `$2`, … in `sql`; cast where the type is not obvious (`$1::jsonb`).
    @discardableResult
    public func query(_ sql: String, _ parameters: [PGBind] = []) throws(PGError) -> PGResult {
        let (handle, name) = try prepareToSend(sql, parameters)
        if beginPending {
            beginPending = false
            return try pipelined(handle, [.begin, .prepared(name, sql, parameters)])[1]
        }
        let result = Self.withCParameters(parameters) { values, lengths, formats in
            PQexecPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 0)
        }
        return try consume(result, sql: sql)
    }

    /// Runs the last statement of the current ``transaction(_:)`` and COMMIT in one
    /// round trip (with BEGIN too, if it is the first); the transaction then ends
    /// without another. If the statement fails, nothing commits and the error is
    /// thrown as from ``query(_:_:)``. Outside a transaction it is ``query(_:_:)``.
    @discardableResult
    public func queryAndCommit(_ sql: String, _ parameters: [PGBind] = []) throws(PGError) -> PGResult {
        guard transactionDepth > 0 else { return try query(sql, parameters) }
        let (handle, name) = try prepareToSend(sql, parameters)
        let steps: [PipelineStep] = (beginPending ? [.begin] : []) + [.prepared(name, sql, parameters), .commit]
        beginPending = false
        let results = try pipelined(handle, steps)
        committedEarly = true
        return results[results.count - 2]
    }

    private func prepareToSend(_ sql: String, _ parameters: [PGBind]) throws(PGError) -> (OpaquePointer, String) {
        for case .text(let text) in parameters where text.utf8.contains(0) {
            throw PGError(.invalidArgument, message: "a text parameter contains a NUL byte", query: sql)
        }
        if committedEarly {
            throw PGError(.invalidArgument, message: "a statement after its transaction committed", query: sql)
        }
        let handle = try liveHandle()
        try checkTransactionIsOpen(handle, sql: sql)
        return (handle, try preparedName(for: sql, parameterCount: parameters.count, handle: handle))
    }

    private func preparedName(for sql: String, parameterCount: Int, handle: OpaquePointer) throws(PGError) -> String {
        if let name = prepared[sql] { return name }
        let name = "slipway_\(prepared.count + 1)"
        _ = try consume(PQprepare(handle, name, sql, Int32(parameterCount), nil), sql: sql)
        prepared[sql] = name
        return name
    }

    /// Runs SQL without parameters through the simple-query protocol, which allows
    /// several statements at once (migrations). Never pass user values here.
    @discardableResult
    public func execute(_ sql: String) throws(PGError) -> PGResult {
        let handle = try liveHandle()
        try checkTransactionIsOpen(handle, sql: sql)
        if beginPending {
            beginPending = false
            return try consume(PQexec(handle, "BEGIN;\n" + sql), sql: sql)
        }
        return try consume(PQexec(handle, sql), sql: sql)
    }

    /// Runs `body` inside BEGIN … COMMIT; any error rolls back and is rethrown.
    /// Nested calls join the outer transaction. BEGIN is sent with the first
    /// statement (a transaction that runs none sends nothing), and COMMIT with
    /// the last if `body` ends with ``queryAndCommit(_:_:)``.
    public func transaction<T>(_ body: (PGConnection) throws -> T) throws -> T {
        if transactionDepth > 0 {
            return try body(self)
        }
        // A dead session is replaced here, before the transaction, as BEGIN would have been.
        _ = try liveHandle()
        transactionDepth = 1
        beginPending = true
        committedEarly = false
        defer {
            transactionDepth = 0
            beginPending = false
            committedEarly = false
        }
        do {
            let value = try body(self)
            // A statement that failed inside `body` and was caught there has aborted
            // the transaction; COMMIT would then quietly roll back.
            if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
                throw PGError(.queryFailed, message: "transaction aborted by an earlier failed statement; rolled back")
            }
            if !beginPending && !committedEarly { try execute("COMMIT") }
            return value
        } catch {
            if let handle, PQstatus(handle) == CONNECTION_OK, PQtransactionStatus(handle) != PQTRANS_IDLE {
                _ = try? execute("ROLLBACK")
            }
            throw error
        }
    }

    /// Inside ``transaction(_:)`` once BEGIN went out, the session must still be in
    /// that transaction. It is not if BEGIN itself failed or the session was
    /// replaced: a statement run now would commit on its own, outside it.
    private func checkTransactionIsOpen(_ handle: OpaquePointer, sql: String) throws(PGError) {
        guard transactionDepth > 0, !beginPending, !committedEarly, PQtransactionStatus(handle) == PQTRANS_IDLE else { return }
        throw PGError(.connectionLost, message: "the transaction is gone (BEGIN failed or the session was replaced); nothing more runs in it",
                      query: sql)
    }

    /// Subscribes this session to NOTIFY on `channel`; kept across reconnects.
    public func listen(_ channel: String) throws(PGError) {
        try execute("LISTEN \(Self.quoteIdentifier(channel))")
        listening.insert(channel)
    }

    /// Sends a notification; inside a transaction it is delivered at COMMIT.
    public func notify(_ channel: String, payload: String = "") throws(PGError) {
        try query("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
    }

    /// Waits up to `timeout` for notifications on the channels this session listens to.
    /// - Returns: the notifications received, possibly none.
    public func waitForNotifications(timeout: Duration) throws(PGError) -> [PGNotification] {
        // The liveness check may read queued notifications off the socket, so
        // drain after it, not before.
        let handle = try liveHandle()
        var ready = try drainNotifications()
        if !ready.isEmpty { return ready }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let millis = Int32(clamping: seconds * 1_000 + attoseconds / 1_000_000_000_000_000)
        var rc: Int32
        repeat { rc = poll(&descriptor, 1, millis) } while rc < 0 && errno == EINTR
        if rc > 0 {
            guard PQconsumeInput(handle) == 1 else {
                throw PGError(.connectionLost, message: Self.libpqMessage(handle))
            }
            ready = try drainNotifications()
        }
        return ready
    }

    private func drainNotifications() throws(PGError) -> [PGNotification] {
        guard let handle else { return [] }
        var out: [PGNotification] = []
        while let notice = PQnotifies(handle) {
            let payload = notice.pointee.extra.map { String(cString: $0) } ?? ""
            out.append(PGNotification(channel: String(cString: notice.pointee.relname),
                                      payload: payload, senderPID: notice.pointee.be_pid))
            PQfreemem(notice)
        }
        return out
    }

    /// The handle, reconnecting first if the server side of the socket is gone.
    private func liveHandle() throws(PGError) -> OpaquePointer {
        guard let handle else { throw PGError(.connectionLost, message: "connection is closed") }
        // Reconnecting inside a transaction block would silently drop its earlier
        // statements; only an idle session is replaced.
        let broken = PQstatus(handle) != CONNECTION_OK
        if transactionDepth == 0, broken || (PQtransactionStatus(handle) == PQTRANS_IDLE && !isAlive(handle)) {
            try reconnect(handle)
        }
        return handle
    }

    /// Reads whatever is pending without blocking; a closed socket shows up here
    /// as a failed read, before a statement is sent on it.
    private func isAlive(_ handle: OpaquePointer) -> Bool {
        // A server shutting down sends a FATAL message and then closes: one read
        // takes the message, a later one sees the end of the stream. Keep reading
        // while the socket says there is more (bounded, in case it never stops).
        for _ in 0..<8 {
            guard PQstatus(handle) == CONNECTION_OK else { return false }
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return true }
            if PQconsumeInput(handle) == 0 { return false }
        }
        return PQstatus(handle) == CONNECTION_OK
    }

    func reconnect(_ handle: OpaquePointer) throws(PGError) {
        logger.warning("PostgreSQL connection lost; reconnecting", metadata: ["error": "\(Self.libpqMessage(handle))"])
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PGError(.connectionFailed, message: Self.libpqMessage(handle))
        }
        reconnectCount += 1
        prepared.removeAll()
        logger.info("PostgreSQL connection re-established", metadata: ["backend_pid": "\(PQbackendPID(handle))"])
        _ = PQexec(handle, "SET TIME ZONE 'UTC'").map { PQclear($0) }
        for channel in listening {
            _ = PQexec(handle, "LISTEN \(Self.quoteIdentifier(channel))").map { PQclear($0) }
        }
    }

    func consume(_ result: OpaquePointer?, sql: String) throws(PGError) -> PGResult {
        guard let result else {
            throw PGError(handle.map { PQstatus($0) == CONNECTION_OK } == true ? .queryFailed : .connectionLost,
                          message: handle.map(Self.libpqMessage) ?? "no connection", query: sql)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return Self.copy(result)
        default:
            let field = { (code: Int32) -> String? in PQresultErrorField(result, code).map { String(cString: $0) } }
            // A FATAL error ends the session even if libpq has not seen the socket close yet.
            let fatal = ["FATAL", "PANIC"].contains(field(slipway_pg_diag_severity()))
            let lost = fatal || (handle.map { PQstatus($0) != CONNECTION_OK } ?? true)
            let message = field(slipway_pg_diag_message_primary()) ?? String(cString: PQresultErrorMessage(result))
            throw PGError(lost ? .connectionLost : .queryFailed,
                          message: message.trimmingTrailingNewlines(),
                          sqlState: field(slipway_pg_diag_sqlstate()),
                          detail: field(slipway_pg_diag_message_detail()),
                          hint: field(slipway_pg_diag_message_hint()),
                          query: sql)
        }
    }

    private static func copy(_ result: OpaquePointer) -> PGResult {
        let columnCount = PQnfields(result), rowCount = PQntuples(result)
        let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var rows: [PGRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            let values: [String?] = (0..<columnCount).map { column in
                if PQgetisnull(result, row, column) == 1 { return nil }
                let length = Int(PQgetlength(result, row, column))
                let bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, row, column), count: length)
                return String(decoding: bytes, as: UTF8.self)
            }
            rows.append(PGRow(values: values, columnIndex: index))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PGResult(columns: columns, rows: rows, affectedRows: affected)
    }

    static func withCParameters<R>(
        _ parameters: [PGBind],
        _ body: ([UnsafePointer<CChar>?], [Int32], [Int32]) -> R
    ) -> R {
        // Every value goes into one buffer (text NUL-terminated), so one set of
        // pointers into it stays valid for the call.
        var buffer: [CChar] = []
        var offsets: [Int?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        offsets.reserveCapacity(parameters.count)
        for parameter in parameters {
            switch parameter {
            case .null:
                offsets.append(nil); lengths.append(0); formats.append(0)
            case .text(let text):
                offsets.append(buffer.count)
                buffer.append(contentsOf: text.utf8.lazy.map { CChar(bitPattern: $0) })
                buffer.append(0)
                lengths.append(0); formats.append(0)
            case .bytes(let bytes):
                offsets.append(buffer.count)
                buffer.append(contentsOf: bytes.lazy.map { CChar(bitPattern: $0) })
                lengths.append(Int32(bytes.count)); formats.append(1)
            }
        }
        if buffer.isEmpty { buffer.append(0) }  // a base address for empty byte strings
        return buffer.withUnsafeBufferPointer { storage in
            let pointers = offsets.map { offset in offset.map { UnsafePointer(storage.baseAddress! + $0) } }
            return body(pointers, lengths, formats)
        }
    }

    private func installNoticeProcessor() {
        guard let handle else { return }
        PQsetNoticeProcessor(handle, { context, message in
            guard let context, let message else { return }
            let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
            sink.logger.notice("PostgreSQL notice", metadata: ["message": "\(String(cString: message).trimmingTrailingNewlines())"])
        }, Unmanaged.passUnretained(noticeSink).toOpaque())
    }

    static func libpqMessage(_ handle: OpaquePointer) -> String {
        String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines()
    }

    /// Quotes an identifier for the few statements that cannot take parameters (LISTEN).
    static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A NOTIFY received on a channel this session listens to.
public struct PGNotification: Sendable, Hashable {
    /// The channel name.
    public let channel: String
    /// The payload string (may be empty).
    public let payload: String
    /// The server process that sent it.
    public let senderPID: Int32
}

/// Keeps the logger alive for libpq's notice callback; owned by its connection.
private final class NoticeSink {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while text.last == "\n" || text.last == " " { text = text.dropLast() }
        return String(text)
    }

    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
