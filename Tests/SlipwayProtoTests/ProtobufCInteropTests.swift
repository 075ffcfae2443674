import CSlipwayProto
import Foundation
import SlipwayProto
import SlipwayWire
import SwiftProtobuf
import Testing

/// The wire format is the contract non-Swift clients rely on: bytes written by
/// protobuf-c (C) must decode in swift-protobuf, and the other way round.
@Suite("protobuf-c and swift-protobuf agree on the wire format")
struct ProtobufCInteropTests {
    @Test("a WorkAssignment packed by protobuf-c decodes in Swift")
    func cToSwift() throws {
        var message = Slipway__V1__WorkAssignment()
        slipway__v1__work_assignment__init(&message)
        let strings = ["job-1", "https://example.invalid/repo.git", "0123456789abcdef0123456789abcdef01234567", "svc", "make", "out/svc"]
        let owned = strings.map { strdup($0)! }
        defer { owned.forEach { free($0) } }
        message.job_id = owned[0]
        message.repo_url = owned[1]
        message.commit = owned[2]
        message.artifact_name = owned[3]
        message.recipe = owned[4]
        message.artifact_path = owned[5]
        message.attempt = 4
        message.timeout_seconds = 900
        message.lease_expires_at_unix_micros = -1_234_567_890_123

        let size = slipway__v1__work_assignment__get_packed_size(&message)
        var buffer = [UInt8](repeating: 0, count: size)
        #expect(slipway__v1__work_assignment__pack(&message, &buffer) == size)

        let decoded = try Slipway_V1_WorkAssignment(serializedBytes: buffer)
        #expect(decoded.jobID == "job-1")
        #expect(decoded.repoURL == strings[1])
        #expect(decoded.commit == strings[2])
        #expect(decoded.artifactName == "svc")
        #expect(decoded.recipe == "make")
        #expect(decoded.artifactPath == "out/svc")
        #expect(decoded.attempt == 4)
        #expect(decoded.timeoutSeconds == 900)
        #expect(decoded.leaseExpiresAtUnixMicros == -1_234_567_890_123)
    }

    @Test("an ArtifactManifest with repeated bytes written in Swift unpacks in protobuf-c")
    func swiftToCRepeatedBytes() throws {
        var manifest = Slipway_V1_ArtifactManifest()
        manifest.digest = String(repeating: "e3", count: 32)
        manifest.size = 10 << 30
        manifest.pieceSize = 4 << 20
        manifest.pieceSha256 = (0..<3).map { index in Data((0..<32).map { UInt8(($0 + index) & 0xFF) }) }
        manifest.name = "svc"
        manifest.originRegion = "eu-west"
        let bytes: [UInt8] = try manifest.serializedBytes()

        let unpacked = try #require(bytes.withUnsafeBufferPointer { slipway__v1__artifact_manifest__unpack(nil, $0.count, $0.baseAddress) })
        defer { slipway__v1__artifact_manifest__free_unpacked(unpacked, nil) }
        let c = unpacked.pointee
        #expect(String(cString: c.digest) == manifest.digest)
        #expect(c.size == 10 << 30)
        #expect(c.piece_size == 4 << 20)
        #expect(c.n_piece_sha256 == 3)
        for index in 0..<3 {
            let piece = c.piece_sha256[index]
            #expect(Array(UnsafeBufferPointer(start: piece.data, count: piece.len)) == Array(manifest.pieceSha256[index]))
        }
        #expect(String(cString: c.origin_region) == "eu-west")
    }

    @Test("a SubmitBuild with a labels map written in Swift unpacks in protobuf-c")
    func swiftToCMap() throws {
        var submit = Slipway_V1_SubmitBuild()
        submit.idempotencyKey = "ci-run-77"
        submit.labels = ["os": "linux", "arch": "x86_64"]
        submit.maxAttempts = 3
        submit.fresh = true
        let bytes: [UInt8] = try submit.serializedBytes()
        let unpacked = try #require(bytes.withUnsafeBufferPointer { slipway__v1__submit_build__unpack(nil, $0.count, $0.baseAddress) })
        defer { slipway__v1__submit_build__free_unpacked(unpacked, nil) }
        var labels: [String: String] = [:]
        for index in 0..<unpacked.pointee.n_labels {
            let entry = unpacked.pointee.labels[index]!.pointee
            labels[String(cString: entry.key)] = String(cString: entry.value)
        }
        #expect(labels == submit.labels)
        #expect(String(cString: unpacked.pointee.idempotency_key) == "ci-run-77")
        #expect(unpacked.pointee.max_attempts == 3)
        #expect(unpacked.pointee.fresh != 0)
    }

    @Test("an Envelope built in C frames a body Swift can read through WireCodec")
    func envelopeFromC() throws {
        var heartbeat = Slipway_V1_WorkerHeartbeat()
        heartbeat.workerID = "w-1"
        heartbeat.freeSlots = 2
        var running = Slipway_V1_RunningJob()
        running.jobID = "job-9"
        running.attempt = 2
        heartbeat.running = [running]
        let body: [UInt8] = try heartbeat.serializedBytes()

        var envelope = Slipway__V1__Envelope()
        slipway__v1__envelope__init(&envelope)
        envelope.protocol_version = 1
        envelope.type = SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_WORKER_HEARTBEAT
        let id = strdup("c-client-1")!, sender = strdup("c/worker")!
        defer { free(id); free(sender) }
        envelope.message_id = id
        envelope.sender = sender
        envelope.sent_at_unix_micros = 1_700_000_000_000_000
        var storage = body
        let packed: [UInt8] = storage.withUnsafeMutableBufferPointer { buffer in
            envelope.body = ProtobufCBinaryData(len: buffer.count, data: buffer.baseAddress)
            var out = [UInt8](repeating: 0, count: slipway__v1__envelope__get_packed_size(&envelope))
            _ = slipway__v1__envelope__pack(&envelope, &out)
            return out
        }

        let message = try WireCodec().decode([Array("w".utf8), packed])
        #expect(message.envelope.sender == "c/worker")
        #expect(message.envelope.sentAtUnixMicros == 1_700_000_000_000_000)
        #expect(try message.body(as: Slipway_V1_WorkerHeartbeat.self) == heartbeat)
    }
}
