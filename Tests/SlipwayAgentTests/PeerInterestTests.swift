import SlipwayAgent
import Testing

@Suite struct PeerInterestTests {
    @Test("interest is told on a change and on a new connection, everything again every refresh, in name order")
    func whatIsTold() {
        var interest = PeerInterest()
        var picker = PiecePicker(pieceCount: 4, held: [0, 1])
        picker.peer("b", has: [2])
        picker.peer("a", has: [0])
        func tell(_ now: Double, _ connected: [String] = ["b", "a"]) -> [String] {
            let due = interest.due(connected: connected, picker: picker, now: now)
            for (peer, wants) in due { interest.told(peer, interested: wants) }
            return due.map { "\($0.peer)=\($0.interested)" }
        }
        #expect(tell(0) == ["a=false", "b=true"])
        #expect(tell(1).isEmpty, "nothing changed")
        _ = picker.received(2, from: .peer("b"), valid: true)
        #expect(tell(2) == ["b=false"], "b holds nothing missing any more")
        interest.connected("a")
        #expect(tell(3) == ["a=false"], "a new connection has been told nothing")
        #expect(tell(4.9).isEmpty)
        #expect(tell(5) == ["a=false", "b=false"], "a peer forgets a downloader it has not heard from")
        // Not told, because the send failed: due again at the next turn.
        #expect(interest.due(connected: ["c"], picker: picker, now: 6).map(\.peer) == ["c"])
        #expect(interest.due(connected: ["c"], picker: picker, now: 7).map(\.peer) == ["c"])
    }
}
