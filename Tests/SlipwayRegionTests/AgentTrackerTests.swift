import Foundation
import SlipwayAuth
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

    @Test("a stall of the tracker itself is not counted against its machines; what it heard on waking is not pushed past it")
    func stall() {
        var tracker = AgentTracker(timeout: .seconds(10))
        tracker.register(register("m1"), now: start)
        tracker.register(register("m2"), now: start + .seconds(23))  // heard as the tracker woke
        tracker.stalled(for: .seconds(20), now: start + .seconds(24))
        #expect(tracker.expire(now: start + .seconds(25)).silenced.isEmpty, "m1 was last heard 5 s of listening ago")
        #expect(tracker.expire(now: start + .seconds(31)).silenced == ["m1"])
        #expect(tracker.expire(now: start + .seconds(35)).silenced == ["m2"], "m2, heard as the tracker woke, is silent from the wake on, not from 20 s past it")
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
        #expect(tracker.expire(now: start + .seconds(11)).silenced == ["m1", "m3"])
        #expect(tracker.peers(for: digest, asking: "x", using: &random).map(\.machineID) == ["m2"])
    }

    @Test("a peer list carries the key a machine registered its CURVE piece server with, and none for one without")
    func peerKeys() {
        var tracker = AgentTracker(timeout: .seconds(10))
        var random = SystemRandomNumberGenerator()
        let key = [UInt8](repeating: 7, count: 32)
        tracker.register(register("m1", complete: [digest]), curveKey: key, now: start)
        tracker.register(register("m2", complete: [digest]), now: start)
        tracker.register(register("m3"), curveKey: [UInt8](repeating: 9, count: 32), now: start)
        let list = tracker.peers(for: digest, asking: "m3", using: &random).sorted { $0.machineID < $1.machineID }
        #expect(list.map(\.machineID) == ["m1", "m2"])
        #expect([UInt8](list[0].curveKey) == key && list[1].curveKey.isEmpty)
        // An asker that registered without a CURVE server (an older agent) is named only peers it can reach.
        tracker.register(register("m3"), now: start)
        #expect(tracker.peers(for: digest, asking: "m3", using: &random).map(\.machineID) == ["m2"])
        // A machine that registers again without a CURVE server no longer has a key handed out.
        tracker.register(register("m1", complete: [digest]), now: start + .seconds(1))
        #expect(tracker.peers(for: digest, asking: "m3", using: &random).count == 2)
        #expect(tracker.peers(for: digest, asking: "m3", using: &random).allSatisfy { $0.curveKey.isEmpty })
    }

    @Test("an agent's refusals are passed on once per number, at most 16 a registration, and its uncounted ones by how many grew")
    func refusalsPassedOnce() {
        var tracker = AgentTracker(timeout: .seconds(10))
        func registration(_ numbers: ClosedRange<Int>, epoch: UInt64 = 7, notListed: UInt64 = 0) -> Slipway_V1_AgentRegister {
            var message = register("m1")
            message.refusals = numbers.map { number in
                var entry = Slipway_V1_AuditEntry()
                entry.detail = "\(number)"
                return entry
            }
            (message.refusalsThrough, message.refusalsEpoch, message.refusalsNotListed) = (UInt64(numbers.upperBound), epoch, notListed)
            return message
        }
        func passed(_ message: Slipway_V1_AgentRegister) -> ([String], UInt64) {
            tracker.register(message, now: start)
            let (fresh, unlisted) = tracker.newRefusals(message, now: start)
            return (fresh.map(\.detail), unlisted)
        }
        #expect(passed(registration(1...3)) == (["1", "2", "3"], 0))
        #expect(passed(registration(1...3)) == ([], 0), "a resent registration passes nothing again")
        #expect(passed(registration(2...5)) == (["4", "5"], 0))
        let (many, over) = passed(registration(6...25, notListed: 4))
        #expect(many.count == 16 && many.first == "6" && over == 4 + 4, "16 passed on; 4 more carried and 4 the agent only counted")
        #expect(passed(registration(26...26, notListed: 4)) == (["26"], 0), "the agent's count did not grow")
        #expect(passed(registration(1...2, epoch: 8)) == (["1", "2"], 0), "a restarted agent numbers afresh")
        var unknown = registration(1...1)
        unknown.machineID = "m9"
        #expect(tracker.newRefusals(unknown, now: start).fresh.isEmpty, "only registered machines' refusals")
        // A hostile agent's counts saturate instead of trapping, and one machine passes on at most 100 a minute.
        #expect(passed(registration(27...43, epoch: 9, notListed: .max)).1 == .max)
        var passedThisMinute = 3 + 2 + 16 + 1 + 2 + 16  // all of the above, in the minute that began at `start`
        for round in 0..<8 {
            let numbers = (100 + round * 16)...(115 + round * 16)
            tracker.register(registration(numbers, epoch: 9), now: start)
            passedThisMinute += tracker.newRefusals(registration(numbers, epoch: 9), now: start + .seconds(30)).fresh.count
        }
        #expect(passedThisMinute == AgentTracker.refusalsPerMachinePerMinute)
        tracker.register(registration(300...301, epoch: 9), now: start)
        #expect(tracker.newRefusals(registration(300...301, epoch: 9), now: start + .seconds(61)).fresh.count == 2, "a new minute")
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

    func rolloutTarget(perMille: UInt32 = 0, machines: UInt32 = 0, region: String = "eu") -> Slipway_V1_TargetChange {
        var target = Slipway_V1_TargetChange()
        target.service = "web"
        target.artifactDigest = digest
        target.stableDigest = other
        target.version = 4
        target.rolloutID = 9
        var share = Slipway_V1_WaveShare()
        share.region = region
        share.machines = machines
        share.perMille = perMille
        target.shares = [share]
        return target
    }

    @Test("a wave takes the machines with the lowest scores; wider waves keep them; silent machines keep their place and count as missing")
    func waves() {
        var tracker = AgentTracker(timeout: .seconds(10), forgetAfter: .seconds(60))
        let names = (1...10).map { "m\($0)" }
        for name in names { tracker.register(register(name, statuses: [("web", other, .running)]).with(services: ["web"]), now: start) }
        tracker.register(register("db1").with(services: ["db"]), now: start)

        let one = tracker.wave(rolloutTarget(machines: 1), region: "eu")
        let chosen = names.filter { WaveMembership.score(rollout: 9, machine: $0) <= one.cutoff }
        let lowest = names.min { WaveMembership.score(rollout: 9, machine: $0) < WaveMembership.score(rollout: 9, machine: $1) }!
        #expect(chosen == [lowest], "only machines running the service count, and the lowest score wins")
        #expect(one.progress.selected == 1 && one.progress.machines == 10 && one.progress.healthy == 0 && one.progress.targetVersion == 4)

        let third = tracker.wave(rolloutTarget(perMille: 300), region: "eu")
        let thirdChosen = names.filter { WaveMembership.score(rollout: 9, machine: $0) <= third.cutoff }
        #expect(thirdChosen.count == 3 && thirdChosen.contains(lowest), "30% of 10; a wider wave keeps the narrower one's machines")
        #expect(tracker.wave(rolloutTarget(perMille: 1_000), region: "eu").cutoff == .max, "everyone, and machines that join later")
        #expect(tracker.wave(rolloutTarget(machines: 3, region: "us"), region: "eu").cutoff == 0, "no share for this region: nobody")
        #expect(tracker.wave(rolloutTarget(perMille: 1), region: "eu").progress.selected == 1, "a share above zero covers at least one machine")

        // The chosen machines report: one healthy on the new build, one rolled back from it, one silent.
        let (healthy, rolledBack, silent) = (thirdChosen[0], thirdChosen[1], thirdChosen[2])
        tracker.register(register(healthy, statuses: [("web", digest, .running)]).with(services: ["web"]), now: start + .seconds(8))
        var back = register(rolledBack, statuses: [("web", other, .rolledBack)]).with(services: ["web"])
        back.statuses[0].failedDigest = digest
        tracker.register(back, now: start + .seconds(8))
        for name in names where name != silent && name != healthy && name != rolledBack {
            tracker.register(register(name, statuses: [("web", other, .running)]).with(services: ["web"]), now: start + .seconds(8))
        }
        tracker.register(register("db1").with(services: ["db"]), now: start + .seconds(8))
        #expect(tracker.expire(now: start + .seconds(11)).silenced.contains(silent))
        let judged = tracker.wave(rolloutTarget(perMille: 300), region: "eu")
        #expect(judged.cutoff == third.cutoff, "a silent machine keeps its place in the wave")
        #expect(judged.progress.selected == 3 && judged.progress.healthy == 1 && judged.progress.failed == 1 && judged.progress.missing == 1)
        let report = tracker.report(region: "eu")
        #expect(report.machines == 10 && report.missing.map(\.machineID) == [silent])
        var random = SystemRandomNumberGenerator()
        var ask = Slipway_V1_PeerListRequest()
        ask.digest = digest
        ask.machineID = silent
        tracker.noteHave(ask, now: start + .seconds(12))
        #expect(tracker.peers(for: digest, asking: "x", using: &random).allSatisfy { $0.machineID != silent }, "never a peer while silent")
        #expect(tracker.expire(now: start + .seconds(65)).forgotten == [silent])
    }
}

extension Slipway_V1_AgentRegister {
    func with(services: [String]) -> Slipway_V1_AgentRegister {
        var copy = self
        copy.services = services
        return copy
    }
}

@Suite struct AgentTrackerSamplingTests {
    let digest = String(repeating: "c", count: 64)
    let start = ContinuousClock.now

    func machine(_ id: String, tracker: inout AgentTracker, complete: Bool) {
        var register = Slipway_V1_AgentRegister()
        register.machineID = id
        register.region = "eu"
        register.peerEndpoint = "tcp://127.0.0.1:1"
        register.completeDigests = complete ? [digest] : []
        tracker.register(register, now: start)
        if !complete {
            var have = Slipway_V1_PeerListRequest()
            have.digest = digest
            have.machineID = id
            have.have = [1]
            tracker.noteHave(have, now: start)
        }
    }

    @Test("a peer list of a large swarm is a random sample of live holders, never the asker, and follows who holds what")
    func sample() {
        var tracker = AgentTracker(timeout: .seconds(10))
        var random = SystemRandomNumberGenerator()
        for index in 0..<1_000 { machine("m\(index)", tracker: &tracker, complete: index % 2 == 0) }
        let list = tracker.peers(for: digest, asking: "m0", using: &random)
        #expect(list.count == 20 && Set(list.map(\.machineID)).count == 20 && !list.contains { $0.machineID == "m0" })
        #expect(list.allSatisfy { $0.complete == (Int($0.machineID.dropFirst())! % 2 == 0) && ($0.complete || $0.have == [1]) })
        let seen = Set((0..<20).flatMap { _ in tracker.peers(for: digest, asking: "m0", using: &random).map(\.machineID) })
        #expect(seen.count > 200, "lists differ from request to request")

        // Only three stay live: random probes find almost nothing; the full pass finds exactly them.
        var register = Slipway_V1_AgentRegister()
        register.region = "eu"
        register.peerEndpoint = "tcp://127.0.0.1:1"
        register.completeDigests = [digest]
        for id in ["m1", "m2", "m3"] {
            register.machineID = id
            tracker.register(register, now: start + .seconds(8))
        }
        #expect(tracker.expire(now: start + .seconds(11)).silenced.count == 997)
        #expect(Set(tracker.peers(for: digest, asking: "x", using: &random).map(\.machineID)) == ["m1", "m2", "m3"])
        // Forgotten machines leave the index; a machine that drops the artifact leaves its holders.
        var forgetting = AgentTracker(timeout: .seconds(10), forgetAfter: .seconds(60))
        machine("gone", tracker: &forgetting, complete: true)
        machine("dropped", tracker: &forgetting, complete: true)
        register.machineID = "dropped"
        register.completeDigests = []
        forgetting.register(register, now: start + .seconds(50))
        _ = forgetting.expire(now: start + .seconds(61))
        #expect(forgetting.peers(for: digest, asking: "x", using: &random).isEmpty)
    }
}
