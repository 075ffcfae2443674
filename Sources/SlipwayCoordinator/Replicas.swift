import Logging
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// The replication half of the coordinator: regions' replica reports (which
/// make artifacts deployable) and garbage collection of old artifacts.
struct Replicas {
    let queries: CoordinatorQueries
    let logger: Logger
    /// Artifacts older than this that are not a current or previous target are
    /// deleted everywhere; nil keeps every artifact.
    let retention: Duration?

    /// Records a region's report on its copy of an artifact and answers with the replica as recorded.
    func record(_ report: Slipway_V1_ReplicationStatus, from peer: [UInt8], id: String, in batch: inout Batch) throws {
        let (recorded, events) = try queries.recordReplica(batch.db, report)
        guard let recorded else { throw Rejection(.notFound, "no artifact \(report.digest); it may have been collected") }
        batch.publish(events)
        batch.reply(peer, to: id, recorded)
        if report.state == .complete || report.state == .failed {
            logger.info("replica report", metadata: ["digest": "\(report.digest)", "region": "\(report.region)",
                                                    "state": "\(report.state)", "error": "\(SafeText.printable(report.error))"])
        }
    }

    /// Deletes one batch of expired artifacts (the loop runs it again while it finds some).
    /// - Returns: how many were deleted.
    func collectGarbage(in batch: inout Batch) throws -> Int {
        guard let retention else { return 0 }
        let seconds = Int(retention.components.seconds)
        let events = try queries.collectGarbage(batch.db, retentionSeconds: seconds, limit: Self.batchSize)
        // Worker rows of processes long gone are history nobody reads.
        try batch.db.query("DELETE FROM workers WHERE last_heartbeat < now() - make_interval(secs => $1)", [.int(max(seconds, 86_400))])
        batch.publish(events)
        if !events.isEmpty {
            logger.info("artifacts collected", metadata: ["count": "\(events.count)", "retention_seconds": "\(seconds)"])
        }
        return events.count
    }

    /// Artifacts deleted per transaction.
    static let batchSize = 100
}
