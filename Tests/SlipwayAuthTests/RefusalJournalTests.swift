import SlipwayAuth
import SlipwayProto
import Testing

@Suite("The refusal journal a region's reports drain")
struct RefusalJournalTests {
    @Test("refusals wait, oldest first, 100 to a report, until a report that carried them is acknowledged")
    func drains() throws {
        let journal = RefusalJournal()
        let empty = journal.pending()
        #expect(empty.entries.isEmpty && empty.through == 0 && empty.notListed == 0 && empty.epoch == journal.epoch && journal.epoch != 0)
        let agent = try Identity(role: .agent, name: "m9")
        for index in 0..<150 { journal.record(.uploadBegin, from: index == 0 ? agent : nil, at: "store of region eu", reason: "no \(index)") }
        let first = journal.pending()
        #expect(first.entries.count == 100 && first.through == 100)
        #expect(first.entries[0].identity == "agent/m9" && first.entries[0].action == "uploadBegin" && first.entries[0].detail == "no 0")
        #expect(first.entries[1].identity == "" && first.entries[0].atUnixMicros > 0)
        #expect(journal.pending() == first, "nothing is dropped before it is acknowledged")
        journal.acknowledge(through: first.through)
        let second = journal.pending()
        #expect(second.entries.count == 50 && second.through == 150 && second.entries[0].detail == "no 100")
        journal.acknowledge(through: second.through)
        #expect(journal.pending().entries.isEmpty && journal.pending().through == 150, "with none waiting, the last acknowledged number")
    }

    @Test("past its capacity a refusal is counted, not kept")
    func bounded() {
        let journal = RefusalJournal()
        for _ in 0..<(RefusalJournal.capacity + 25) { journal.record(.agentRegister, from: nil, at: "tracker of region eu", reason: "x") }
        #expect(journal.pending().notListed == 25 && journal.pending().through == 100)
        journal.acknowledge(through: UInt64(RefusalJournal.capacity))
        journal.record(.agentRegister, from: nil, at: "tracker of region eu", reason: "after")
        #expect(journal.pending().entries.map(\.detail) == ["after"] && journal.pending().through == UInt64(RefusalJournal.capacity) + 1)
    }
}
