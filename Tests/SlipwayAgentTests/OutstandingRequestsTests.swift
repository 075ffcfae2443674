@testable import SlipwayAgent
import Testing

@Suite("A download's requests in flight")
struct OutstandingRequestsTests {
    @Test("an answer counts only from the source asked, and settles its request once")
    func answersFromTheSourceAsked() {
        var outstanding = OutstandingRequests()
        outstanding.record("r1", piece: 4, source: .peer("m2"))
        outstanding.record("r2", piece: 7, source: .seed)
        #expect(outstanding.piece(answering: "r1", from: .peer("m3")) == nil, "another peer cannot answer m2's request")
        #expect(outstanding.settle("r2", from: .peer("m2")) == nil, "a peer cannot settle the store's request")
        #expect(outstanding.piece(answering: "r1", from: .peer("m2")) == 4)
        #expect(outstanding.settle("r1", from: .peer("m2")) == 4)
        #expect(outstanding.settle("r1", from: .peer("m2")) == nil)
        #expect(outstanding.ids == ["r2"])
    }

    @Test("a timed-out request is forgotten; the same piece asked of another source since stays")
    func timeoutKeepsTheOtherSource() {
        var outstanding = OutstandingRequests()
        outstanding.record("slow", piece: 3, source: .peer("m2"))
        outstanding.record("again", piece: 3, source: .seed)
        outstanding.record("other", piece: 5, source: .peer("m2"))
        outstanding.forget(piece: 3, askedOf: .peer("m2"))
        #expect(outstanding.ids == ["again", "other"])
        #expect(outstanding.piece(answering: "again", from: .seed) == 3)
    }

    @Test("a closed connection takes its requests with it, however many were abandoned")
    func closedConnection() {
        var outstanding = OutstandingRequests()
        for index in 0..<1_000 { outstanding.record("m2-\(index)", piece: index, source: .peer("m2")) }
        outstanding.record("store", piece: 1, source: .seed)
        outstanding.forget(.peer("m2"))
        #expect(outstanding.ids == ["store"])
    }
}
