public import Foundation

/// A set of piece indices as bits (bit `i % 8` of byte `i / 8`): how a store tells
/// an uploader which pieces it already holds, in one bit per piece.
public struct PieceBitmap: Equatable, Sendable {
    /// The packed bits.
    public let bytes: Data

    /// The bitmap of `pieces` among `count` (indices outside `0..<count` are left out).
    public init(_ pieces: Set<Int>, count: Int) {
        var bits = [UInt8](repeating: 0, count: (count + 7) / 8)
        for index in pieces where index >= 0 && index < count { bits[index / 8] |= 1 << UInt8(index % 8) }
        bytes = Data(bits)
    }

    /// A bitmap received from a peer; any length is accepted (missing bytes mean "not held").
    public init(bytes: Data) {
        self.bytes = bytes
    }

    /// Whether piece `index` is in the set.
    public func contains(_ index: Int) -> Bool {
        guard index >= 0, index / 8 < bytes.count else { return false }
        return bytes[bytes.startIndex + index / 8] & (1 << UInt8(index % 8)) != 0
    }
}
