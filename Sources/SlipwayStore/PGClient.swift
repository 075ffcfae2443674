public import Logging
public import SlipwayThreads

/// An async front for one ``PGConnection``: the connection lives on its own
/// `OwnedThread`, so blocking libpq calls never occupy Swift's cooperative pool.
///
/// Calls are serialized, like the connection itself. Open several clients for
/// parallelism. The connection is opened on first use and reopened if it was
/// closed by an error.
public actor PGClient {
    /// The thread every call runs on.
    public nonisolated let thread: OwnedThread
    private let url: String
    private let logger: Logger
    private var connection: PGConnection?

    /// The actor runs on ``thread``.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    /// Creates a client; nothing connects until the first call.
    public init(url: String, name: String = "pg", logger: Logger) {
        self.url = url
        self.logger = logger
        self.thread = OwnedThread(name: name)
    }

    /// Runs `body` with the connection, on the client's thread.
    public func withConnection<T: Sendable>(_ body: @Sendable (PGConnection) throws -> T) throws -> T {
        let connection = try self.connection ?? PGConnection(url: url, logger: logger)
        self.connection = connection
        do {
            return try body(connection)
        } catch let error as PGError where error.code == .connectionFailed {
            // The server is unreachable even after a reconnect attempt: start afresh next call.
            self.connection = nil
            throw error
        }
    }

    /// Runs `body` in a transaction, on the client's thread.
    public func transaction<T: Sendable>(_ body: @Sendable (PGConnection) throws -> T) throws -> T {
        try withConnection { try $0.transaction(body) }
    }

    /// Runs one statement.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PGBind] = []) throws -> PGResult {
        try withConnection { try $0.query(sql, parameters) }
    }

    /// Closes the connection and stops the thread. The client cannot be used afterwards.
    public nonisolated func close() async {
        await dropConnection()
        thread.shutdown()
    }

    private func dropConnection() {
        connection = nil
    }
}
