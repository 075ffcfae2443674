import SlipwayProto

/// What one region's controller last said about a rollout's wave, as the gate reads it.
struct RegionView: Equatable, Sendable {
    var region: String
    /// When the coordinator received the region's latest report (database clock, µs); nil: never.
    var receivedAtMicros: Int64?
    /// The wave progress for the rollout's service in that report, if any.
    var progress: Slipway_V1_WaveProgress?
}

/// The health gate of a wave: judges the regions' reports against the wave's
/// limits. Pure. A gate that cannot see enough never passes: stale reports and
/// silent machines make it inconclusive, so the rollout pauses.
struct RolloutGate {
    /// What the gate sees.
    enum Verdict: Equatable {
        /// Enough machines run the new build healthy and few enough failed.
        case holding
        /// Not yet: regions still applying the wave or machines still installing.
        case waiting(String)
        /// Too many machines failed on the new build.
        case failed(String)
        /// The gate cannot see enough to judge (stale reports, silent machines).
        case inconclusive(String)
    }

    let rolloutID: UInt64
    /// The target version that carries the current wave: older reports are not about it.
    let waveVersion: UInt64
    let wave: RolloutPlan.Wave
    /// The regions the waves so far cover (each with machines to judge).
    let regions: [String]
    let staleAfterMicros: Int64

    func judge(_ views: [String: RegionView], now: Int64) -> Verdict {
        var failed = 0
        var failing: [String] = []
        var waiting: [String] = []
        var unseen: [String] = []
        for region in regions {
            guard let view = views[region], let received = view.receivedAtMicros else {
                unseen.append("region \(region) has never reported")
                continue
            }
            let age = (now - received) / 1_000_000
            guard now - received <= staleAfterMicros else {
                unseen.append("region \(region)'s last report is \(age)s old")
                continue
            }
            guard let progress = view.progress, progress.rolloutID == rolloutID, progress.targetVersion >= waveVersion else {
                waiting.append("region \(region) has not applied the wave yet")
                continue
            }
            failed += Int(progress.failed)
            if progress.failed > 0 { failing.append("\(region): \(progress.failed) of \(progress.selected)") }
            let required = (Int(progress.selected) * wave.minHealthyPerMille + 999) / 1_000
            let visible = Int(progress.selected) - Int(progress.failed) - Int(progress.missing)
            if Int(progress.healthy) >= required { continue }
            if visible < required, progress.missing > 0 {
                unseen.append("region \(region): \(progress.missing) of \(progress.selected) machines in the wave are silent")
            } else {
                waiting.append("region \(region): \(progress.healthy) of \(progress.selected) healthy, \(required) needed")
            }
        }
        if failed > wave.maxFailed {
            return .failed("\(failed) machine(s) failed on the new build (\(failing.joined(separator: ", "))); the wave allows \(wave.maxFailed)")
        }
        if !unseen.isEmpty { return .inconclusive(unseen.joined(separator: "; ")) }
        if !waiting.isEmpty { return .waiting(waiting.joined(separator: "; ")) }
        return .holding
    }
}
