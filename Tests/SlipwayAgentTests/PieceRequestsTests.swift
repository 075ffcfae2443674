import SlipwayAgent
import SlipwayCore
import Testing

@Suite struct PieceRequestsTests {
    static let mib = 1 << 20

    /// Four pieces of 1 MiB: slow after 10 s and timed out after 30 s until pieces have been timed.
    func requests() -> PieceRequests { PieceRequests(lengths: Array(repeating: Self.mib, count: 4), slowAfter: 10, timeout: 30) }

    /// Asks what the picker picks, at `now`.
    func ask(_ requests: inout PieceRequests, _ picker: inout PiecePicker, now: Double, seed: UInt64 = 1) -> [PiecePicker.Request] {
        var random = SplitMix64(seed: seed)
        let picked = picker.next(using: &random)
        for request in picked { requests.asked(request.piece, of: request.source, now: now) }
        return picked
    }

    @Test("a slow request is asked elsewhere and its peer left out; a word from the peer brings it back, silence to the timeout drops it")
    func slowThenHeardOrDropped() throws {
        for answers in [true, false] {
            var requests = requests()
            var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
            picker.peer("a", has: [0, 1, 2, 3])
            let asked = try #require(ask(&requests, &picker, now: 0).first { $0.source == .peer("a") }?.piece)
            #expect(requests.expire(now: 9.9, picker: &picker).isEmpty)
            #expect(requests.expire(now: 10, picker: &picker) == [.slow(piece: asked, machine: "a", after: 10)])
            #expect(requests.sent[asked] == nil && picker.availability(asked) == 0 && requests.isCoolingDown("a"),
                    "asked elsewhere; the peer's pieces no longer count")
            if answers {
                requests.heard(from: "a", piece: asked, now: 12)
                #expect(!requests.isCoolingDown("a") && requests.slow.isEmpty, "alive: the next peer list brings it back")
                #expect(requests.pieceTimes.secondsPerByte == [12 / Double(Self.mib)], "the late piece is timed")
                #expect(requests.expire(now: 40, picker: &picker).allSatisfy { $0.dropped != "a" })
            } else {
                #expect(requests.expire(now: 29.9, picker: &picker).isEmpty)
                let dropped = requests.expire(now: 30, picker: &picker)
                #expect(dropped == [.peerTimedOut(machine: "a", pieces: [asked])] && dropped.first?.dropped == "a")
                requests.endCoolDowns(now: 89.9)
                #expect(requests.isCoolingDown("a"), "left out for a minute from the drop")
                requests.endCoolDowns(now: 90)
                #expect(!requests.isCoolingDown("a"))
            }
        }
    }

    @Test("the manifest's piece lengths keep the slow limit and timeout, and start with nothing asked")
    func forPieces() {
        var requests = PieceRequests(lengths: [], slowAfter: 7, timeout: 21)
        requests.asked(0, of: .seed, now: 0)
        let fresh = requests.forPieces([Self.mib, 3 * Self.mib])
        #expect(fresh.isIdle && fresh.pieceTimes.fallback == 7 && fresh.pieceTimes.timeout == 21)
        #expect(fresh.pieceTimes.typicalBytes == Double(2 * Self.mib) && fresh.timeout(1) == 21 * 1.5)
    }

    @Test("requests time out in piece order, whatever order they were asked in; the store is never dropped")
    func timeoutsInPieceOrder() {
        var requests = requests()
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        for (piece, source) in [(3, PieceSource.seed), (1, .seed), (2, .seed), (0, .seed)] { requests.asked(piece, of: source, now: 0) }
        let expired = requests.expire(now: 30, picker: &picker)
        #expect(expired == (0..<4).map { .timedOut(piece: $0, source: .seed) })
        #expect(expired.allSatisfy { $0.dropped == nil } && requests.isIdle)
    }

    @Test("a long piece gets a longer timeout than an average one")
    func timeoutScalesWithLength() {
        var requests = PieceRequests(lengths: [Self.mib / 4, 4 * Self.mib, Self.mib / 4, Self.mib / 2], slowAfter: 10, timeout: 30)
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        requests.asked(0, of: .seed, now: 0)
        requests.asked(1, of: .seed, now: 0)
        #expect(requests.timeout(0) == 30 && requests.timeout(1) == 30 * 4 / (5.0 / 4))
        #expect(requests.expire(now: 30, picker: &picker) == [.timedOut(piece: 0, source: .seed)])
        #expect(requests.sent[1] != nil, "the long piece is still awaited")
    }

    @Test("a choke rests the peer until it unchokes or the choke lapses; the refused request goes back to missing")
    func chokeAndLapse() {
        var requests = requests()
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        picker.seedChoked = true  // the peer alone
        picker.peer("a", has: [0, 1, 2, 3])
        let first = ask(&requests, &picker, now: 0)
        #expect(first.count == 1)
        requests.choked(by: "a", refused: first[0].piece, now: 1, picker: &picker)
        #expect(requests.isIdle && ask(&requests, &picker, now: 2).isEmpty, "nothing asked of a peer that choked")
        #expect(requests.expire(now: 12.9, picker: &picker).isEmpty && ask(&requests, &picker, now: 12.9).isEmpty)
        #expect(requests.expire(now: 13, picker: &picker).isEmpty)
        #expect(ask(&requests, &picker, now: 13).map(\.source) == [.peer("a")], "asked again as if it had never choked")
        requests.choked(by: "a", refused: nil, now: 14, picker: &picker)
        requests.unchoked(by: "a", picker: &picker)
        #expect(requests.chokedAt.isEmpty)
    }

    @Test("the store's choke lapses too; its unchoke holds a slot")
    func storeRestAndUnchoke() {
        var requests = requests()
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        let first = ask(&requests, &picker, now: 0)
        #expect(first.map(\.source) == [.seed])
        requests.storeRested(refused: first[0].piece, now: 1, picker: &picker)
        #expect(requests.isIdle && picker.seedChoked && !picker.seedSlotHeld)
        _ = requests.expire(now: 13, picker: &picker)
        #expect(!picker.seedChoked && requests.storeChokedAt == nil)
        requests.storeRested(refused: nil, now: 14, picker: &picker)
        requests.storeUnchoked(picker: &picker)
        #expect(!picker.seedChoked && picker.seedSlotHeld && requests.storeChokedAt == nil)
    }

    @Test("a piece the store chose instead answers the request for the piece asked; pieces from peers are timed")
    func arrivals() {
        var requests = requests()
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        requests.asked(0, of: .seed, now: 0)
        requests.arrived(2, from: .seed, asked: 0, now: 1, picker: &picker)
        #expect(requests.sent[0] == nil && requests.pieceTimes.secondsPerByte.isEmpty, "answered; the store's pieces are not timed")
        requests.asked(1, of: .peer("a"), now: 1)
        requests.arrived(1, from: .peer("b"), asked: nil, now: 2, picker: &picker)
        #expect(requests.sent[1]?.source == .peer("a"), "another peer's copy does not answer a's request")
        requests.arrived(1, from: .peer("a"), asked: nil, now: 3, picker: &picker)
        #expect(requests.isIdle && requests.pieceTimes.secondsPerByte == [2 / Double(Self.mib)])
    }

    @Test("a peer that is not holding the artifact any more, or banned, or disconnected: nothing more is awaited from it")
    func peersGone() {
        var requests = requests()
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 4, seedLimit: 1)
        picker.seedChoked = true
        picker.peer("a", has: [0, 1])
        picker.peer("b", has: [2, 3])
        _ = ask(&requests, &picker, now: 0)
        #expect(requests.sent.count == 4)
        requests.notHeld(by: "a", picker: &picker)
        #expect(requests.sent.keys.sorted() == [2, 3] && picker.availability(0) == 0)
        requests.banned("b")
        #expect(requests.isIdle)
        requests.asked(3, of: .peer("c"), now: 1)
        requests.disconnect("c", picker: &picker)
        #expect(requests.isIdle && !requests.isCoolingDown("c"), "closed, not dropped")
        requests.asked(3, of: .peer("c"), now: 1)
        requests.declined(3, by: "c", picker: &picker)
        #expect(requests.isIdle)
    }
}
