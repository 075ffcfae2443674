import SlipwayCore
import Testing

@Suite("Upload slots name each peer's artifact")
struct UploadSlotsTests {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    typealias Notice = UploadSlots<String>.Notice

    @Test("every choke and unchoke names the artifact its peer asked for last; a peer gone is forgotten")
    func noticesNameTheirPeersArtifact() {
        var slots = UploadSlots<String>(slots: 1)
        #expect(slots.interest("a", digest: "d1", interested: true, now: at(0)) == [Notice(peer: "a", digest: "d1", choked: false)])
        #expect(slots.interest("b", digest: "d2", interested: true, now: at(1)) == [Notice(peer: "b", digest: "d2", choked: true)])
        // b's request for another artifact: not taken, and the caller answers it; b now heeds for d3.
        let (taken, notices) = slots.request(from: "b", digest: "d3", now: at(2))
        #expect(!taken)
        #expect(notices == [Notice(peer: "b", digest: "d3", choked: true)])
        #expect(slots.heeding == ["a": "d1", "b": "d3"])
        // a's connection fails: its slot goes to b, whose unchoke names d3.
        #expect(slots.gone("a", now: at(3)) == [Notice(peer: "b", digest: "d3", choked: false)])
        #expect(slots.heeding == ["b": "d3"])
        #expect(slots.served == ["b"])
    }

    @Test("a greeting that heeds chokes is remembered; peers the choker forgot lose their artifact once they outnumber what it keeps")
    func forgottenPeersAreDropped() {
        var slots = UploadSlots<String>(slots: 1)
        _ = slots.interest("kept", digest: "d", interested: true, now: at(0))
        let crowd = slots.choker.maxWaiting + slots.choker.slots + 1
        for index in 0..<crowd { slots.heed("greeted-\(index)", digest: "d") }
        #expect(slots.heeding.count == crowd + 1)
        #expect(slots.tick(now: at(1)) { _ in 1 } == [])
        // Only greeted, never interested: the choker knows none of them.
        #expect(slots.heeding == ["kept": "d"])
    }
}
