@testable import SlipwayRegionStore
import Testing

@Suite struct PieceSendCountsTests {
    @Test("the store sends the offered piece it has sent least, the asker's order breaking ties")
    func leastSentFirst() {
        var counts = PieceSendCounts()
        var sent: [Int] = []
        for _ in 0..<5 {
            let piece = counts.choose("d", asked: 2, alternatives: [0, 1], pieceCount: 4)
            counts.count("d", piece: piece)
            sent.append(piece)
        }
        #expect(sent == [2, 0, 1, 2, 0], "each offered piece once before any twice; piece 3 was never offered")
        #expect(counts.timesSent("d", piece: 3) == 0 && counts.timesSent("d", piece: 2) == 2)
        #expect(counts.choose("d", asked: 3, alternatives: [], pieceCount: 4) == 3, "no alternatives: the asked piece")
    }

    @Test("alternatives out of range or past the bound are ignored; a choice alone counts nothing")
    func hostileOffers() {
        var counts = PieceSendCounts()
        #expect(counts.choose("d", asked: 0, alternatives: [4, UInt32.max], pieceCount: 4) == 0)
        counts.count("d", piece: 0)
        counts.count("d", piece: 99)
        let late = Array(repeating: UInt32(0), count: PieceSendCounts.maxAlternatives) + [1]
        #expect(counts.choose("d", asked: 0, alternatives: late, pieceCount: 4) == 0, "piece 1 came after the bound")
        _ = counts.choose("d", asked: 1, alternatives: [2], pieceCount: 4)
        #expect(counts.timesSent("d", piece: 1) == 0 && counts.timesSent("d", piece: 0) == 1)
    }

    @Test("counts are kept for a bounded number of artifacts, the oldest forgotten")
    func bounded() {
        var counts = PieceSendCounts()
        for artifact in 0...PieceSendCounts.maxArtifacts {
            _ = counts.choose("d\(artifact)", asked: 0, alternatives: [1], pieceCount: 2)
            counts.count("d\(artifact)", piece: 0)
        }
        #expect(counts.timesSent("d0", piece: 0) == 0, "the first artifact was forgotten")
        #expect(counts.timesSent("d\(PieceSendCounts.maxArtifacts)", piece: 0) == 1)
        #expect(counts.choose("d1", asked: 0, alternatives: [1], pieceCount: 2) == 1, "a kept artifact remembers its counts")
    }
}
