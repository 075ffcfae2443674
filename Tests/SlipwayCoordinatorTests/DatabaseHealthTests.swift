import Logging
@testable import SlipwayCoordinator
import SlipwayStore
import Testing

@Suite struct DatabaseHealthTests {
    let logger = Logger(label: "test")
    let start = ContinuousClock.now
    let lost = PGError(.connectionLost, message: "server closed the connection")

    @Test("an outage lasts from its first failure to the commit that ends it; commits in between outages end none")
    func outage() {
        var health = DatabaseHealth()
        #expect(health.isHealthy && health.succeeded(logger: logger, now: start) == nil)
        health.failed(lost, logger: logger, now: start + .seconds(1))
        health.failed(lost, logger: logger, now: start + .seconds(5))
        #expect(!health.isHealthy)
        #expect(health.succeeded(logger: logger, now: start + .seconds(31)) == .seconds(30))
        #expect(health.isHealthy && health.isUsable(now: start + .seconds(31)))
        #expect(health.succeeded(logger: logger, now: start + .seconds(32)) == nil)
    }
}
