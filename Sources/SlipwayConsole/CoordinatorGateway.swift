import SlipwayProto
public import SlipwayProducer
public import SlipwayWire
import Synchronization

/// The console's way to the coordinator: a few ``SlipwayClient``s used in turn,
/// so one slow call (a coordinator briefly away) does not queue every page behind it.
///
/// Every call is a coordinator request like any CLI command's, under the
/// console's own key; failures become ``ConsoleError``s.
public final class CoordinatorGateway: Sendable {
    private let readers: [SlipwayClient]
    private let actor: SlipwayClient
    private let next = Atomic<Int>(0)

    /// `clients` clients for reads, each with its own socket and thread, and one for actions, for the intake at `endpoint`.
    public init(endpoint: String, security: ClientSecurity, clients count: Int = 4) throws {
        readers = try (0..<max(1, count)).map { _ in
            // Two tries of two seconds: a page says "coordinator unavailable" within about five seconds.
            try SlipwayClient(endpoint: endpoint, security: security, requestTimeout: .seconds(2), retries: 2, sender: "console")
        }
        // An action is sent once: a resent rollback or promote would be applied twice. Its timeout is longer instead.
        actor = try SlipwayClient(endpoint: endpoint, security: security, requestTimeout: .seconds(8), retries: 1, sender: "console")
    }

    /// Runs a read on the next client; a coordinator failure becomes a ``ConsoleError``.
    public func call<T: Sendable>(_ call: @Sendable (SlipwayClient) async throws -> T) async throws(ConsoleError) -> T {
        try await run(readers[next.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count], call)
    }

    /// Runs an action, sent once (no answer: 503, and it may or may not have happened; the page shows the state).
    public func act<T: Sendable>(_ call: @Sendable (SlipwayClient) async throws -> T) async throws(ConsoleError) -> T {
        try await run(actor, call)
    }

    private func run<T: Sendable>(_ client: SlipwayClient, _ call: @Sendable (SlipwayClient) async throws -> T) async throws(ConsoleError) -> T {
        do {
            return try await call(client)
        } catch let error as ProducerError {
            throw ConsoleError(error)
        } catch let error as ConsoleError {
            throw error
        } catch {
            throw ConsoleError(.badGateway, "coordinator_error", "\(error)")
        }
    }

    /// Closes every client.
    public func close() async {
        for client in readers + [actor] { await client.close() }
    }
}
