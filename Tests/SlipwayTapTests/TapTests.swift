import Foundation
import SlipwayProto
import SlipwayTap
import SlipwayWire
import SwiftProtobuf
import Testing

@Suite("slipway tap")
struct TapTests {
    static let allTypes = WireRegistry.bodyTypes.keys.sorted { $0.rawValue < $1.rawValue }
    let time = Date(timeIntervalSince1970: 1_790_000_000.123)

    @Test("every message type decodes to a line naming it", arguments: allTypes)
    func decodesEveryType(type: Slipway_V1_MessageType) throws {
        var envelope = Slipway_V1_Envelope()
        envelope.protocolVersion = 1
        envelope.type = type
        envelope.sender = "tester"
        envelope.messageID = "m1"
        envelope.body = try WireRegistry.bodyTypes[type]!.init().serializedData()
        let frames = [Array("topic.x".utf8), try envelope.serializedBytes()]
        let formatter = TapFormatter()
        let text = formatter.line(frames, at: time)
        let name = formatter.typeNames(frames)[0]
        #expect(!text.contains("undecodable"), "\(text)")
        #expect(text.contains(" topic.x \(name) from tester"), "\(text)")
        let json = TapFormatter(json: true).line(frames, at: time)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["type"] as? String == name)
        #expect(object?["sender"] as? String == "tester")
    }

    @Test("events show their sequence, type and decoded payload")
    func event() throws {
        var info = Slipway_V1_JobInfo()
        info.jobID = "j-1"
        info.status = .succeeded
        var event = Slipway_V1_Event()
        event.sequence = 42
        event.type = .jobSucceeded
        event.jobID = "j-1"
        event.payload = try info.serializedData()
        let frames = WireCodec().encode(WireMessage(event, sender: "coordinator", topic: "job.succeeded"))
        let formatter = TapFormatter()
        let text = formatter.line(frames, at: time)
        #expect(text.hasPrefix("2026-09-21T"))
        #expect(text.contains("job.succeeded event from coordinator #42 job_succeeded job=j-1"), "\(text)")
        #expect(text.contains("status: SUCCEEDED") || text.contains("status: JOB_STATUS_SUCCEEDED"), "\(text)")
        #expect(formatter.typeNames(frames) == ["event", "job_succeeded"])
    }

    @Test("every rollout event decodes its rollout", arguments: [
        Slipway_V1_EventType.rolloutStarted, .waveStarted, .wavePassed, .rolloutPaused, .rolloutResumed, .rolloutHalted,
        .rolloutRolledBack, .rolloutSucceeded, .rolloutAborted,
    ])
    func rolloutEvents(type: Slipway_V1_EventType) throws {
        var rollout = Slipway_V1_RolloutStatus()
        rollout.id = 31
        rollout.service = "hello"
        rollout.plan = "canary"
        rollout.state = .halted
        rollout.reason = "wave 1 failed"
        var event = Slipway_V1_Event()
        event.sequence = 9
        event.type = type
        event.service = "hello"
        event.payload = try rollout.serializedData()
        let frames = WireCodec().encode(WireMessage(event, sender: "coordinator", topic: "rollout.x"))
        let text = TapFormatter().line(frames, at: time)
        #expect(text.contains("#9 rollout_") || text.contains("#9 wave_"), "\(text)")
        #expect(text.contains("id: 31") && text.contains("plan: \"canary\"") && text.contains("wave 1 failed"), "\(text)")
    }

    @Test("every artifact event decodes its payload", arguments: [
        Slipway_V1_EventType.artifactPublished, .replicaComplete, .artifactDeployable, .artifactDeleted,
    ])
    func artifactEvents(type: Slipway_V1_EventType) throws {
        var event = Slipway_V1_Event()
        event.sequence = 7
        event.type = type
        event.artifactDigest = String(repeating: "ab", count: 32)
        if type == .replicaComplete {
            var status = Slipway_V1_ReplicationStatus()
            status.region = "eu-west"
            status.state = .complete
            event.payload = try status.serializedData()
        } else {
            var manifest = Slipway_V1_ArtifactManifest()
            manifest.name = "hello-service"
            manifest.originRegion = "eu-west"
            event.payload = try manifest.serializedData()
        }
        let text = TapFormatter().line(WireCodec().encode(WireMessage(event, sender: "c", topic: "artifact.x")), at: time)
        let names: [Slipway_V1_EventType: String] = [.artifactPublished: "artifact_published", .replicaComplete: "replica_complete",
                                                     .artifactDeployable: "artifact_deployable", .artifactDeleted: "artifact_deleted"]
        #expect(text.contains("#7 \(names[type]!) artifact=abababababab"), "\(text)")
        #expect(text.contains("eu-west"), "the payload is decoded: \(text)")
    }

    @Test("garbage frames are shown, with hex when asked, never a crash")
    func garbage() throws {
        let samples: [[[UInt8]]] = [[], [[0xFF]], [[], [0x0F, 0xFF, 0x00]], Array(repeating: [1], count: 9), [[], [], []]]
        for frames in samples {
            let text = TapFormatter(raw: true).line(frames, at: time)
            #expect(text.contains("! undecodable"), "\(text)")
            let json = TapFormatter(json: true, raw: true).line(frames, at: time)
            #expect((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["error"] != nil)
        }
        #expect(TapFormatter(raw: true).line([[], [0x0F, 0xFF, 0x00]], at: time).hasSuffix(" | 0fff00"))
    }

    @Test("--replay of a recording prints exactly the lines printed live")
    func recordReplay() throws {
        let formatter = TapFormatter()
        var beat = Slipway_V1_CoordinatorHeartbeat()
        beat.lastEventSeq = 9
        let captured: [TapRecording.Entry] = [
            .init(time: time, frames: WireCodec().encode(WireMessage(beat, sender: "c", topic: "hb"))),
            .init(time: time.addingTimeInterval(0.5), frames: [[0xDE, 0xAD]]),
            .init(time: time.addingTimeInterval(1), frames: WireCodec().encode(WireMessage(Slipway_V1_SnapshotEnd(), sender: "c"))),
        ]
        let live = captured.map { formatter.line($0.frames, at: $0.time) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tap-\(UUID().uuidString).rec")
        defer { try? FileManager.default.removeItem(at: file) }
        let writer = try TapRecording.Writer(url: file)
        for entry in captured { try writer.append(entry) }
        try writer.close()
        let replayed = try TapRecording.read(file)
        #expect(replayed == captured)
        #expect(replayed.map { formatter.line($0.frames, at: $0.time) } == live)

        // A truncated recording is reported, not misread.
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 3).write(to: file)
        #expect(throws: TapRecording.Corrupt.self) { try TapRecording.read(file) }
    }
}
