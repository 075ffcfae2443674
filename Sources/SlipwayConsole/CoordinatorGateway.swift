public import SlipwayProto
public import SlipwayProducer
public import SlipwayWire
import Synchronization

/// The console's way to the coordinator: a few ``SlipwayClient``s used in turn,
/// so one slow call (a coordinator briefly away) does not queue every page behind it.
///
/// Every call is a coordinator request like any CLI command's, under the
/// console's own key; failures become ``ConsoleError``s.
public final class CoordinatorGateway: Sendable {
    private let clients: [SlipwayClient]
    private let next = Atomic<Int>(0)

    /// `clients` clients, each with its own socket and thread, for the intake at `endpoint`.
    public init(endpoint: String, security: ClientSecurity, clients count: Int = 4) throws {
        clients = try (0..<max(1, count)).map { _ in
            // Two tries of two seconds: a page says "coordinator unavailable" within about five seconds.
            try SlipwayClient(endpoint: endpoint, security: security, requestTimeout: .seconds(2), retries: 2, sender: "console")
        }
    }

    /// Runs `call` on the next client; a coordinator failure becomes a ``ConsoleError``.
    public func call<T: Sendable>(_ call: @Sendable (SlipwayClient) async throws -> T) async throws(ConsoleError) -> T {
        let client = clients[next.wrappingAdd(1, ordering: .relaxed).oldValue % clients.count]
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
        for client in clients { await client.close() }
    }
}
