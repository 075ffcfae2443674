/// What a download last told each connected peer of its interest (`PieceInterest`):
/// a peer gives its upload slots only to interested downloaders and forgets one it
/// has not heard from, so a change is told at once and everything again every
/// ``refresh``. Pure, in seconds: ``PieceDownload`` runs it on wall-clock time,
/// the distribution simulator on virtual time.
public struct PeerInterest: Sendable {
    /// Everything is told again this often.
    public static let refresh = 5.0
    private var told: [String: Bool] = [:]
    private var toldAt: Double?

    public init() {}

    /// The peers of `connected` to tell now, in name order, and whether this download
    /// wants any of their pieces: those whose answer changed, or all at a refresh.
    public mutating func due(connected: some Sequence<String>, picker: PiecePicker, now: Double) -> [(peer: String, interested: Bool)] {
        if toldAt.map({ now - $0 >= Self.refresh }) ?? true {
            toldAt = now
            told = [:]
        }
        return connected.sorted().compactMap { peer in
            let wants = picker.wants(from: peer)
            return told[peer] == wants ? nil : (peer, wants)
        }
    }

    /// `peer` was told.
    public mutating func told(_ peer: String, interested: Bool) { told[peer] = interested }

    /// A new connection to `peer`: it has been told nothing on it.
    public mutating func connected(_ peer: String) { told[peer] = nil }
}
