@testable import SlipwayStore
import Testing

/// A connection attempt never waits on TCP's own give-up time (minutes) unless the URL asks for it.
@Suite("libpq connect timeout")
struct ConnectTimeoutTests {
    @Test("a URL or keyword string without connect_timeout gets the default; one that sets it keeps its own")
    func defaults() {
        #expect(PGConnection.withConnectTimeout("postgresql://app@127.0.0.1:5433/slipway")
                == "postgresql://app@127.0.0.1:5433/slipway?connect_timeout=5")
        #expect(PGConnection.withConnectTimeout("postgres://db/x?sslmode=disable") == "postgres://db/x?sslmode=disable&connect_timeout=5")
        #expect(PGConnection.withConnectTimeout("host=db dbname=x") == "host=db dbname=x connect_timeout=5")
        #expect(PGConnection.withConnectTimeout("postgresql://db/x?connect_timeout=30") == "postgresql://db/x?connect_timeout=30")
    }
}
