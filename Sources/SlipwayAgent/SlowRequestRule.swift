/// When a request to a peer is slow enough to ask elsewhere: four times the
/// median of how long the last pieces from peers took, request to arrival (at
/// least 2 s, at most the request timeout), or a fallback until three were
/// timed. Pure, in seconds: ``PieceDownload`` feeds it wall-clock times, the
/// distribution simulator virtual ones.
public struct SlowRequestRule: Sendable {
    /// The latest times kept.
    public static let kept = 16
    /// Below this, a request is never slow: a peer's first pieces share its link with others.
    public static let floor = 2.0
    /// The latest pieces' times, oldest first.
    public private(set) var seconds: [Double] = []

    public init() {}

    /// Records how long one piece took.
    public mutating func timed(_ seconds: Double) {
        self.seconds = Array((self.seconds + [seconds]).suffix(Self.kept))
    }

    /// How long a request may take before it is slow.
    public func slowAfter(fallback: Double, timeout: Double) -> Double {
        guard seconds.count >= 3 else { return fallback }
        return min(max(seconds.sorted()[seconds.count / 2] * 4, Self.floor), timeout)
    }
}
