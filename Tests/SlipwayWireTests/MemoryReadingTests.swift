import CSystemShims
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the connection watch reads every tick and at every look: the resident
/// set through a `/proc/self/statm` descriptor kept open, and the heap in use.
/// Other tests of the process allocate and free meanwhile (one sends 100 MiB
/// frames), so each check leaves a quarter or half of 256 MiB as margin.
@Suite("Memory readings")
struct MemoryReadingTests {
    static let size = 256 << 20

    @Test("the resident set read through the open descriptor follows memory touched and given back")
    func residentFollowsTouchedMemory() throws {
        #expect(slipway_resident_bytes() > 0)
        let region = try #require(mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(region != MAP_FAILED)
        let bytes = region.bindMemory(to: UInt8.self, capacity: Self.size)
        for page in stride(from: 0, to: Self.size, by: 4_096) { bytes[page] = 1 }
        let touched = slipway_resident_bytes()
        munmap(region, Self.size)
        let released = slipway_resident_bytes()
        // A stale read (the same text again) or a failed one would show no difference.
        #expect(touched - released > Int64(Self.size) / 2, "resident \(touched) with 256 MiB touched, \(released) after it was unmapped")
        #expect(released > 0)
    }

    @Test("the heap in use counts an allocation before it is touched")
    func heapCountsAllocations() throws {
        let before = slipway_heap_in_use()
        let block = try #require(malloc(Self.size))
        let during = slipway_heap_in_use()
        free(block)
        let after = slipway_heap_in_use()
        #expect(during - before >= Int64(Self.size) * 3 / 4, "heap in use \(before) → \(during) with 256 MiB allocated")
        #expect(during - after >= Int64(Self.size) * 3 / 4, "heap in use \(during) → \(after) after the free")
    }
}
