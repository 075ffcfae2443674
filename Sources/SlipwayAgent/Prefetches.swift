/// The builds this machine fetches ahead of its wave (a rollout whose plan
/// says `prefetch`): at most one per service, never installed from here, and
/// after a failed fetch not tried again before a pause. Pure: the agent loop
/// asks which are due and tells it what failed.
struct Prefetches {
    private var ahead: [String: String] = [:]
    private var retryAt: [String: ContinuousClock.Instant] = [:]
    /// How long a failed fetch waits before it is tried again.
    static let retryPause: Duration = .seconds(10)

    /// Sets the build `service` fetches ahead (nil: none). - Returns: whether it changed.
    mutating func set(_ digest: String?, for service: String) -> Bool {
        guard ahead[service] != digest else { return false }
        ahead[service] = digest
        retryAt = retryAt.filter { ahead.values.contains($0.key) }
        return true
    }

    /// Every build fetched ahead (kept on disk).
    var digests: Set<String> { Set(ahead.values) }

    /// The builds to fetch now, those not paused after a failure, by digest (not in hash order).
    func due(now: ContinuousClock.Instant) -> [String] {
        ahead.values.filter { retryAt[$0].map { now >= $0 } ?? true }.sorted()
    }

    /// A fetch of `digest` failed: if it is fetched ahead, it waits before the next try.
    mutating func failed(_ digest: String, now: ContinuousClock.Instant) {
        if ahead.values.contains(digest) { retryAt[digest] = now + Self.retryPause }
    }
}
