import Foundation
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import Testing

/// The regional store answers a request it cannot serve with an `ErrorReply`
/// in reply to that request, so the asker knows which of its requests failed.
@Suite("The store's error replies")
struct StoreErrorReplyTests {
    @Test("a piece of an unknown artifact, and a piece past the end, are answered in reply to their requests")
    func errorsAnswerTheirRequests() async throws {
        let runner = OwnedThread(name: "store-errors")
        defer { runner.shutdown() }
        try await runner.run { try Self.body() }
    }

    static func body() throws {
        let (folder, manifest) = try StoreUploadSlotsTests.seededStore(pieces: 2)
        defer { try? FileManager.default.removeItem(at: folder) }
        let stop = StopSignal(), thread = OwnedThread(name: "store")
        defer { thread.shutdown() }
        let (address, serving) = try StoreUploadSlotsTests.serve(folder, slots: 0, stop: stop, on: thread)
        let context = try ZMQContext()
        let agent = try ZMQSocket(context: context, type: .dealer)
        defer { agent.close() }
        try agent.connect(address)

        let unknown = try StoreUploadSlotsTests.ask(agent, String(repeating: "ab", count: 32), piece: 0, heedsChoke: false)
        let notFound = try #require(try StoreUploadSlotsTests.next(agent))
        #expect(notFound.type == .errorReply)
        #expect(notFound.envelope.inReplyTo == unknown)
        #expect(try notFound.body(as: Slipway_V1_ErrorReply.self).code == .notFound)

        let past = try StoreUploadSlotsTests.ask(agent, manifest.digest, piece: 2, heedsChoke: false)
        let invalid = try #require(try StoreUploadSlotsTests.next(agent))
        #expect(invalid.type == .errorReply)
        #expect(invalid.envelope.inReplyTo == past)
        #expect(try invalid.body(as: Slipway_V1_ErrorReply.self).code == .invalidArgument)
        stop.stop()
        serving.wait()
    }
}
