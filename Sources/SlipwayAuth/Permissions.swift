public import SlipwayProto

/// Which role may send which message type to a Slipway server, written once.
///
/// A server checks every message it receives against this table with the
/// identity its ZAP handler vouched for, before decoding the body. Some types
/// also need a check against the object they name, which only the handler can
/// make (it knows who submitted a job or which worker holds an attempt): the
/// table says which. Types that only servers send (acknowledgements, replies,
/// assignments, events) are refused from anyone. The switch has no default, so
/// a new message type does not compile until it has a line here.
public enum Permissions {
    /// What a message needs beyond its sender's role.
    public enum ObjectRule: String, Sendable, Hashable {
        /// Cancel: an `operator`, or the `ci` identity that submitted the job.
        case ciOnlyItsOwnJobs = "ci_only_its_own_jobs"
        /// Results and log chunks: only the worker the attempt was assigned to.
        case assignedWorker = "assigned_worker"
        /// Region reports and replication status: only the region of that name.
        case ownRegion = "own_region"
        /// Agent registration: a machine id belongs to the first key that registered it.
        case boundMachine = "bound_machine"
    }

    /// Who may send `type`, and the object rule it needs, if any.
    public static func rule(for type: Slipway_V1_MessageType) -> (roles: Set<Role>, object: ObjectRule?) {
        switch type {
        case .submitBuild: ([.ci, .operator], nil)
        case .cancelBuild: ([.ci, .operator], .ciOnlyItsOwnJobs)
        case .jobQuery, .jobListQuery, .logQuery, .artifactQuery, .serviceStatusQuery, .serviceListQuery, .rolloutQuery: ([.ci, .operator], nil)
        case .deployRequest, .rollbackRequest, .rolloutControl, .auditQuery: ([.operator], nil)
        case .workRequest, .workerHeartbeat: ([.worker], nil)
        case .logChunk, .buildResult: ([.worker], .assignedWorker)
        case .uploadBegin, .uploadCommit, .pieceData, .artifactManifest: ([.worker], nil)
        case .manifestRequest, .pieceRequest: ([.agent, .region], nil)
        case .pieceHave, .pieceInterest, .peerKeyQuery: ([.agent], nil)
        case .replicationStatus, .regionReport: ([.region], .ownRegion)
        case .agentRegister, .agentStatus, .peerListRequest: ([.agent], .boundMachine)
        case .snapshotRequest: ([.region, .ci, .operator], nil)
        case .unspecified, .submitBuildAck, .cancelBuildAck, .errorReply, .jobInfo, .jobList, .logData, .logAck,
             .workAssignment, .coordinatorHeartbeat, .abortJob, .resultAck, .uploadAck, .artifactList, .targetChange,
             .peerList, .peerKeyAnswer, .pieceChoke, .deployReply, .serviceStatus, .serviceList, .agentTargets, .event, .snapshotEnd, .auditList, .rolloutStatus,
             .UNRECOGNIZED:
            ([], nil)
        }
    }

    /// The outcome of checking a message's sender against the table.
    public enum Decision: Sendable, Hashable {
        /// The role may send it; `object` is the check the handler still owes, if any.
        case allowed(object: ObjectRule?)
        /// Refused before anything happens; `reason` is for the `permission_denied` reply.
        case denied(reason: String)
    }

    /// Checks `sender` (nil: no identity, e.g. no ZAP handler vouched) for `type`.
    public static func check(_ type: Slipway_V1_MessageType, from sender: Identity?) -> Decision {
        let (roles, object) = rule(for: type)
        guard !roles.isEmpty else { return .denied(reason: "\(type) is not a request any peer may send") }
        guard let sender else { return .denied(reason: "\(type) needs an authenticated \(describe(roles)) key") }
        guard roles.contains(sender.role) else {
            return .denied(reason: "\(sender) may not send \(type): it needs \(describe(roles))")
        }
        return .allowed(object: object)
    }

    private static func describe(_ roles: Set<Role>) -> String {
        let names = Role.allCases.filter(roles.contains).map(\.rawValue)
        return names.count == 1 ? "the \(names[0]) role" : "one of the roles \(names.joined(separator: ", "))"
    }
}
