import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore

/// The rollout half of the coordinator: starts a rollout for every global
/// deploy, moves each one with its ``RolloutMachine`` (once a second, on the
/// regions' latest reports, and on operator commands), and carries out what
/// the machine decides: target changes and events, in the turn's transaction.
/// Everything a rollout is lives in PostgreSQL, so a standby that takes over
/// continues every rollout where it was.
struct Rollouts {
    let queries: CoordinatorQueries
    let plans: RolloutPlans
    let logger: Logger

    /// Starts a rollout of `service` to `digest`, or answers with the one already going there.
    func deploy(_ service: ServiceName, _ digest: Digest, plan name: String, setBy: String, actor: Identity?, requestID: String,
                in batch: inout Batch) throws -> Slipway_V1_DeployReply {
        let db = batch.db
        guard try db.query("SELECT 1 FROM artifacts WHERE digest = $1", [.text(digest.rawValue)]).first != nil else {
            throw Rejection(.notFound, "no artifact \(digest)")
        }
        try queries.requireReplicated(db, digest: digest.rawValue, regions: [])
        guard let plan = plans.plan(name, regions: queries.regions) else {
            throw Rejection(.invalidArgument, "no rollout plan '\(name)'; plans: \(plans.names.joined(separator: ", "))")
        }
        var reply = Slipway_V1_DeployReply()
        reply.pinnedRegions = try queries.pinnedRegions(db, service: service.rawValue)
        let active = try queries.activeRollout(db, service: service.rawValue)
        let current = try queries.currentTarget(db, service: service.rawValue, region: "")
        if let active, active.machine.to == digest.rawValue {
            // A resent deploy, or the same build again: the rollout already going there answers.
            reply.rollout = active.status()
            reply.unchanged = [""]
            reply.targets = try queries.targets(db, service: service.rawValue).filter { $0.region.isEmpty }
            return reply
        }
        // What every machine runs now: the target's build, unless the target is still a
        // rollout's (one in progress, or a first rollout reverted to nothing): then its stable build.
        let running: String?
        if let active {
            // Superseded: its stable build, or, for a service's first rollout still going well,
            // the build it brings (the only one the fleet has); never one a failed gate halted on.
            running = active.machine.from ?? (active.machine.state == .halted ? nil : active.machine.to)
        } else if current?.rolloutID != nil {
            running = current?.stable
        } else {
            running = current?.digest
        }
        if active == nil, current?.rolloutID == nil, let current, current.digest == digest.rawValue {
            reply.unchanged = [""]
            reply.targets = try queries.targets(db, service: service.rawValue).filter { $0.region.isEmpty }
            // Only a rollout that brought this build answers for it (not one that went elsewhere and came back).
            if let last = try queries.rollouts(db, service: service.rawValue, limit: 1).first,
               last.machine.to == digest.rawValue, last.machine.state == .succeeded {
                reply.rollout = last.status()
            }
            return reply
        }
        let from = running
        return try start(service.rawValue, from: from, to: digest.rawValue, plan: plan, superseding: active, setBy: setBy,
                         actor: actor?.userID, requestID: requestID, action: "deploy", reply: reply, in: &batch)
    }

    /// Sends the service back: aborts its rollout if one is under way, else
    /// starts one (plan `all`, pausing rather than returning on failure) back
    /// to the build the last deploy replaced.
    func rollback(_ service: ServiceName, setBy: String, actor: Identity?, requestID: String, in batch: inout Batch) throws
        -> Slipway_V1_DeployReply {
        let db = batch.db
        if try db.query("SELECT 1 FROM deployments WHERE service = $1 AND request_id = $2 LIMIT 1",
                        [.text(service.rawValue), .text(requestID)]).first != nil {
            var reply = Slipway_V1_DeployReply()
            reply.targets = try queries.targets(db, service: service.rawValue).filter { $0.region.isEmpty }
            reply.unchanged = [""]
            return reply
        }
        var reply = Slipway_V1_DeployReply()
        reply.pinnedRegions = try queries.pinnedRegions(db, service: service.rawValue)
        if let active = try queries.activeRollout(db, service: service.rawValue) {
            let stored = try command(active, .abort, by: setBy, requestID: requestID, in: &batch)
            reply.rollout = stored.status()
            reply.targets = try queries.targets(db, service: service.rawValue).filter { $0.region.isEmpty }
            return reply
        }
        // The build the current one replaced: the start of the rollout that brought it (one that
        // succeeded, or a deploy from before rollouts); never a build a rollout halted on.
        guard let current = try queries.currentTarget(db, service: service.rawValue, region: "")?.digest,
              let previous = try db.query("""
                  SELECT from_digest AS d FROM (
                      SELECT from_digest, id AS rank FROM rollouts
                      WHERE service = $1 AND to_digest = $2 AND state = 'succeeded' AND from_digest IS NOT NULL
                      UNION ALL
                      SELECT from_digest, -id FROM deployments
                      WHERE service = $1 AND region = '' AND to_digest = $2 AND action = 'deploy' AND rollout_id IS NULL AND from_digest IS NOT NULL
                  ) candidates ORDER BY rank DESC LIMIT 1
                  """, [.text(service.rawValue), .text(current)]).first?.optionalString("d")
        else {
            throw Rejection(.failedPrecondition, "\(service) has no previous target for the global target to roll back to")
        }
        guard try db.query("SELECT 1 FROM artifacts WHERE digest = $1", [.text(previous)]).first != nil else {
            throw Rejection(.failedPrecondition, "the previous target \(previous) no longer exists")
        }
        try queries.requireReplicated(db, digest: previous, regions: [])
        var plan = RolloutPlan.all()
        plan.pauseOnFailure = true
        plan.waveDeadlineSeconds = Int(plans.waveDeadline.components.seconds)
        return try start(service.rawValue, from: current, to: previous, plan: plan, superseding: nil, setBy: setBy, actor: actor?.userID,
                         requestID: requestID, action: "rollback", reply: reply, in: &batch)
    }

    private func start(_ service: String, from: String?, to: String, plan: RolloutPlan, superseding active: StoredRollout?, setBy: String,
                       actor: String?, requestID: String, action: String, reply: Slipway_V1_DeployReply, in batch: inout Batch) throws
        -> Slipway_V1_DeployReply {
        let db = batch.db
        let now = try queries.databaseNow(db)
        let id = try queries.nextRolloutID(db)
        if var old = active {
            // Ended first: at most one rollout per service is active.
            let effects = old.machine.supersede(by: id, now: now)
            try carryOut(effects, on: &old, setBy: setBy, in: &batch)
        }
        try queries.createRollout(db, id: id, service: service, from: from, to: to, plan: plan, setBy: setBy, actor: actor, requestID: requestID)
        var stored = StoredRollout(machine: RolloutMachine(id: id, service: service, from: from, to: to, plan: plan), setBy: setBy, actor: actor,
                                   createdAt: now, updatedAt: now)
        let effects = stored.machine.start(now: now)
        try carryOut(effects, on: &stored, setBy: setBy,
                     history: CoordinatorQueries.TargetHistory(action: action, actor: actor, requestID: requestID, rolloutID: id), in: &batch)
        var reply = reply
        reply.rollout = stored.status()
        reply.targets = try queries.targets(db, service: service).filter { $0.region.isEmpty }
        logger.info("rollout started", metadata: ["rollout": "\(id)", "service": "\(service)", "from": "\(from ?? "-")", "to": "\(to)",
                                                  "plan": "\(plan.name)", "waves": "\(plan.waves.count)", "set_by": "\(setBy)"])
        return reply
    }

    /// An operator's command on the service's rollout.
    /// A resent request (the same envelope id: its answer was lost) is answered, not applied again.
    func control(_ service: ServiceName, _ action: RolloutMachine.Command, setBy: String, requestID: String,
                 in batch: inout Batch) throws -> Slipway_V1_RolloutStatus {
        if let done = try queries.rolloutHandling(batch.db, service: service.rawValue, requestID: requestID) {
            let (views, failures, missing) = try queries.regionViews(batch.db, service: service.rawValue)
            return done.status(views: views, failures: failures, missing: missing)
        }
        guard let active = try queries.activeRollout(batch.db, service: service.rawValue) else {
            if let last = try queries.rollouts(batch.db, service: service.rawValue, limit: 1).first {
                throw Rejection(.failedPrecondition, "rollout \(last.machine.id) of \(service) already ended: \(last.machine.state.rawValue)")
            }
            throw Rejection(.notFound, "\(service) has no rollout")
        }
        let stored = try command(active, action, by: setBy, requestID: requestID, in: &batch)
        let (views, failures, missing) = try queries.regionViews(batch.db, service: service.rawValue)
        return stored.status(views: views, failures: failures, missing: missing)
    }

    private func command(_ active: StoredRollout, _ action: RolloutMachine.Command, by who: String, requestID: String,
                         in batch: inout Batch) throws -> StoredRollout {
        var stored = active
        stored.lastRequestID = requestID
        let effects: [RolloutMachine.Effect]
        let now = try queries.databaseNow(batch.db)
        do {
            effects = try stored.machine.command(action, by: who, now: now)
        } catch {
            throw Rejection(.failedPrecondition, error.message)
        }
        // The revert of an abort is recorded with the request, so a resent rollback finds it done.
        try carryOut(effects, on: &stored, setBy: who, revertRequestID: requestID, in: &batch)
        logger.info("rollout \(action)", metadata: ["rollout": "\(stored.machine.id)", "service": "\(stored.machine.service)", "by": "\(who)",
                                                   "state": "\(stored.machine.state.rawValue)"])
        return stored
    }

    /// A service's rollout (the newest, or `id`), with the regions' latest progress.
    func status(_ service: ServiceName, id: UInt64?, db: PGConnection) throws -> Slipway_V1_RolloutStatus {
        guard let stored = try queries.rollouts(db, service: service.rawValue, id: id, limit: 1).first else {
            throw Rejection(.notFound, id.map { "\(service) has no rollout \($0)" } ?? "\(service) has no rollout")
        }
        let (views, failures, missing) = try queries.regionViews(db, service: service.rawValue)
        return stored.status(views: views, failures: failures, missing: missing)
    }

    /// Judges every progressing rollout on the regions' latest reports.
    /// - Parameter readRecently: asked once the judging time is read, whether the leader has
    ///   read its intake recently enough for the reports it holds to be fresh at that time.
    ///   A leader paused after it decided to judge (a stopped process, a stalled VM) finds
    ///   every report old on waking; it judges nothing then, and its loop holds judging
    ///   until the regions have reported again.
    func tick(staleAfter: Duration, readRecently: () -> Bool, in batch: inout Batch) throws {
        let db = batch.db
        let progressing = try queries.progressingRollouts(db, logger: logger)
        guard !progressing.isEmpty else { return }
        let now = try queries.databaseNow(db)
        guard readRecently() else { return }
        let known = try queries.knownRegions(db)
        for var stored in progressing {
            let before = stored.machine
            let pinned = try queries.pinnedRegions(db, service: stored.machine.service)
            let (views, failures, missing) = try queries.regionViews(db, service: stored.machine.service)
            let effects = stored.machine.tick(now: now, views: views, regions: known, pinned: Set(pinned),
                                              staleAfterMicros: Int64(staleAfter.components.seconds) * 1_000_000)
            guard stored.machine != before else { continue }
            if stored.machine.state == .halted || stored.machine.state == .rolledBack {
                stored.failures = StoredRollout.failing(stored.machine.to, failures, missing).prefix(100).map(FailedMachine.init)
            }
            try carryOut(effects, on: &stored, setBy: "rollout \(stored.machine.id)", in: &batch)
            if !effects.isEmpty {
                logger.info("rollout moved", metadata: ["rollout": "\(stored.machine.id)", "service": "\(stored.machine.service)",
                                                       "state": "\(stored.machine.state.rawValue)", "wave": "\(stored.machine.wave + 1)",
                                                       "reason": "\(stored.machine.reason)"])
            }
        }
    }

    /// Rollouts by state, for the metrics.
    func counts(_ db: PGConnection) throws -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: RolloutMachine.State.allCases.map { ($0.rawValue, 0) })
        for row in try db.query("SELECT state, count(*) AS n FROM rollouts GROUP BY state").rows {
            counts[try row.string("state")] = try row.int("n")
        }
        return counts
    }

    /// Applies the machine's effects in order (target changes, events) and saves it.
    private func carryOut(_ effects: [RolloutMachine.Effect], on stored: inout StoredRollout, setBy: String,
                          history: CoordinatorQueries.TargetHistory? = nil, revertRequestID: String? = nil, in batch: inout Batch) throws {
        let db = batch.db
        let machine = stored.machine
        var history = history  // the start's deploy or rollback row, written once
        for effect in effects {
            switch effect {
            case .applyWaves(let shares):
                let (change, event) = try queries.writeTarget(db, service: machine.service, region: "", digest: machine.to,
                                                              rollout: (machine.id, machine.from, shares, machine.plan.prefetch), setBy: setBy,
                                                              history: history)
                history = nil
                stored.machine.waveVersion = change.version
                batch.publish([event])
            case .finish:
                let (_, event) = try queries.writeTarget(db, service: machine.service, region: "", digest: machine.to, setBy: setBy, history: nil)
                batch.publish([event])
            case .revert:
                let back = CoordinatorQueries.TargetHistory(action: machine.state == .aborted ? "abort" : "rollback", actor: nil,
                                                            requestID: revertRequestID, rolloutID: machine.id)
                let (_, event): (Slipway_V1_TargetChange, OutboxEvent)
                if let from = machine.from {
                    (_, event) = try queries.writeTarget(db, service: machine.service, region: "", digest: from, setBy: setBy, history: back)
                } else {
                    // The service's first rollout: nothing to go back to, so no machine is left in a wave.
                    (_, event) = try queries.writeTarget(db, service: machine.service, region: "", digest: machine.to,
                                                         rollout: (machine.id, nil, [], false), setBy: setBy, history: back)
                }
                batch.publish([event])
            case .event(let type):
                batch.publish([try OutboxEvent.make(type, digest: machine.to, service: machine.service, payload: stored.status())])
            }
        }
        try queries.save(db, stored)
    }
}
