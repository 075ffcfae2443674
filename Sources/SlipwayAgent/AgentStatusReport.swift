import SlipwayCore
import SlipwayProto

/// What an agent tells its region's tracker about one service: where its
/// rollout stands, why (a refused target first), and download progress.
enum AgentStatusReport {
    static func status(machineID: String, region: String, service: String, rollout: Rollout, refusal: String?,
                       progress: (held: Int, total: Int)?) -> Slipway_V1_AgentStatus {
        var status = Slipway_V1_AgentStatus()
        status.machineID = machineID
        status.region = region
        status.service = service
        status.artifactDigest = rollout.statusDigest
        status.state = rollout.state
        status.failedDigest = rollout.failedDigest
        // 250 characters stay under the tracker's 1024-byte limit whatever their encoding.
        let reason = [refusal, rollout.reason.isEmpty ? nil : rollout.reason].compactMap { $0 }.joined(separator: "; ")
        status.reason = String(SafeText.printable(reason, limit: 250))
        status.targetVersion = rollout.target?.version ?? 0
        if let progress {
            status.piecesHave = UInt32(progress.held)
            status.piecesTotal = UInt32(progress.total)
        }
        return status
    }

    /// The status without download progress: a change of state goes to the
    /// tracker at once, progress waits for the next heartbeat.
    static func withoutProgress(_ status: Slipway_V1_AgentStatus) -> Slipway_V1_AgentStatus {
        var status = status
        status.piecesHave = 0
        return status
    }
}
