import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayStore
import SlipwayWire

/// The deployment half of the coordinator: target builds (deploy, rollback)
/// and the regions' aggregated machine reports.
struct Targets {
    let queries: CoordinatorQueries
    let logger: Logger
    let vouchPacer = VouchPacer()

    func deploy(_ service: ServiceName, _ digest: Digest, regions: [RegionName], setBy: String, actor: Identity?,
                from peer: [UInt8], id: String, in batch: inout Batch) throws {
        let (reply, events) = try queries.deploy(batch.db, service: service.rawValue, digest: digest.rawValue,
                                                 regions: regions.map(\.rawValue), setBy: setBy, actor: actor?.userID)
        changed(reply, events, action: "deploy", service: service, from: peer, id: id, in: &batch)
    }

    /// Removes regional overrides, so those regions follow the global target again.
    func clear(_ service: ServiceName, regions: [RegionName], setBy: String, actor: Identity?, from peer: [UInt8], id: String,
               in batch: inout Batch) throws {
        let (reply, events) = try queries.clearOverrides(batch.db, service: service.rawValue, regions: regions.map(\.rawValue), setBy: setBy,
                                                         actor: actor?.userID)
        changed(reply, events, action: "clear", service: service, from: peer, id: id, in: &batch)
    }

    /// A resent request (the same envelope id, from a client that missed the answer) is applied once.
    func rollback(_ service: ServiceName, regions: [RegionName], setBy: String, actor: Identity?,
                  from peer: [UInt8], id: String, in batch: inout Batch) throws {
        let (reply, events) = try queries.rollback(batch.db, service: service.rawValue, regions: regions.map(\.rawValue), setBy: setBy,
                                                   actor: actor?.userID, requestID: id)
        changed(reply, events, action: "rollback", service: service, from: peer, id: id, in: &batch)
    }

    /// Replaces the region's latest report; the reply echoes the region.
    func record(_ report: Slipway_V1_RegionReport, region: RegionName, from peer: [UInt8], id: String, in batch: inout Batch) throws {
        // Only a report with refusals can repeat or undo what was recorded (an empty one carries
        // the region's last acknowledged number), so only then is the previous one read.
        var previous: Slipway_V1_RegionReport?
        if !report.refusals.isEmpty || report.refusalsNotListed > 0 {
            previous = try queries.regionReport(batch.db, region: region.rawValue)
            batch.audits += RegionRefusals.audits(report, previous: previous)
        }
        var stored = RegionRefusals.stored(report, previous: previous)
        // The vouch question (and anything a region put in the answer's fields) is not part of what it reports.
        stored.vouchesWanted = false
        stored.vouchesAfter = ""
        stored.vouches = []
        stored.vouchesAnswered = false
        stored.vouchesLast = false
        try queries.recordRegionReport(batch.db, stored)
        var ack = Slipway_V1_RegionReport()
        ack.region = region.rawValue
        if report.vouchesWanted, vouchPacer.allow(region.rawValue) {
            // A page that cannot be made is left unanswered (the region asks again); the report is recorded all the same.
            do {
                (ack.vouches, ack.vouchesLast) = try queries.vouches(batch.db, region: region.rawValue, after: report.vouchesAfter)
                ack.vouchesAnswered = true
            } catch let error where !(error is PGError) {
                logger.error("cannot vouch for a region's targets", metadata: ["region": "\(region)", "error": "\(error)"])
            }
        }
        batch.reply(peer, to: id, ack)
    }

    private func changed(_ reply: Slipway_V1_DeployReply, _ events: [OutboxEvent], action: String, service: ServiceName,
                         from peer: [UInt8], id: String, in batch: inout Batch) {
        batch.publish(events)
        batch.reply(peer, to: id, reply)
        for change in reply.targets where !reply.unchanged.contains(change.region) {
            logger.info("target changed", metadata: ["action": "\(action)", "service": "\(service)",
                                                    "region": "\(change.region.isEmpty ? "(global)" : change.region)",
                                                    "digest": "\(change.artifactDigest)", "version": "\(change.version)",
                                                    "set_by": "\(change.setBy)"])
        }
    }
}
