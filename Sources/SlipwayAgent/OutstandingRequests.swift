/// A download's piece requests in flight, by message id: the piece each asked
/// for and the source it was asked of. An answer counts only when it comes from
/// that source, and a request is forgotten once it is answered, times out or
/// loses its connection. What else stays is bounded by the download: a request
/// to a slow peer that has spoken since (so it no longer times out) stays until
/// that peer's connection closes or the download ends.
struct OutstandingRequests {
    struct Request: Equatable {
        let piece: Int
        let source: PieceSource
    }

    private(set) var byID: [String: Request] = [:]

    /// The message ids of the requests in flight.
    var ids: Set<String> { Set(byID.keys) }

    mutating func record(_ id: String, piece: Int, source: PieceSource) {
        byID[id] = Request(piece: piece, source: source)
    }

    /// The piece request `id` asked of `source`; nil if `id` names no request in flight to `source`.
    func piece(answering id: String, from source: PieceSource) -> Int? {
        guard let request = byID[id], request.source == source else { return nil }
        return request.piece
    }

    /// As ``piece(answering:from:)``, and the request is settled.
    mutating func settle(_ id: String, from source: PieceSource) -> Int? {
        guard let piece = piece(answering: id, from: source) else { return nil }
        byID[id] = nil
        return piece
    }

    /// Forgets the request for `piece` made of `source` (it timed out). A request for
    /// the same piece made of another source since (the first was slow) stays.
    mutating func forget(piece: Int, askedOf source: PieceSource) {
        let request = Request(piece: piece, source: source)
        byID = byID.filter { $0.value != request }
    }

    /// Forgets every request made of `source`: its connection is closed.
    mutating func forget(_ source: PieceSource) {
        byID = byID.filter { $0.value.source != source }
    }
}
