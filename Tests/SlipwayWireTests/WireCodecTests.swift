import Foundation
import Synchronization
import SlipwayProto
import SlipwayWire
import Testing

@Suite("Envelope framing and rejection of bad input")
struct WireCodecTests {
    let codec = WireCodec()

    func sampleMessage(payload: [UInt8]? = nil) -> WireMessage {
        var piece = Slipway_V1_PieceData()
        piece.digest = String(repeating: "ab", count: 32)
        piece.index = 3
        piece.length = UInt32(payload?.count ?? 0)
        return WireMessage(piece, sender: "region/eu", topic: "piece", traceID: "trace-1", payload: payload)
    }

    @Test("encode then decode gives back topic, envelope, body and payload")
    func roundTrip() throws {
        let original = sampleMessage(payload: [1, 2, 3])
        let frames = codec.encode(original)
        #expect(frames.count == 3)
        let decoded = try codec.decode(frames)
        #expect(decoded.topic == Array("piece".utf8))
        #expect(decoded.envelope == original.envelope)
        #expect(decoded.envelope.protocolVersion == 1)
        #expect(decoded.envelope.messageID.count == 32)
        #expect(decoded.payload == [1, 2, 3])
        let body = try decoded.body(as: Slipway_V1_PieceData.self)
        #expect(body.index == 3)
        #expect((try decoded.anyBody()) as? Slipway_V1_PieceData == body)
    }

    @Test("message ids: 32 lowercase hex digits, each of the 16 used, none repeated")
    func messageIDs() {
        let ids = (0..<2_000).map { _ in WireMessage.newMessageID() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.utf8.count == 32 && $0.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) } })
        // A wrong digit table would leave some digit out (or put a letter past f in).
        #expect(Set(ids.joined()) == Set("0123456789abcdef"))
        // Both halves are random: the first and last 16 digits differ across ids.
        #expect(Set(ids.map { $0.prefix(16) }).count == ids.count && Set(ids.map { $0.suffix(16) }).count == ids.count)
        // And they are drawn apart: no half repeats the other, in this id or any other.
        #expect(Set(ids.flatMap { [$0.prefix(16), $0.suffix(16)] }).count == 2 * ids.count)
    }

    @Test("message ids drawn by several threads at once are all distinct (they share one page of randomness)")
    func messageIDsAcrossThreads() {
        let perThread = 3_000
        let ids = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let mine = (0..<perThread).map { _ in WireMessage.newMessageID() }
            ids.withLock { $0 += mine }
        }
        let all = ids.withLock { $0 }
        #expect(all.count == 4 * perThread)
        #expect(Set(all).count == all.count)
    }

    @Test("ROUTER framing: routing id first, then the message")
    func routed() throws {
        let frames = codec.encode(sampleMessage(), to: Array("peer-7".utf8))
        let (id, message) = try codec.decodeRouted(frames)
        #expect(id == Array("peer-7".utf8))
        #expect(message.type == .pieceData)
        #expect(throws: WireError(.missingRoutingID, "ROUTER message without a routing id")) {
            try codec.decodeRouted([[], [1]])
        }
    }

    @Test("garbage bytes are a malformed envelope")
    func garbage() throws {
        // Field 1 with wire type 7, which protobuf does not define.
        let error = #expect(throws: WireError.self) { try codec.decode([[], [0x0F, 0xFF, 0xFF]]) }
        #expect(error?.code == .malformedEnvelope)
    }

    @Test("a truncated envelope is malformed")
    func truncated() throws {
        let frames = codec.encode(sampleMessage())
        for cut in [1, 5, frames[1].count / 2] {
            let error = #expect(throws: WireError.self) { try codec.decode([frames[0], Array(frames[1].dropLast(cut))]) }
            #expect(error?.code == .malformedEnvelope, "cut \(cut) bytes")
        }
    }

    @Test("wrong and missing protocol versions are rejected", arguments: [0, 2, 99] as [UInt32])
    func wrongVersion(version: UInt32) throws {
        var message = sampleMessage()
        message.envelope.protocolVersion = version
        let error = #expect(throws: WireError.self) { try codec.decode(codec.encode(message)) }
        #expect(error?.code == .unsupportedVersion)
    }

    @Test("an unknown message type is rejected")
    func unknownType() throws {
        var message = sampleMessage()
        message.envelope.type = .UNRECOGNIZED(999)
        let error = #expect(throws: WireError.self) { try codec.decode(codec.encode(message)) }
        #expect(error?.code == .unknownMessageType)
    }

    @Test("oversize topic, envelope and payload frames are rejected")
    func oversize() throws {
        let small = WireCodec(maxTopicBytes: 4, maxEnvelopeBytes: 64, maxPayloadBytes: 10)
        var long = sampleMessage()
        long.topic = Array(repeating: 65, count: 5)
        #expect((#expect(throws: WireError.self) { try small.decode(small.encode(long)) })?.code == .oversize)
        var bigBody = Slipway_V1_LogChunk()
        bigBody.jobID = String(repeating: "j", count: 100)
        let big = WireMessage(bigBody, sender: "w")
        #expect((#expect(throws: WireError.self) { try small.decode(small.encode(big)) })?.code == .oversize)
        let payloadLimited = WireCodec(maxPayloadBytes: 10)
        let heavy = sampleMessage(payload: Array(repeating: 0, count: 11))
        let error = #expect(throws: WireError.self) { try payloadLimited.decode(payloadLimited.encode(heavy)) }
        #expect(error?.code == .oversize)
        #expect(error?.description == "rejected message (oversize): payload frame is 11 bytes, limit 10")
    }

    @Test("wrong frame counts are rejected", arguments: [0, 1, 4])
    func frameCount(count: Int) throws {
        let frames = Array(repeating: [UInt8](), count: count)
        #expect((#expect(throws: WireError.self) { try codec.decode(frames) })?.code == .badFrameCount)
    }

    @Test("asking for the wrong body type, or a garbage body, is a typed error")
    func bodyErrors() throws {
        let message = try codec.decode(codec.encode(sampleMessage()))
        #expect((#expect(throws: WireError.self) { try message.body(as: Slipway_V1_SubmitBuild.self) })?.code == .typeMismatch)
        var broken = message
        broken.envelope.body = Data([0x0F, 0xFF])
        #expect((#expect(throws: WireError.self) { try broken.body(as: Slipway_V1_PieceData.self) })?.code == .malformedBody)
        #expect((#expect(throws: WireError.self) { try broken.anyBody() })?.code == .malformedBody)
    }

    @Test("ten thousand random frames never crash the decoder")
    func randomInput() {
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        for _ in 0..<10_000 {
            let count = Int.random(in: 0...4, using: &generator)
            let frames = (0..<count).map { _ in
                (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            if (try? codec.decode(frames)) != nil { accepted += 1 }
        }
        // Random bytes almost never carry protocol version 1 and a known type.
        #expect(accepted < 50)
    }

    @Test("every message type in the registry round-trips through an envelope")
    func registryCoversEveryType() throws {
        let declared = Slipway_V1_MessageType.allCases.filter { $0 != .unspecified }
        #expect(Set(declared) == Set(WireRegistry.bodyTypes.keys))
        for (type, bodyType) in WireRegistry.bodyTypes {
            #expect(bodyType.messageType == type)
            var envelope = Slipway_V1_Envelope()
            envelope.protocolVersion = 1
            envelope.type = type
            envelope.body = try bodyType.init().serializedData()
            let decoded = try codec.decode([[], try envelope.serializedBytes()])
            #expect(Swift.type(of: try decoded.anyBody()) == bodyType)
        }
    }
}
