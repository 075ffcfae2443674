/// When a request to a peer is slow enough to ask elsewhere, and when it has
/// timed out, judged per byte: content-defined pieces run from a quarter to four
/// times the average length, so one limit per piece either gives up on a live
/// peer in the middle of a long piece or waits too long for a short one.
///
/// Slow: four times the median seconds per byte of the last pieces from peers
/// (request to arrival), times the piece's length; at least 2 s, at most the
/// piece's timeout; until three were timed, the fallback. The fallback and the
/// timeout are for a piece of the typical (average) length and grow with longer
/// pieces, never shrink for shorter ones. Pure, in seconds: ``PieceDownload``
/// feeds it wall-clock times, the distribution simulator virtual ones.
public struct SlowRequestRule: Sendable {
    /// The latest times kept.
    public static let kept = 16
    /// Below this, a request is never slow: a peer's first pieces share its link with others.
    public static let floor = 2.0
    /// Until pieces have been timed: how long a typical piece may take before it is slow.
    public let fallback: Double
    /// How long a typical piece may go unanswered before its peer is dropped.
    public let timeout: Double
    /// The artifact's average piece length, once its manifest is known (0 until then: no scaling).
    public var typicalBytes = 0.0
    /// The latest pieces' seconds per byte, oldest first.
    public private(set) var secondsPerByte: [Double] = []
    /// The median of ``secondsPerByte``, kept: the rule is asked for every request on every pump.
    private var median = 0.0

    /// A rule with a typical piece's slow fallback and timeout, in seconds.
    public init(fallback: Double, timeout: Double) {
        self.fallback = fallback
        self.timeout = timeout
    }

    /// Records how long a piece of `bytes` took.
    public mutating func timed(_ seconds: Double, bytes: Int) {
        guard bytes > 0 else { return }
        secondsPerByte = Array((secondsPerByte + [seconds / Double(bytes)]).suffix(Self.kept))
        median = secondsPerByte.sorted()[secondsPerByte.count / 2]
    }

    /// How long a request for `bytes` may go unanswered before its peer is dropped.
    public func timeout(bytes: Int) -> Double { timeout * scale(bytes) }

    /// How long a request for `bytes` may take before it is slow.
    public func slowAfter(bytes: Int) -> Double {
        let limit = timeout(bytes: bytes)
        guard secondsPerByte.count >= 3 else { return min(fallback * scale(bytes), limit) }
        return min(max(median * Double(bytes) * 4, Self.floor), limit)
    }

    private func scale(_ bytes: Int) -> Double {
        typicalBytes > 0 ? max(1, Double(bytes) / typicalBytes) : 1
    }
}
