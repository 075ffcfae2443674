import SlipwayCore
import Testing

@Suite("Upload slots go round")
struct UploadChokerTests {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test("the first peers get the free slots; the rest are told to wait, and a waiting peer's request is not taken")
    func slotsFillInOrder() {
        var choker = UploadChoker<String>(slots: 2)
        #expect(choker.interested("a", now: at(0)) == [.unchoke("a")])
        #expect(choker.interested("b", now: at(1)) == [.unchoke("b")])
        #expect(choker.interested("c", now: at(2)) == [.choke("c")])
        #expect(choker.interested("c", now: at(3)) == [], "told once")
        #expect(choker.interested("a", now: at(3)) == [])
        #expect(choker.request(from: "a", now: at(4)) == (true, []))
        #expect(choker.request(from: "c", now: at(5)) == (false, [.choke("c")]), "the answer to the request")
        // A request from a peer never heard of takes a free slot, or waits.
        #expect(choker.request(from: "d", now: at(6)) == (false, [.choke("d")]))
        #expect(choker.waiting == ["c", "d"])
        #expect(choker.served == ["a", "b"])
    }

    @Test("after its turn the longest served makes way for the longest waiting, and waits at the back")
    func turnsGoRound() {
        var choker = UploadChoker<String>(slots: 1, turn: .seconds(4), idleGrace: .seconds(1))
        _ = choker.interested("a", now: at(0))
        _ = choker.interested("b", now: at(10))
        _ = choker.interested("c", now: at(20))
        // a keeps asking, so it is not idle: its slot is kept until the turn is over.
        for time in stride(from: 500, to: 4_000, by: 500) {
            #expect(choker.request(from: "a", now: at(time)).taken)
            #expect(choker.tick(now: at(time + 1)) { _ in 1 } == [])
            choker.answered("a", now: at(time + 2))
        }
        #expect(choker.tick(now: at(4_000)) { _ in 0 } == [.choke("a"), .unchoke("b")])
        #expect(choker.waiting == ["c", "a"])
        #expect(choker.request(from: "b", now: at(4_100)).taken)
        #expect(choker.tick(now: at(8_000)) { _ in 1 } == [.choke("b"), .unchoke("c")])
        #expect(choker.waiting == ["a", "b"])
    }

    @Test("slots granted at the same instant end in the order they were granted, whatever the peers' names hash to")
    func sameInstantGoesByGrantOrder() {
        // Twelve peers unchoked at one instant (as in a simulation's virtual time): the dictionary
        // that holds them orders them by hash, which is seeded per process.
        let peers = (0..<12).map { "peer-\($0)" }
        var choker = UploadChoker<String>(slots: 12, turn: .seconds(4), idleGrace: .seconds(60))
        for peer in peers.reversed() { #expect(choker.interested(peer, now: at(0)) == [.unchoke(peer)]) }
        for waiting in ["x", "y", "z"] { _ = choker.interested(waiting, now: at(1)) }
        // Every turn is over: as many as wait make way, in grant order, and wait at the back in that order.
        let first = Array(peers.reversed().prefix(3))
        #expect(choker.tick(now: at(4_000)) { _ in 1 }
                == [.choke(first[0]), .unchoke("x"), .choke(first[1]), .unchoke("y"), .choke(first[2]), .unchoke("z")])
        #expect(choker.waiting == first)
    }

    @Test("a tick chokes no peer it gives a slot back to: with one waiting, one slot holder makes way")
    func noChokeAndUnchokeInOneTick() {
        var choker = UploadChoker<String>(slots: 2, turn: .seconds(4), idleGrace: .seconds(60))
        _ = choker.interested("a", now: at(0))
        _ = choker.interested("b", now: at(1))
        _ = choker.interested("c", now: at(2))
        // Both turns are over and one peer waits: a makes way for c; b keeps its slot.
        #expect(choker.tick(now: at(4_100)) { _ in 1 } == [.choke("a"), .unchoke("c")])
        #expect(choker.served == ["b", "c"])
        #expect(choker.waiting == ["a"])
        // b's turn is over too: it makes way on the next tick, for a (its turn is not restarted).
        #expect(choker.tick(now: at(4_150)) { _ in 1 } == [.choke("b"), .unchoke("a")])
        #expect(choker.waiting == ["b"])
        // A slot freed by a forgotten holder goes to the longest waiting, and no one else makes way for it.
        var forgetting = UploadChoker<String>(slots: 2, turn: .seconds(4), idleGrace: .seconds(60), forgetAfter: .seconds(15))
        _ = forgetting.interested("a", now: at(0))
        _ = forgetting.interested("b", now: at(0))
        _ = forgetting.interested("c", now: at(14_000))
        _ = forgetting.request(from: "b", now: at(14_000))
        #expect(forgetting.tick(now: at(15_000)) { _ in 1 } == [.choke("a"), .unchoke("c")])
        #expect(forgetting.served == ["b", "c"])
        #expect(forgetting.waiting == [])
    }

    @Test("a peer that asks for nothing gives its slot up to one that waits; alone, it keeps it; one with pieces queued keeps it")
    func idlePeersMakeWay() {
        var choker = UploadChoker<String>(slots: 1, turn: .seconds(60), idleGrace: .seconds(1))
        _ = choker.interested("a", now: at(0))
        #expect(choker.tick(now: at(5_000)) { _ in 0 } == [], "nobody waits")
        #expect(choker.request(from: "a", now: at(5_000)).taken)
        _ = choker.interested("b", now: at(5_100))
        #expect(choker.tick(now: at(7_000)) { $0 == "a" ? 2 : 0 } == [], "a's pieces are still queued")
        choker.answered("a", now: at(7_000))
        #expect(choker.tick(now: at(7_999)) { _ in 0 } == [])
        #expect(choker.tick(now: at(8_000)) { _ in 0 } == [.choke("a"), .unchoke("b")])
    }

    @Test("an idle holder makes way before a busy one whose turn is over")
    func idleMakesWayFirst() {
        var choker = UploadChoker<String>(slots: 2, turn: .seconds(4), idleGrace: .seconds(1))
        _ = choker.interested("a", now: at(0))
        _ = choker.interested("b", now: at(1))
        _ = choker.interested("c", now: at(2))
        // a was granted first and is busy; b, granted later, has asked for nothing.
        #expect(choker.request(from: "a", now: at(4_000)).taken)
        #expect(choker.tick(now: at(4_100)) { $0 == "a" ? 1 : 0 } == [.choke("b"), .unchoke("c")])
        #expect(choker.served == ["a", "c"])
    }

    @Test("a peer that wants nothing more leaves its slot or its place in line; its slot goes to the longest waiting")
    func notInterestedMakesWay() {
        var choker = UploadChoker<String>(slots: 1)
        _ = choker.interested("a", now: at(0))
        _ = choker.interested("b", now: at(1))
        _ = choker.interested("c", now: at(2))
        #expect(choker.notInterested("b", now: at(3)) == [], "b only waited")
        #expect(choker.waiting == ["c"])
        #expect(choker.notInterested("a", now: at(4)) == [.choke("a"), .unchoke("c")])
        #expect(choker.served == ["c"] && choker.waiting.isEmpty)
        #expect(choker.interested("a", now: at(5)) == [.choke("a")], "interested again: it waits its turn")
    }

    @Test("a gone peer's slot goes to the longest waiting; a waiting peer not heard from is forgotten; the line is bounded")
    func goneAndForgotten() {
        var choker = UploadChoker<String>(slots: 1, turn: .seconds(60), forgetAfter: .seconds(15), maxWaiting: 3)
        _ = choker.interested("a", now: at(0))
        _ = choker.interested("b", now: at(0))
        _ = choker.interested("c", now: at(1_000))
        #expect(choker.gone("a", now: at(2_000)) == [.unchoke("b")])
        #expect(choker.gone("x", now: at(2_000)) == [], "never heard of")
        _ = choker.interested("d", now: at(2_000))
        _ = choker.interested("c", now: at(14_000))
        #expect(choker.request(from: "b", now: at(16_500)).taken)
        #expect(choker.tick(now: at(17_000)) { _ in 1 } == [])
        #expect(choker.waiting == ["c"], "d was not heard from for 15 s; c greeted again")
        for peer in ["e", "f"] { _ = choker.interested(peer, now: at(17_000)) }
        #expect(choker.interested("g", now: at(17_000)) == [.choke("g")])
        #expect(choker.waiting == ["c", "e", "f"], "the line is full: g is told to wait, and not queued")
    }

    @Test("a slot holder not heard from loses its slot; one whose turn ended waits as last heard, and is forgotten in time")
    func silentHoldersAreForgotten() {
        var choker = UploadChoker<String>(slots: 1, turn: .seconds(60), idleGrace: .seconds(1), forgetAfter: .seconds(15))
        _ = choker.interested("a", now: at(0))
        #expect(choker.tick(now: at(15_000)) { _ in 1 } == [.choke("a")], "silent for 15 s, pieces queued or not")
        #expect(choker.served.isEmpty && choker.waiting.isEmpty)
        _ = choker.interested("b", now: at(15_000))
        _ = choker.interested("c", now: at(15_000))
        #expect(choker.request(from: "b", now: at(16_000)).taken)
        #expect(choker.tick(now: at(19_000)) { _ in 0 } == [.choke("b"), .unchoke("c")])
        for time in stride(from: 20_000, through: 29_000, by: 1_000) { _ = choker.interested("c", now: at(time)) }
        #expect(choker.tick(now: at(30_999)) { _ in 1 } == [], "b was last heard at 16 s; c keeps its slot")
        #expect(choker.waiting == ["b"])
        _ = choker.tick(now: at(31_000)) { _ in 1 }
        #expect(choker.waiting.isEmpty, "forgotten 15 s after it was last heard, though it had a turn since")
    }

    @Test("no peer is served by two slots, and every waiting peer is served within a few turns")
    func everyoneServed() {
        var choker = UploadChoker<Int>(slots: 4, turn: .seconds(2), idleGrace: .seconds(1))
        var servedAt: [Int: Int] = [:]
        for peer in 0..<15 { _ = choker.interested(peer, now: at(0)) }
        for time in stride(from: 0, through: 10_000, by: 100) {
            for peer in choker.served where servedAt[peer] == nil { servedAt[peer] = time }
            for peer in choker.served { _ = choker.request(from: peer, now: at(time)); choker.answered(peer, now: at(time)) }
            _ = choker.tick(now: at(time)) { _ in 0 }
            for peer in 0..<15 where time % 5_000 == 0 { _ = choker.interested(peer, now: at(time)) }
            #expect(choker.served.count == 4)
            #expect(choker.served.isDisjoint(with: choker.waiting))
        }
        #expect(servedAt.count == 15)
        #expect(servedAt.values.max()! <= 8_000, "15 peers, 4 slots, 2 s turns: four rounds at most")
    }
}
