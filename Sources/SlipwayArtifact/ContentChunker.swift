import SlipwayCore
/// Cuts bytes into pieces where their content says, so that an edit moves only
/// the boundaries near it and two builds that differ a little share most pieces.
///
/// FastCDC (Xia et al., USENIX ATC 2016): a gear rolling hash over the last 64
/// bytes, no cut before `minimum`, a hard cut at `maximum`, and "normalized"
/// chunking: a stricter mask before `average` and a looser one after, which
/// keeps lengths close to the average.
///
/// The gear table and masks decide every boundary: changing them changes every
/// piece of every artifact once, so a delta against builds cut before the
/// change would ship everything. They are fixed here for that reason.
public struct ContentChunker: Sendable, Equatable {
    /// No piece is shorter, except an artifact's last.
    public let minimum: Int
    /// The length pieces cluster around.
    public let average: Int
    /// No piece is longer.
    public let maximum: Int
    private let strictMask: UInt64
    private let looseMask: UInt64

    /// A chunker whose pieces average `average` bytes (rounded to a power of two,
    /// 4 KiB…4 MiB), from a quarter of that to four times it. The default, 1 MiB:
    /// a one-line change to a 107 MiB Swift binary shipped 11 % of it (256 KiB:
    /// 2.6 %), but 256 KiB pieces took the distribution benchmark from 1.85 to
    /// 2.86 × its bound, and a 10 GB manifest past the 1 MiB a control message
    /// may carry (docs/benchmarks.md, *Delta deploys*).
    public init(average requested: Int = 1 << 20) {
        let bits = max(12, min(22, Int.bitWidth - 1 - max(1, requested).leadingZeroBitCount))
        average = 1 << bits
        minimum = average / 4
        maximum = average * 4
        // The top bits of a gear hash depend on the widest window (64 bytes).
        strictMask = ~UInt64(0) << UInt64(64 - (bits + 2))
        looseMask = ~UInt64(0) << UInt64(64 - (bits - 2))
    }

    /// The length of the first piece of `bytes`, or nil when that needs more bytes
    /// than are given: `bytes` is all that is left when `atEnd`.
    public func cut(_ bytes: UnsafeRawBufferPointer, atEnd: Bool) -> Int? {
        let available = bytes.count
        if available <= minimum { return atEnd ? available : nil }
        let normal = min(average, available)
        let limit = min(maximum, available)
        var hash: UInt64 = 0
        var index = minimum
        return Self.gear.withUnsafeBufferPointer { gear in
            while index < normal {
                hash = (hash << 1) &+ gear[Int(bytes[index])]
                index += 1
                if hash & strictMask == 0 { return index }
            }
            while index < limit {
                hash = (hash << 1) &+ gear[Int(bytes[index])]
                index += 1
                if hash & looseMask == 0 { return index }
            }
            return limit == maximum || atEnd ? limit : nil
        }
    }

    /// 256 pseudo-random words from SplitMix64 with a fixed seed (see the type's note).
    static let gear: [UInt64] = {
        var generator = SplitMix64(seed: 0x534c_4950_5741_5931)  // "SLIPWAY1"
        return (0..<256).map { _ in generator.next() }
    }()
}
