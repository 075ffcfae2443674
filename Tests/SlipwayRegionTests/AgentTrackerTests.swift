import SlipwayProto
@testable import SlipwayRegion
import Testing

@Suite struct AgentTrackerTests {
    let digest = String(repeating: "a", count: 64), other = String(repeating: "b", count: 64)
    let start = ContinuousClock.now

    func register(_ machine: String, complete: [String] = [], statuses: [(String, String, Slipway_V1_AgentState)] = []) -> Slipway_V1_AgentRegister {
        var message = Slipway_V1_AgentRegister()
        message.machineID = machine
        message.region = "eu"
        message.peerEndpoint = "tcp://127.0.0.1:1"
        message.completeDigests = complete
        message.statuses = statuses.map { service, digest, state in
            var status = Slipway_V1_AgentStatus()
            status.machineID = machine
            status.service = service
            status.artifactDigest = digest
            status.state = state
            return status
        }
        return message
    }

    @Test("peer lists name machines holding pieces, never the asker, and forget silent machines")
    func peers() {
        var tracker = AgentTracker(timeout: .seconds(10))
        var random = SystemRandomNumberGenerator()
        tracker.register(register("m1", complete: [digest]), now: start)
        tracker.register(register("m2"), now: start)
        tracker.register(register("m3"), now: start)
        var have = Slipway_V1_PeerListRequest()
        have.digest = digest
        have.machineID = "m2"
        have.have = [0, 3]
        tracker.noteHave(have, now: start)
        let list = tracker.peers(for: digest, asking: "m3", using: &random).sorted { $0.machineID < $1.machineID }
        #expect(list.map(\.machineID) == ["m1", "m2"])
        #expect(list[0].complete && list[1].have == [0, 3] && !list[1].complete)
        #expect(tracker.peers(for: digest, asking: "m1", using: &random).map(\.machineID) == ["m2"])
        #expect(tracker.peers(for: other, asking: "m3", using: &random).isEmpty)

        tracker.register(register("m2"), now: start + .seconds(8))
        #expect(tracker.expire(now: start + .seconds(11)) == ["m1", "m3"])
        #expect(tracker.peers(for: digest, asking: "x", using: &random).map(\.machineID) == ["m2"])
    }

    @Test("the report counts machines per service, build and state, and names the failing ones")
    func report() {
        var tracker = AgentTracker(timeout: .seconds(10), failureLimit: 1)
        tracker.register(register("m1", statuses: [("web", digest, .running)]), now: start)
        tracker.register(register("m2", statuses: [("web", digest, .running), ("db", other, .running)]), now: start)
        tracker.register(register("m3", statuses: [("web", digest, .rolledBack)]), now: start)
        tracker.register(register("m4", statuses: [("web", other, .failed)]), now: start)
        let report = tracker.report(region: "eu")
        #expect(report.machines == 4)
        let counts = report.counts.map { "\($0.service) \($0.artifactDigest.prefix(1)) \($0.state) \($0.machines)" }
        #expect(counts == ["db b running 1", "web a running 2", "web a rolledBack 1", "web b failed 1"])
        #expect(report.failures.map(\.machineID) == ["m3"], "at most failureLimit failures")
    }
}
