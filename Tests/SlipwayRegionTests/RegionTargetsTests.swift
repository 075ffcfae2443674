import Foundation
import SlipwayProto
@testable import SlipwayRegion
import Testing

@Suite struct RegionTargetsTests {
    func change(_ service: String, _ digest: String, version: UInt64, region: String = "") -> Slipway_V1_TargetChange {
        var change = Slipway_V1_TargetChange()
        change.service = service
        change.artifactDigest = digest
        change.version = version
        change.region = region
        change.setBy = "test"
        return change
    }

    @Test func aRegionalOverrideWinsOverTheGlobalTarget() {
        var targets = RegionTargets()
        let applied = [
            targets.apply(change("svc", "g1", version: 1), region: "eu"),
            targets.apply(change("svc", "e1", version: 1, region: "eu"), region: "eu"),
            targets.apply(change("svc", "g2", version: 2), region: "eu"),
        ]
        #expect(applied == [true, true, true], "a newer global target is stored (and saved) even behind an override")
        #expect(targets.effective("svc")?.digest == "e1", "but the override still decides")
        #expect(targets.services == ["svc"])
    }

    @Test func aClearedOverrideHandsTheRegionBackToTheGlobalTargetAndKeepsItsVersion() {
        var targets = RegionTargets()
        _ = targets.apply(change("svc", "g1", version: 1), region: "eu")
        _ = targets.apply(change("svc", "e1", version: 1, region: "eu"), region: "eu")
        #expect(targets.pinned == ["svc"])
        #expect(targets.agentTarget("svc", region: "eu", cutoff: 0)?.hasClearedOverride == false, "an override in force carries none")
        let cleared = targets.apply(change("svc", "", version: 2, region: "eu"), region: "eu")
        #expect(cleared)
        #expect(targets.effective("svc")?.digest == "g1" && targets.pinned.isEmpty)
        #expect(targets.agentTarget("svc", region: "eu", cutoff: 0)?.version == 3, "1 global + 2 regional: above what agents had")
        let told = targets.agentTarget("svc", region: "eu", cutoff: 0)
        #expect(told?.clearedOverride.version == 2 && told?.clearedOverride.region == "eu"
                && told?.clearedOverride.artifactDigest == "" && told?.clearedOverride.service == "svc",
                "the global target carries the clearing, for machines that ran under the override")
        let replayed = targets.apply(change("svc", "e1", version: 1, region: "eu"), region: "eu")
        #expect(!replayed, "a replayed older override stays cleared")
        var lone = RegionTargets()
        _ = lone.apply(change("other", "e1", version: 1, region: "eu"), region: "eu")
        _ = lone.apply(change("other", "", version: 2, region: "eu"), region: "eu")
        #expect(lone.services.isEmpty && lone.agentTarget("other", region: "eu", cutoff: 0) == nil)
    }

    @Test func aRolloutTargetCarriesItsWaveToAgentsWithTheRegionsCutoff() {
        var targets = RegionTargets()
        var rollout = change("svc", "new", version: 5)
        rollout.rolloutID = 12
        rollout.stableDigest = "old"
        var share = Slipway_V1_WaveShare()
        share.region = "eu"
        share.machines = 1
        rollout.shares = [share]
        let applied = targets.apply(rollout, region: "eu")
        #expect(applied)
        let agent = targets.agentTarget("svc", region: "eu", cutoff: 77)
        #expect(agent?.rolloutID == 12 && agent?.stableDigest == "old" && agent?.shares == [share] && agent?.waveCutoff == 77)
        #expect(targets.rolloutTarget("svc", region: "eu")?.version == 5, "the tracker judges the wave by the global version")
        _ = targets.apply(change("svc", "pinned", version: 1, region: "eu"), region: "eu")
        #expect(targets.rolloutTarget("svc", region: "eu") == nil && targets.agentTarget("svc", region: "eu", cutoff: 77)?.rolloutID == 0,
                "an override keeps the region out of the rollout")
    }

    @Test func otherRegionsAndOldOrRepeatedVersionsAreIgnored() {
        var targets = RegionTargets()
        let applied = [
            targets.apply(change("svc", "us1", version: 1, region: "us"), region: "eu"),
            targets.apply(change("svc", "g3", version: 3), region: "eu"),
            targets.apply(change("svc", "g2", version: 2), region: "eu"),  // replayed after a restart
            targets.apply(change("svc", "g3", version: 3), region: "eu"),
        ]
        #expect(applied == [false, true, false, false])
        #expect(targets.effective("svc")?.digest == "g3")
    }

    @Test func survivesARestartOnDiskWithItsPosition() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try SavedTargets.load(from: file) == SavedTargets(), "no file: no targets, from the first event")
        var targets = RegionTargets()
        _ = targets.apply(change("a", "d1", version: 4), region: "eu")
        _ = targets.apply(change("b", "d2", version: 1, region: "eu"), region: "eu")
        let saved = SavedTargets(appliedThrough: 42, targets: targets)
        try saved.save(to: file)
        #expect(try SavedTargets.load(from: file) == saved)

        // A file from before the position was kept: the targets, replayed from the first event.
        let legacy = #"{"global":{"a":{"digest":"d1","version":4,"setBy":"t","setAtUnixMicros":0}},"regional":{}}"#
        try Data(legacy.utf8).write(to: file)
        let read = try SavedTargets.load(from: file)
        #expect(read.appliedThrough == 0 && read.targets.effective("a")?.digest == "d1")

        try Data("{not json".utf8).write(to: file)
        #expect(throws: (any Error).self) { try SavedTargets.load(from: file) }
    }
}
