import Logging
@testable import SlipwayCoordinator
import SlipwayCore
import SlipwayStore
import SlipwayTestSupport
import Testing

/// The rollout judge against PostgreSQL, without a coordinator process: the
/// window a frozen leader falls into, made to happen on purpose.
@Suite("Judging a rollout's wave", .enabled(if: TestDatabase.isConfigured))
struct RolloutJudgingTests {
    @Test("a leader that has not read its intake since before the judging time judges nothing; once it has, the same tick pauses the wave")
    func staleLeaderJudgesNothing() async throws {
        let url = try await TestDatabase.create()
        defer { Task { await TestDatabase.drop(url) } }
        let db = try PGConnection(url: url, logger: TestDatabase.logger)
        var queries = CoordinatorQueries(defaultMaxAttempts: 3, defaultTimeoutSeconds: 60, retryBackoff: .seconds(1))
        queries.regions = ["eu"]
        let digest = String(repeating: "ab", count: 32)
        _ = try db.query("""
            INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, origin_region, deployable_at)
            VALUES ($1, 'api', 1, 1, '\\x00', 'eu', now())
            """, [.text(digest)])
        _ = try db.query("INSERT INTO replicas (artifact_digest, region, status, pieces_done) VALUES ($1, 'eu', 'complete', 1)", [.text(digest)])
        let rollouts = Rollouts(queries: queries, plans: RolloutPlans(), logger: Logger(label: "test"))
        var batch = Batch(db: db, registry: WorkerRegistry(heartbeatInterval: .seconds(1)), sender: "coordinator")
        _ = try rollouts.deploy(try ServiceName("api"), try Digest(digest), plan: "all", setBy: "alice", actor: nil, requestID: "r1", in: &batch)
        let started = try #require(try queries.activeRollout(db, service: "api"))
        #expect(started.machine.state == .progressing)

        // Region eu has never reported: judged, the wave would pause ("the gate cannot see enough").
        var asked = 0
        try rollouts.tick(staleAfter: .seconds(45), readRecently: { asked += 1; return false }, in: &batch)
        #expect(asked == 1)
        #expect(try queries.activeRollout(db, service: "api")?.machine == started.machine, "nothing judged on reports the leader may not have read")

        try rollouts.tick(staleAfter: .seconds(45), readRecently: { true }, in: &batch)
        let judged = try #require(try queries.activeRollout(db, service: "api"))
        #expect(judged.machine.state == .paused)
        #expect(judged.machine.reason.contains("the gate cannot see enough: region eu has never reported"))
    }
}
