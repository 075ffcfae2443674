import SlipwayProto
@testable import SlipwayCoordinator
import Testing

/// The rollout state machine without sockets or a database: every state, every
/// transition, the gate's verdicts, deadlines, and operator commands in every state.
@Suite struct RolloutMachineTests {
    static let second: Int64 = 1_000_000
    let stale = 45 * second
    let plan = RolloutPlan.canary(regions: ["a", "b"], bake: 10)

    /// A report from `region` received at `at`, about rollout `id`'s wave at `version`.
    func view(_ region: String, at: Int64, id: UInt64 = 7, version: UInt64, selected: UInt32, healthy: UInt32,
              failed: UInt32 = 0, missing: UInt32 = 0) -> RegionView {
        var progress = Slipway_V1_WaveProgress()
        progress.service = "api"
        progress.rolloutID = id
        progress.targetVersion = version
        progress.selected = selected
        progress.healthy = healthy
        progress.failed = failed
        progress.missing = missing
        progress.machines = 10
        return RegionView(region: region, receivedAtMicros: at, progress: progress)
    }

    func started(_ plan: RolloutPlan? = nil, from: String? = "old") -> RolloutMachine {
        var machine = RolloutMachine(id: 7, service: "api", from: from, to: "new", plan: plan ?? self.plan)
        _ = machine.start(now: 0)
        machine.waveVersion = 1
        return machine
    }

    @Test("the canary plan: one machine of the first region, that region, each other region, then every region")
    func canaryPlan() {
        #expect(plan.waves.map { RolloutText.describe($0.shares) } == ["a:1", "a:1000‰", "b:1000‰", "*:1000‰"])
        #expect(plan.shares(throughWave: 2).map { "\($0.region):\($0.machines ?? $0.perMille ?? 0)" } == ["a:1000", "b:1000"])
        let alone = RolloutPlan.canary(regions: [], bake: 5)
        #expect(alone.waves.map { RolloutText.describe($0.shares) } == ["*:1", "*:1000‰"])
        #expect(RolloutPlan.all().waves.count == 1 && RolloutPlan.all().waves[0].shares == [.all("*")])
    }

    @Test("start publishes the first wave; a healthy wave passes after its bake time, not before; the last wave finishes")
    func healthyWavesPass() {
        var machine = RolloutMachine(id: 7, service: "api", from: "old", to: "new", plan: plan)
        #expect(machine.start(now: 0) == [.event(.rolloutStarted), .applyWaves(shares: [RolloutPlan.Share(region: "a", machines: 1)]),
                                         .event(.waveStarted)])
        machine.waveVersion = 1
        // Reports made before the region applied the wave say nothing about it.
        let early = ["a": view("a", at: 1 * Self.second, version: 0, selected: 0, healthy: 0)]
        #expect(machine.tick(now: 1 * Self.second, views: early, regions: ["a", "b"], staleAfterMicros: stale).isEmpty)
        #expect(machine.holdingSince == nil)
        let healthy = ["a": view("a", at: 2 * Self.second, version: 1, selected: 1, healthy: 1)]
        #expect(machine.tick(now: 2 * Self.second, views: healthy, regions: ["a", "b"], staleAfterMicros: stale).isEmpty)
        #expect(machine.holdingSince == 2 * Self.second)
        #expect(machine.tick(now: 11 * Self.second, views: healthy, regions: ["a", "b"], staleAfterMicros: stale).isEmpty, "baked 9 s of 10")
        let passed = machine.tick(now: 12 * Self.second, views: healthy, regions: ["a", "b"], staleAfterMicros: stale)
        #expect(passed == [.event(.wavePassed), .applyWaves(shares: [.all("a")]), .event(.waveStarted)])
        #expect(machine.wave == 1 && machine.waves[0].result == "passed" && machine.state == .progressing)

        // Through the remaining waves; the last one finishes the rollout.
        var now = 12 * Self.second
        for wave in 1..<plan.waves.count {
            machine.waveVersion = UInt64(wave + 1)
            let views = ["a": view("a", at: now, version: UInt64(wave + 1), selected: 5, healthy: 5),
                         "b": view("b", at: now, version: UInt64(wave + 1), selected: 5, healthy: 5)]
            // The last wave has no bake: it passes on its first healthy look.
            var effects = machine.tick(now: now, views: views, regions: ["a", "b"], staleAfterMicros: stale)
            now += 11 * Self.second
            effects += machine.tick(now: now, views: views.mapValues { var v = $0; v.receivedAtMicros = now; return v },
                                    regions: ["a", "b"], staleAfterMicros: stale)
            if wave == plan.waves.count - 1 {
                #expect(effects == [.event(.wavePassed), .finish, .event(.rolloutSucceeded)])
            } else {
                #expect(effects.first == .event(.wavePassed), "wave \(wave + 1)")
            }
        }
        #expect(machine.state == .succeeded && machine.waves.allSatisfy { $0.result == "passed" })
        #expect(machine.tick(now: now + Self.second, views: [:], regions: [], staleAfterMicros: stale).isEmpty, "a final rollout never moves")
    }

    @Test("a gate that breaks during the bake starts the bake over")
    func bakeRestarts() {
        var machine = started()
        let healthy = ["a": view("a", at: Self.second, version: 1, selected: 1, healthy: 1)]
        _ = machine.tick(now: Self.second, views: healthy, regions: ["a"], staleAfterMicros: stale)
        let restarting = ["a": view("a", at: 5 * Self.second, version: 1, selected: 1, healthy: 0)]
        #expect(machine.tick(now: 5 * Self.second, views: restarting, regions: ["a"], staleAfterMicros: stale).isEmpty)
        #expect(machine.holdingSince == nil)
        let again = ["a": view("a", at: 6 * Self.second, version: 1, selected: 1, healthy: 1)]
        _ = machine.tick(now: 6 * Self.second, views: again, regions: ["a"], staleAfterMicros: stale)
        #expect(machine.tick(now: 12 * Self.second, views: again, regions: ["a"], staleAfterMicros: stale).isEmpty)
        #expect(machine.tick(now: 16 * Self.second, views: again, regions: ["a"], staleAfterMicros: stale).first == .event(.wavePassed))
    }

    @Test("a failed wave halts and rolls back, or halts and waits when the plan pauses on failure")
    func failedWave() {
        var machine = started()
        let failing = ["a": view("a", at: Self.second, version: 1, selected: 1, healthy: 0, failed: 1)]
        #expect(machine.tick(now: Self.second, views: failing, regions: ["a"], staleAfterMicros: stale)
                == [.event(.rolloutHalted), .revert, .event(.rolloutRolledBack)])
        #expect(machine.state == .rolledBack && machine.waves[0].result == "failed" && machine.reason.contains("1 machine(s) failed"))

        var careful = plan
        careful.pauseOnFailure = true
        var waiting = started(careful)
        #expect(waiting.tick(now: Self.second, views: failing, regions: ["a"], staleAfterMicros: stale) == [.event(.rolloutHalted)])
        #expect(waiting.state == .halted)
        #expect(waiting.tick(now: 2 * Self.second, views: failing, regions: ["a"], staleAfterMicros: stale).isEmpty, "a halted rollout waits")

        // A wave allowing failures tolerates them.
        var tolerant = plan
        tolerant.waves[0].maxFailed = 1
        var lenient = started(tolerant)
        let oneOfTwo = ["a": view("a", at: Self.second, version: 1, selected: 2, healthy: 1, failed: 1)]
        tolerant.waves[0].minHealthyPerMille = 500
        var half = started(tolerant)
        #expect(lenient.tick(now: Self.second, views: oneOfTwo, regions: ["a"], staleAfterMicros: stale).isEmpty)
        #expect(lenient.state == .progressing && lenient.holdingSince == nil, "1 of 2 healthy is below the 100% it needs")
        #expect(half.tick(now: Self.second, views: oneOfTwo, regions: ["a"], staleAfterMicros: stale).isEmpty)
        #expect(half.holdingSince == Self.second, "1 of 2 is the 50% it needs")
    }

    @Test("stale reports, silent machines and a missed deadline pause; they never promote")
    func inconclusive() {
        var stale = started()
        let old = ["a": view("a", at: 0, version: 1, selected: 1, healthy: 1)]
        #expect(stale.tick(now: 46 * Self.second, views: old, regions: ["a"], staleAfterMicros: self.stale) == [.event(.rolloutPaused)])
        #expect(stale.state == .paused && stale.reason.contains("region a's last report is 46s old"))

        var unseen = started()
        #expect(unseen.tick(now: Self.second, views: [:], regions: ["a"], staleAfterMicros: self.stale) == [.event(.rolloutPaused)])
        #expect(unseen.reason.contains("never reported"))

        var silent = started()
        let gone = ["a": view("a", at: Self.second, version: 1, selected: 1, healthy: 0, missing: 1)]
        #expect(silent.tick(now: Self.second, views: gone, regions: ["a"], staleAfterMicros: self.stale) == [.event(.rolloutPaused)])
        #expect(silent.reason.contains("silent"))

        var slow = started()
        let installing = ["a": view("a", at: 0, version: 1, selected: 1, healthy: 0)]
        var now: Int64 = 0
        while now <= 600 * Self.second {
            var fresh = installing
            fresh["a"]!.receivedAtMicros = now
            #expect(slow.tick(now: now, views: fresh, regions: ["a"], staleAfterMicros: self.stale).isEmpty)
            now += 30 * Self.second
        }
        var fresh = installing
        fresh["a"]!.receivedAtMicros = 601 * Self.second
        #expect(slow.tick(now: 601 * Self.second, views: fresh, regions: ["a"], staleAfterMicros: self.stale) == [.event(.rolloutPaused)])
        #expect(slow.reason.contains("not healthy within 600s"))
    }

    @Test("the `*` share judges every region the coordinator knows")
    func everyRegion() {
        var machine = started(.all())
        #expect(machine.coveredRegions(known: ["a", "b"]) == ["a", "b"])
        let onlyA = ["a": view("a", at: Self.second, version: 1, selected: 3, healthy: 3)]
        #expect(machine.tick(now: Self.second, views: onlyA, regions: ["a", "b"], staleAfterMicros: stale) == [.event(.rolloutPaused)],
                "region b never reported: nothing proves it healthy")
    }

    @Test("a pinned region is not judged, whether a wave names it or `*` covers it")
    func pinned() {
        var machine = started()
        let healthyB = ["b": view("b", at: Self.second, version: 1, selected: 2, healthy: 2)]
        // Wave 1 names region a, which keeps an override: nothing to judge, so the wave holds.
        #expect(machine.tick(now: Self.second, views: healthyB, regions: ["a", "b"], pinned: ["a"], staleAfterMicros: stale).isEmpty)
        #expect(machine.holdingSince == Self.second && machine.state == .progressing)
    }

    @Test("operator commands in every state")
    func commands() throws {
        // progressing
        var machine = started()
        #expect(try machine.command(.pause, by: "ann", now: Self.second) == [.event(.rolloutPaused)])
        #expect(machine.state == .paused && machine.reason == "paused by ann")
        // paused
        #expect(throws: RolloutMachine.Refusal.self) { try machine.command(.pause, by: "ann", now: Self.second) }
        #expect(machine.tick(now: 2 * Self.second, views: [:], regions: ["a"], staleAfterMicros: stale).isEmpty, "a paused rollout waits")
        #expect(try machine.command(.resume, by: "ann", now: 3 * Self.second) == [.event(.rolloutResumed)])
        #expect(machine.state == .progressing && machine.waves[0].startedAt == 3 * Self.second, "the deadline counts from the resume")
        #expect(throws: RolloutMachine.Refusal.self) { try machine.command(.resume, by: "ann", now: Self.second) }
        #expect(try machine.command(.promote, by: "ann", now: 4 * Self.second)
                == [.event(.wavePassed), .applyWaves(shares: [.all("a")]), .event(.waveStarted)])
        #expect(machine.waves[0].result == "promoted" && machine.wave == 1)
        _ = try machine.command(.pause, by: "ann", now: 5 * Self.second)
        #expect(try machine.command(.promote, by: "ann", now: 6 * Self.second).first == .event(.wavePassed), "a paused wave can be promoted")
        #expect(machine.state == .progressing && machine.wave == 2)
        #expect(try machine.command(.abort, by: "bob", now: 7 * Self.second) == [.revert, .event(.rolloutAborted)])
        #expect(machine.state == .aborted && machine.reason == "aborted by bob")
        // final states refuse everything
        for command in [RolloutMachine.Command.pause, .resume, .promote, .abort] {
            #expect(throws: RolloutMachine.Refusal.self) { try machine.command(command, by: "ann", now: 8 * Self.second) }
        }

        // halted: resume refused, promote and abort allowed
        var careful = plan
        careful.pauseOnFailure = true
        var halted = started(careful)
        _ = halted.tick(now: Self.second, views: ["a": view("a", at: Self.second, version: 1, selected: 1, healthy: 0, failed: 1)],
                        regions: ["a"], staleAfterMicros: stale)
        #expect(halted.state == .halted)
        #expect(throws: RolloutMachine.Refusal.self) { try halted.command(.resume, by: "ann", now: 2 * Self.second) }
        #expect(throws: RolloutMachine.Refusal.self) { try halted.command(.pause, by: "ann", now: 2 * Self.second) }
        var promoted = halted
        #expect(try promoted.command(.promote, by: "ann", now: 2 * Self.second).first == .event(.wavePassed))
        #expect(promoted.state == .progressing && promoted.wave == 1)
        #expect(try halted.command(.abort, by: "ann", now: 2 * Self.second) == [.revert, .event(.rolloutAborted)])

        // promoting the last wave succeeds the rollout
        var single = started(.all())
        #expect(try single.command(.promote, by: "ann", now: Self.second) == [.event(.wavePassed), .finish, .event(.rolloutSucceeded)])
        #expect(single.state == .succeeded)
    }

    @Test("a newer deploy supersedes a rollout in any state that has not ended, without touching the target")
    func supersede() throws {
        var machine = started()
        #expect(machine.supersede(by: 8, now: Self.second) == [.event(.rolloutAborted)])
        #expect(machine.state == .aborted && machine.reason == "superseded by rollout 8")
        #expect(machine.supersede(by: 9, now: Self.second).isEmpty)
        var paused = started()
        _ = try paused.command(.pause, by: "ann", now: Self.second)
        #expect(paused.supersede(by: 8, now: Self.second) == [.event(.rolloutAborted)])
    }

    @Test("a stored rollout resumes exactly where it was")
    func restored() {
        var machine = started()
        _ = machine.tick(now: Self.second, views: ["a": view("a", at: Self.second, version: 1, selected: 1, healthy: 1)],
                         regions: ["a"], staleAfterMicros: stale)
        let copy = RolloutMachine(id: machine.id, service: machine.service, from: machine.from, to: machine.to, plan: machine.plan,
                                  state: machine.state, wave: machine.wave, waves: machine.waves, reason: machine.reason,
                                  holdingSince: machine.holdingSince, waveVersion: machine.waveVersion)
        #expect(copy == machine)
    }
}

/// Short forms of shares for the tests' expectations.
enum RolloutText {
    static func describe(_ shares: [RolloutPlan.Share]) -> String {
        shares.map { "\($0.region):\($0.machines.map(String.init) ?? "\($0.perMille ?? 0)‰")" }.joined(separator: ",")
    }
}

@Suite struct RolloutPlanTests {
    @Test("named plans parse, with shares, bake, gate limits and options")
    func parse() throws {
        let plan = try RolloutPlan.parse("careful=eu:1 bake=10m; eu:25%,us:2 bake=30s min-healthy=95% max-failed=2; *:100%; pause-on-failure; prefetch; deadline=20m")
        #expect(plan.name == "careful" && plan.pauseOnFailure && plan.prefetch && plan.waveDeadlineSeconds == 1_200)
        #expect(plan.waves.count == 3)
        #expect(plan.waves[0] == RolloutPlan.Wave(shares: [RolloutPlan.Share(region: "eu", machines: 1)], bakeSeconds: 600))
        #expect(plan.waves[1].shares == [RolloutPlan.Share(region: "eu", machines: nil, perMille: 250), RolloutPlan.Share(region: "us", machines: 2)])
        #expect(plan.waves[1].bakeSeconds == 30 && plan.waves[1].minHealthyPerMille == 950 && plan.waves[1].maxFailed == 2)
        #expect(plan.waves[2].shares == [.all("*")])
    }

    @Test("bad plans are refused with the rule they broke", arguments: [
        ("noequals", "a plan is NAME=WAVE"),
        ("=eu:1", "plan name"),
        ("all=eu:1", "built-in"),
        ("p=", "1 to 32 waves"),
        ("p=eu", "a share is REGION:COUNT"),
        ("p=eu:0", "neither a machine count"),
        ("p=eu:101%", "neither a machine count"),
        ("p=eu:1,eu:2", "appears twice"),
        ("p=eu:1 bake=soon", "is not bake=DURATION"),
        ("p=eu:1 min-healthy=95", "is not bake=DURATION"),
        ("p=eu:1; deadline=0", "deadline="),
        ("p=bad region:1", "a share is REGION:COUNT"),
        ("p=-x:1", "a share is REGION:COUNT"),
    ])
    func refused(text: String, expected: String) {
        do {
            _ = try RolloutPlan.parse(text)
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(text): \(error)")
        }
    }
}
