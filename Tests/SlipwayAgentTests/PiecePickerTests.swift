import SlipwayAgent
import SlipwayCore
import Testing

@Suite struct PiecePickerTests {
    @Test func asksPeersForTheRarestPieceFirst() {
        var random = SplitMix64(seed: 1)
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        picker.peer("a", has: [0, 1, 2, 3])
        picker.peer("b", has: [0, 1, 2])
        // Piece 3 is held by one peer only: it goes first, to the only one who has it.
        let requests = picker.next(using: &random)
        #expect(requests.first == .init(piece: 3, source: .peer("a")))
        #expect(requests.count == 2, "one request per peer at a limit of 1")
        #expect(requests.allSatisfy { $0.source != .seed }, "the store is not asked while peers have the pieces")
    }

    @Test func aPeersHaveMessagesAddToWhatItIsKnownToHold() throws {
        var random = SplitMix64(seed: 9)
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 4, seedLimit: 1)
        picker.peer("a", has: [0])
        picker.peer("a", adds: [2, 7, -1])
        #expect(picker.availability(0) == 1 && picker.availability(2) == 1, "added to, not replaced")
        let first = picker.next(using: &random)
        #expect(first.filter { $0.source == .peer("a") }.map(\.piece).sorted() == [0, 2],
                "asked at once for what it said it has; indices outside the artifact ignored")
        // The one piece neither the store (one request) nor a peer was asked for, heard of from another listed peer.
        let other = try #require(Set([1, 3]).subtracting(first.map(\.piece)).first)
        picker.peer("c", adds: [other])
        #expect(picker.availability(other) == 0, "a peer no list named is not asked on its word")
        picker.peer("b", has: [])
        picker.peer("b", adds: [other])
        #expect(picker.next(using: &random) == [.init(piece: other, source: .peer("b"))])
        _ = picker.received(other, from: .peer("b"), valid: false)
        picker.peer("b", adds: [1, 3])
        #expect(picker.availability(1) == 0 && picker.availability(3) == 0, "a banned peer's haves count for nothing")
        picker.declined(0, from: .peer("a"))
        picker.peer("a", adds: [1])
        #expect(picker.availability(1) == 0, "a peer that declined is left alone until the next list")
    }

    @Test func theSeedServesOnlyPiecesNoPeerHasWithinItsBound() {
        var random = SplitMix64(seed: 2)
        var picker = PiecePicker(pieceCount: 10, perPeerLimit: 4, seedLimit: 2)
        picker.peer("a", has: [0, 1])
        let requests = picker.next(using: &random)
        let fromSeed = requests.filter { $0.source == .seed }.map(\.piece)
        #expect(fromSeed.count == 2)
        #expect(fromSeed.allSatisfy { $0 >= 2 }, "pieces a peer has never come from the store")
        #expect(Set(requests.filter { $0.source == .peer("a") }.map(\.piece)) == [0, 1])
    }

    @Test func aPeerServingABadPieceIsBannedAndThePieceAskedElsewhere() {
        var random = SplitMix64(seed: 3)
        var picker = PiecePicker(pieceCount: 2, perPeerLimit: 2, seedLimit: 1)
        picker.peer("liar", has: [0, 1])
        #expect(picker.next(using: &random).allSatisfy { $0.source == .peer("liar") })
        #expect(picker.received(0, from: .peer("liar"), valid: false) == .rejected)
        #expect(picker.banned == ["liar"])
        picker.peer("liar", has: [0, 1])  // a later peer list cannot bring it back
        #expect(picker.availability(0) == 0)
        let retry = picker.next(using: &random)
        #expect(retry.allSatisfy { $0.source == .seed } && retry.count == 1)
    }

    @Test func aResumedDownloadAsksOnlyForMissingPiecesAndIgnoresDuplicates() {
        var random = SplitMix64(seed: 4)
        var picker = PiecePicker(pieceCount: 3, held: [0, 2], perPeerLimit: 4)
        picker.peer("a", has: [0, 1, 2])
        #expect(picker.next(using: &random) == [.init(piece: 1, source: .peer("a"))])
        #expect(picker.received(1, from: .peer("a"), valid: true) == .accepted)
        #expect(picker.received(1, from: .peer("a"), valid: true) == .ignored)
        #expect(picker.isComplete)
    }

    @Test func aFailedRequestOrAVanishedPeerReturnsThePiece() {
        var random = SplitMix64(seed: 5)
        var picker = PiecePicker(pieceCount: 2, perPeerLimit: 2, seedLimit: 1)
        picker.peer("a", has: [0])
        picker.peer("b", has: [1])
        _ = picker.next(using: &random)
        picker.failed(0, from: .peer("a"))
        #expect(picker.availability(0) == 0, "a peer that said 'not here' no longer counts as having it")
        picker.remove("b")
        #expect(picker.outstanding(.peer("b")) == 0)
        let again = picker.next(using: &random)
        #expect(again.map(\.source) == [.seed], "both pieces are missing again; the seed takes one at its bound")
    }

    @Test func aChokingPeerIsNotAskedUntilItUnchokesAndStillCountsAsAHolder() throws {
        var random = SplitMix64(seed: 8)
        var picker = PiecePicker(pieceCount: 3, perPeerLimit: 2, seedLimit: 1)
        picker.peer("a", has: [0, 1, 2])
        picker.peer("b", has: [2])
        let first = picker.next(using: &random)
        #expect(first.count == 3 && first.allSatisfy { $0.source != .seed })
        let refused = try #require(first.first { $0.source == .peer("a") })
        picker.choked(by: "a", refused: refused.piece)
        #expect(picker.outstanding(.peer("a")) == first.count { $0.source == .peer("a") } - 1, "the other request a took still comes")
        #expect(picker.availability(0) == 1, "a still holds what it holds")
        #expect(picker.next(using: &random).isEmpty, "a is not asked while it chokes, nor the seed for what a holds; b holds only what it is sending")
        picker.unchoked(by: "a")
        #expect(picker.next(using: &random).contains(.init(piece: refused.piece, source: .peer("a"))), "asked again once unchoked")
        picker.choked(by: "a")
        picker.unchoked(by: "a")  // the choke lapsed
        #expect(!picker.chokedBy.contains("a"), "a choke lapses: a is asked again")
        picker.choked(by: "a")
        picker.remove("a")
        picker.peer("a", has: [0, 1, 2])
        #expect(!picker.chokedBy.contains("a"), "a peer that went and came back starts unchoked, as its server tells it anew")
    }

    @Test func interestFollowsWhatAPeerHoldsThatIsNotHeldHere() {
        var picker = PiecePicker(pieceCount: 4, held: [0])
        picker.peer("a", has: [0, 1])
        #expect(picker.wants(from: "a"))
        #expect(picker.received(1, from: .seed, valid: true) == .accepted)
        #expect(!picker.wants(from: "a"), "everything a holds is held here now")
        picker.peer("a", adds: [2, 3])
        #expect(picker.wants(from: "a"))
        picker.failed(2, from: .peer("a"))
        #expect(picker.wants(from: "a"), "it still holds 3")
        picker.failed(3, from: .peer("a"))
        #expect(!picker.wants(from: "a"), "a said 'not here' for both")
        picker.peer("a", has: [3])
        #expect(picker.wants(from: "a"), "a fresh list counts again")
        #expect(!picker.wants(from: "b"), "a peer never listed")
    }

    @Test func aLateAnswerFromAnotherSourceFreesTheSlotOfTheRetry() {
        var random = SplitMix64(seed: 6)
        var picker = PiecePicker(pieceCount: 2, perPeerLimit: 1, seedLimit: 1)
        picker.peer("a", has: [0])
        #expect(Set(picker.next(using: &random)) == [.init(piece: 0, source: .peer("a")), .init(piece: 1, source: .seed)])
        picker.failed(0, from: .peer("a"))  // timed out: piece 0 goes to the seed once it is free
        #expect(picker.received(1, from: .seed, valid: true) == .accepted)
        #expect(picker.next(using: &random) == [.init(piece: 0, source: .seed)])
        // a's answer arrives after all; the seed's request for it must not hold the seed's only slot.
        #expect(picker.received(0, from: .peer("a"), valid: true) == .accepted)
        #expect(picker.outstanding(.seed) == 0)
        #expect(picker.isComplete)
    }

    /// 16 agents starting together, exchanging pieces in rounds: the store
    /// serves each piece about once, not once per agent (measured: 96 pieces of
    /// 64 with one seed request per agent; 128 with two).
    @Test func sixteenAgentsTakeLittleMoreThanOneCopyFromTheStore() {
        var random = SplitMix64(seed: 42)
        let pieces = 64, agents = (0..<16).map { "m\($0)" }
        var pickers = Dictionary(uniqueKeysWithValues: agents.map { ($0, PiecePicker(pieceCount: pieces, perPeerLimit: 4, seedLimit: 1)) })
        var seedServed = 0, rounds = 0
        while !pickers.values.allSatisfy(\.isComplete), rounds < 500 {
            rounds += 1
            for agent in agents {
                for other in agents where other != agent { pickers[agent]!.peer(other, has: pickers[other]!.held) }
            }
            var deliveries: [(agent: String, request: PiecePicker.Request)] = []
            for agent in agents { deliveries += pickers[agent]!.next(using: &random).map { (agent, $0) } }
            for delivery in deliveries {
                if delivery.request.source == .seed { seedServed += 1 }
                _ = pickers[delivery.agent]!.received(delivery.request.piece, from: delivery.request.source, valid: true)
            }
        }
        let finished = pickers.values.allSatisfy { $0.isComplete }
        #expect(finished, "finished in \(rounds) rounds")
        #expect(seedServed <= 2 * pieces, "the store served \(seedServed) pieces for a \(pieces)-piece artifact")
    }
}

@Suite struct SeedStripeTests {
    @Test("with a stripe, the seed is asked only for this agent's share, until peers cannot help")
    func stripe() {
        var random = SystemRandomNumberGenerator()
        var picker = PiecePicker(pieceCount: 8, seedLimit: 8)
        picker.seedStripe = (index: 1, count: 4)
        picker.peer("p", has: [])
        #expect(Set(picker.next(using: &random).map(\.piece)) == [1, 5], "only pieces 1 and 5 are this agent's share")
        _ = picker.received(1, from: .seed, valid: true)
        _ = picker.received(5, from: .seed, valid: true)
        picker.peer("p", has: [0])
        #expect(picker.next(using: &random) == [.init(piece: 0, source: .peer("p"))], "a peer is busy: no seed outside the stripe")
        _ = picker.received(0, from: .peer("p"), valid: true)
        let fallback = picker.next(using: &random)
        #expect(fallback.allSatisfy { $0.source == .seed } && Set(fallback.map(\.piece)) == [2, 3, 4, 6, 7],
                "nothing left for peers to give: the rest comes from the seed")
    }
}

@Suite struct PiecePickerStoreChoiceTests {
    @Test("a store request offers the other pieces no peer holds, its stripe's first; the store's choice frees the asked piece")
    func offersAlternatives() throws {
        var random = SplitMix64(seed: 3)
        var picker = PiecePicker(pieceCount: 8, perPeerLimit: 1, seedLimit: 1)
        picker.seedStripe = (index: 1, count: 4)
        picker.peer("p", has: [0])
        let requests = picker.next(using: &random)
        let store = try #require(requests.first { $0.source == .seed })
        #expect(requests.contains(.init(piece: 0, source: .peer("p"))))
        #expect([1, 5].contains(store.piece), "its own share first")
        #expect(Set([store.piece] + store.alternatives) == Set(1..<8), "every piece no peer holds, each once")
        #expect(Set(store.alternatives.prefix(1)).isSubset(of: [1, 5]), "the rest of its share before the others")

        let chosen = store.alternatives.last!
        picker.storeChose(chosen, insteadOf: store.piece)
        #expect(picker.received(chosen, from: .seed, valid: true) == .accepted)
        #expect(picker.outstanding(.seed) == 0, "the asked piece is free again")
        let next = picker.next(using: &random)
        #expect(next.count == 1 && next[0].source == .seed && !next[0].alternatives.contains(chosen))
        picker.storeChose(4, insteadOf: 0)  // not asked of the store: nothing changes
        #expect(picker.outstanding(.peer("p")) == 1)
    }

    @Test("a store that chokes the downloader is asked nothing until it unchokes it")
    func storeChoke() {
        var random = SplitMix64(seed: 4)
        var picker = PiecePicker(pieceCount: 4, perPeerLimit: 1, seedLimit: 1)
        picker.peer("p", has: [])
        picker.seedChoked = true
        #expect(picker.next(using: &random).isEmpty)
        picker.peer("p", adds: [2])
        #expect(picker.next(using: &random) == [.init(piece: 2, source: .peer("p"))], "peers are still asked")
        picker.seedChoked = false
        #expect(picker.next(using: &random).map(\.source) == [.seed])
    }

    @Test("a downloader holding a store slot keeps the store sending pieces no peer holds, outside its stripe and while peers are busy")
    func storeSlotHolder() throws {
        var random = SplitMix64(seed: 5)
        var picker = PiecePicker(pieceCount: 8, perPeerLimit: 1, seedLimit: 1)
        picker.seedStripe = (index: 0, count: 8)
        picker.peer("p", has: [1, 2])
        _ = picker.received(0, from: .seed, valid: true)
        // Its stripe (piece 0) is held and its peer is busy: without a slot the store is left alone.
        let first = picker.next(using: &random)
        #expect(first.count == 1 && first[0].source == .peer("p"))

        picker.seedSlotHeld = true
        let store = try #require(picker.next(using: &random).first)
        #expect(store.source == .seed && (3..<8).contains(store.piece), "a piece no peer holds, though outside its stripe")
        #expect(Set([store.piece] + store.alternatives) == Set(3..<8), "every piece no peer holds is a choice; those its busy peer holds are not")

        // What is left only its busy peer holds: the store is not asked for that.
        for piece in 3..<8 { _ = picker.received(piece, from: .seed, valid: true) }
        #expect(picker.next(using: &random).isEmpty)
    }
}

@Suite struct PiecePickerRarityTests {
    @Test("haves raise rarities in place: a piece no peer holds still goes to the store while every peer is busy")
    func havesKeepOrder() {
        var random = SplitMix64(seed: 7)
        var picker = PiecePicker(pieceCount: 11, perPeerLimit: 1, seedLimit: 1)
        picker.peer("a", has: [10])
        let first = picker.next(using: &random)
        #expect(first.contains(.init(piece: 10, source: .peer("a"))) && first.count == 2)
        let fromSeed = first.first { $0.source == .seed }!.piece
        // The peer now holds every piece but one, learned from its haves and then from a list.
        let lacking = (0..<10).first { $0 != fromSeed }!
        picker.peer("a", adds: Set(0..<10).subtracting([lacking]).subtracting([fromSeed]))
        picker.peer("a", has: Set(0...10).subtracting([lacking]))
        #expect(picker.availability(lacking) == 0 && picker.availability(fromSeed) == 1)
        #expect(picker.received(fromSeed, from: .seed, valid: true) == .accepted)
        #expect(picker.next(using: &random) == [.init(piece: lacking, source: .seed)])
    }
}
