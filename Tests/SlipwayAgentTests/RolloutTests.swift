import SlipwayAgent
import SlipwayProto
import Testing

@Suite struct RolloutTests {
    let v1 = String(repeating: "1", count: 64), v2 = String(repeating: "2", count: 64), v3 = String(repeating: "3", count: 64)

    @Test("a new target is downloaded, activated, and running once healthy; the old build becomes previous")
    func deploy() {
        var rollout = Rollout(service: "web", active: v1)
        #expect(rollout.resume() == [.activate(v1)])
        #expect(rollout.healthy(v1).isEmpty && rollout.state == .running)
        #expect(rollout.targetChanged(digest: v2, version: 2) == [.download(v2)])
        #expect(rollout.state == .downloading && rollout.statusDigest == v2)
        #expect(rollout.downloaded(v2) == [.activate(v2)])
        #expect(rollout.active == v2 && rollout.previous == v1 && rollout.state == .installed)
        _ = rollout.healthy(v2)
        #expect(rollout.phase == .running(v2) && rollout.state == .running && rollout.statusDigest == v2)
    }

    @Test("older or repeated target versions are ignored")
    func versions() {
        var rollout = Rollout(service: "web")
        #expect(rollout.targetChanged(digest: v2, version: 5) == [.download(v2)])
        #expect(rollout.targetChanged(digest: v1, version: 4).isEmpty)
        #expect(rollout.targetChanged(digest: v2, version: 5).isEmpty)
        #expect(rollout.target?.digest == v2)
    }

    @Test("within one version, a rollout's wave may move the machine between its two builds")
    func waveMoves() {
        var rollout = Rollout(service: "web", active: v1)
        _ = rollout.resume()
        _ = rollout.healthy(v1)
        #expect(rollout.targetChanged(digest: v1, version: 3).isEmpty, "outside the wave: stays on the stable build")
        #expect(rollout.targetChanged(digest: v2, version: 3) == [.download(v2)], "the region's cutoff widened to this machine")
        #expect(rollout.targetChanged(digest: v2, version: 3).isEmpty, "the same build again is nothing new")
        #expect(rollout.targetChanged(digest: v1, version: 2).isEmpty, "an older version never moves it")

        // v2 fails here and the machine rolls back; the wave moves it out and in again: v2 is not retried.
        _ = rollout.downloaded(v2)
        _ = rollout.unhealthy(v2, reason: "exit 1")
        _ = rollout.healthy(v1)
        #expect(rollout.state == .rolledBack)
        _ = rollout.targetChanged(digest: v1, version: 3)
        #expect(rollout.targetChanged(digest: v2, version: 3).isEmpty, "a build that failed here is not tried again within the version")
        #expect(rollout.targetChanged(digest: v2, version: 4).isEmpty, "nor when a later version still names it")
        _ = rollout.targetChanged(digest: v1, version: 5)
        #expect(rollout.targetChanged(digest: v2, version: 6) == [.download(v2)], "after the target named another build, it is a new decision")
    }

    @Test("a new build failing its health check rolls the machine back and is not retried for that target version")
    func healthFailureRollsBack() {
        var rollout = Rollout(service: "web", active: v1)
        _ = rollout.resume()
        _ = rollout.healthy(v1)
        _ = rollout.targetChanged(digest: v2, version: 2)
        _ = rollout.downloaded(v2)
        #expect(rollout.unhealthy(v2, reason: "exited with status 3") == [.activate(v1)])
        #expect(rollout.state == .failed && rollout.statusDigest == v2)
        _ = rollout.healthy(v1)
        #expect(rollout.state == .rolledBack && rollout.statusDigest == v1 && rollout.active == v1)
        #expect(rollout.reason.contains("exited with status 3") && rollout.reason.contains(String(v2.prefix(12))))
        #expect(rollout.failedDigest == v2, "the region counts the machine as failed on v2")
        #expect(rollout.retry().isEmpty, "the refused build is not tried again")
        // A version bump that names the same build (a global change behind an override) is not a new decision.
        #expect(rollout.targetChanged(digest: v2, version: 7).isEmpty)
        #expect(rollout.state == .rolledBack)
        // The operator rolls back to what the machine already runs: it is simply running.
        #expect(rollout.targetChanged(digest: v1, version: 8).isEmpty)
        #expect(rollout.state == .running && rollout.failedDigest == "")
        // Deployed again after the target moved away: a new decision.
        #expect(rollout.targetChanged(digest: v2, version: 9) == [.download(v2)])
    }

    @Test("without a previous build, a failing build is stopped and reported failed")
    func failureWithoutPrevious() {
        var rollout = Rollout(service: "web")
        _ = rollout.targetChanged(digest: v1, version: 1)
        _ = rollout.downloaded(v1)
        #expect(rollout.unhealthy(v1, reason: "health check did not pass") == [.stop])
        #expect(rollout.state == .failed && rollout.phase == .idle)
        #expect(rollout.active == nil, "a build that never passed is not left as current, nor becomes a rollback target")
    }

    @Test("a crash after the health check restarts the same build, and never rolls back")
    func crashRestarts() {
        var rollout = Rollout(service: "web", active: v1)
        _ = rollout.resume()
        _ = rollout.healthy(v1)
        _ = rollout.targetChanged(digest: v2, version: 2)
        _ = rollout.downloaded(v2)
        _ = rollout.healthy(v2)
        #expect(rollout.exited(v2, status: 1).isEmpty && rollout.state == .failed)
        #expect(rollout.retry() == [.activate(v2)])
        #expect(rollout.unhealthy(v2, reason: "exited").isEmpty, "a restart that fails waits and retries; no rollback")
        #expect(rollout.phase == .crashed(v2) && rollout.active == v2)
        #expect(rollout.retry() == [.activate(v2)])
        _ = rollout.healthy(v2)
        #expect(rollout.state == .running)
    }

    @Test("a target change during a download abandons it; results for other builds are ignored")
    func targetMovesOn() {
        var rollout = Rollout(service: "web")
        _ = rollout.targetChanged(digest: v1, version: 1)
        #expect(rollout.targetChanged(digest: v2, version: 2) == [.download(v2)])
        #expect(rollout.downloaded(v1).isEmpty)
        #expect(rollout.healthy(v3).isEmpty && rollout.unhealthy(v3, reason: "x").isEmpty)
        #expect(rollout.failed(v2, reason: "disk full").isEmpty && rollout.state == .downloadFailed, "not the build's fault")
        #expect(rollout.retry() == [.download(v2)])
    }

    @Test("the running build crashing during a download is restarted, and the download goes on")
    func crashWhileDownloading() {
        var rollout = Rollout(service: "web", active: v1)
        _ = rollout.resume()
        _ = rollout.healthy(v1)
        #expect(rollout.targetChanged(digest: v2, version: 2) == [.download(v2)])
        #expect(rollout.exited(v1, status: 9).isEmpty)
        #expect(rollout.retry() == [.restart(v1)])
        #expect(rollout.phase == .downloading(v2))
        #expect(rollout.retry().isEmpty, "one restart per crash")
    }

    @Test("an agent stopped during a health check checks the build again on restart, and rolls back if it fails")
    func unconfirmedResume() {
        var rollout = Rollout(service: "web", active: v2, previous: v1)
        #expect(rollout.resume(confirmed: false) == [.activate(v2)])
        #expect(rollout.unhealthy(v2, reason: "exited with status 1") == [.activate(v1)])
        _ = rollout.healthy(v1)
        #expect(rollout.state == .rolledBack && rollout.active == v1)
    }
}
