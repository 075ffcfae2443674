/// Pieces of one artifact a machine holds (or all of it), and those it is
/// receiving in blocks, as `PieceHave` says it.
struct PieceHolding: Equatable {
    var pieces: Set<Int> = []
    var complete = false
    var arriving: Set<Int> = []

    /// Adds what `other` says.
    mutating func merge(_ other: PieceHolding) {
        complete = complete || other.complete
        pieces = complete ? [] : pieces.union(other.pieces)
        arriving = complete ? [] : arriving.union(other.arriving).subtracting(pieces)
    }
}
