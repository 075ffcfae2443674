import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayWire

/// Why a request is answered with an `ErrorReply`: a code for programs, words for people.
struct Rejection: Error, Equatable {
    let code: Slipway_V1_ErrorCode
    let message: String

    init(_ code: Slipway_V1_ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    static func invalid(_ message: String) -> Rejection { Rejection(.invalidArgument, message) }
}

/// A message from the intake ROUTER (CI, the CLI, region controllers), decoded
/// and checked once: past this point every name, digest and id is valid.
enum IntakeRequest: Equatable {
    case submit(Slipway_V1_SubmitBuild)
    case cancel(JobID, reason: String)
    case job(JobID)
    case listJobs(status: JobStatus?, artifactName: String, limit: Int)
    case artifacts(digest: DigestPrefix?, name: String, limit: Int)
    case replication(Slipway_V1_ReplicationStatus, region: RegionName)
    case regionReport(Slipway_V1_RegionReport, region: RegionName)
    /// A global deploy (no regions) starts a rollout with `plan`; a regional one sets the overrides at once.
    /// The digest may be a prefix, which the coordinator resolves before anything changes.
    case deploy(ServiceName, DigestPrefix, regions: [RegionName], plan: String, setBy: String, newService: Bool)
    /// Removes regional overrides.
    case clearOverrides(ServiceName, regions: [RegionName], setBy: String)
    case rollback(ServiceName, regions: [RegionName], setBy: String)
    case rollout(ServiceName, id: UInt64?)
    case rolloutControl(ServiceName, RolloutMachine.Command, setBy: String)
    case serviceStatus(ServiceName, historyLimit: Int)
    case services
    case log(JobID, offset: UInt64, maxBytes: Int)
    case audit(sinceMicros: Int64, limit: Int)

    /// Decodes and checks `message`. `regions` are the coordinator's configured
    /// regions (any region name goes when it is empty).
    static func decode(_ message: WireMessage, regions: [String],
                       transports: Set<RepoTransport> = RepoTransport.defaultAllowed) throws(Rejection) -> IntakeRequest {
        do {
            return try decodeBody(message, regions: regions, transports: transports)
        } catch let error as Rejection {
            throw error
        } catch let error as WireError {
            throw .invalid(error.description)
        } catch {
            throw .invalid("\(error)")
        }
    }

    private static func decodeBody(_ message: WireMessage, regions: [String], transports: Set<RepoTransport>) throws -> IntakeRequest {
        switch message.type {
        case .submitBuild:
            let request = try message.body(as: Slipway_V1_SubmitBuild.self)
            do {
                try SubmissionValidator.validate(request, transports: transports)
            } catch {
                throw Rejection.invalid(error.message)
            }
            return .submit(request)
        case .cancelBuild:
            let request = try message.body(as: Slipway_V1_CancelBuild.self)
            let reason = SafeText.printable(request.reason, limit: 500)
            return .cancel(try jobID(request.jobID), reason: reason.isEmpty ? "cancelled by user" : reason)
        case .jobQuery:
            return .job(try jobID(try message.body(as: Slipway_V1_JobQuery.self).jobID))
        case .jobListQuery:
            let query = try message.body(as: Slipway_V1_JobListQuery.self)
            guard query.artifactName.isEmpty || SafeText.isName(query.artifactName, max: 128) else {
                throw Rejection.invalid("artifact name must be 1 to 128 characters of A-Z a-z 0-9 . _ -")
            }
            return .listJobs(status: JobStatus(query.status), artifactName: query.artifactName,
                             limit: query.limit == 0 ? 20 : min(Int(query.limit), 500))
        case .artifactQuery:
            let query = try message.body(as: Slipway_V1_ArtifactQuery.self)
            let digest = query.digest.isEmpty ? nil : try checked(DigestPrefix.self, query.digest)
            guard query.name.isEmpty || SafeText.isName(query.name, max: 128) else {
                throw Rejection.invalid("artifact name must be 1 to 128 characters of A-Z a-z 0-9 . _ -")
            }
            return .artifacts(digest: digest, name: query.name, limit: query.limit == 0 ? 20 : min(Int(query.limit), 500))
        case .replicationStatus:
            let report = try message.body(as: Slipway_V1_ReplicationStatus.self)
            _ = try checked(Digest.self, report.digest)
            let region = try knownRegion(report.region, regions)
            return .replication(report, region: region)
        case .regionReport:
            let report = try message.body(as: Slipway_V1_RegionReport.self)
            let region = try knownRegion(report.region, regions)
            guard report.counts.count <= 10_000, report.failures.count <= 100, report.missing.count <= 100, report.waves.count <= 1_000,
                  report.refusals.count <= 100 else {
                throw Rejection.invalid("a region report carries at most 10000 counts, 100 failures, 100 missing machines, 1000 waves and 100 refusals")
            }
            // The page cursor goes into a query: a service name or nothing (a NUL byte would fail the whole batch).
            guard report.vouchesAfter.isEmpty || SafeText.isName(report.vouchesAfter, max: 128) else {
                throw Rejection.invalid("vouches_after must be empty or a service name")
            }
            return .regionReport(report, region: region)
        case .deployRequest:
            let request = try message.body(as: Slipway_V1_DeployRequest.self)
            let (service, targets, setBy) = try targetScope(request.service, request.regions, request.setBy, regions)
            if request.clear {
                guard !targets.isEmpty, request.artifactDigest.isEmpty, request.plan.isEmpty else {
                    throw Rejection.invalid("clear removes regional overrides: it takes regions, and no artifact or plan")
                }
                return .clearOverrides(service, regions: targets, setBy: setBy)
            }
            guard request.plan.isEmpty || targets.isEmpty else {
                throw Rejection.invalid("a plan orders a global rollout; a regional override is set at once")
            }
            guard request.plan.isEmpty || SafeText.isName(request.plan, max: 64) else { throw Rejection.invalid("a plan name is 1 to 64 characters of A-Z a-z 0-9 . _ -") }
            return .deploy(service, try checked(DigestPrefix.self, request.artifactDigest), regions: targets, plan: request.plan, setBy: setBy,
                           newService: request.newService)
        case .rollbackRequest:
            let request = try message.body(as: Slipway_V1_RollbackRequest.self)
            let (service, targets, setBy) = try targetScope(request.service, request.regions, request.setBy, regions)
            return .rollback(service, regions: targets, setBy: setBy)
        case .rolloutQuery:
            let query = try message.body(as: Slipway_V1_RolloutQuery.self)
            return .rollout(try checked(ServiceName.self, query.service), id: query.rolloutID == 0 ? nil : query.rolloutID)
        case .rolloutControl:
            let request = try message.body(as: Slipway_V1_RolloutControl.self)
            let (service, _, setBy) = try targetScope(request.service, [], request.setBy, regions)
            let command: RolloutMachine.Command
            switch request.action {
            case .pause: command = .pause
            case .resume: command = .resume
            case .promote: command = .promote
            case .abort: command = .abort
            default: throw Rejection.invalid("a rollout action is pause, resume, promote or abort")
            }
            return .rolloutControl(service, command, setBy: setBy)
        case .auditQuery:
            let query = try message.body(as: Slipway_V1_AuditQuery.self)
            guard query.sinceUnixMicros >= 0 else { throw Rejection.invalid("since must not be negative") }
            return .audit(sinceMicros: query.sinceUnixMicros, limit: query.limit == 0 ? 100 : min(Int(query.limit), 1_000))
        case .serviceListQuery:
            _ = try message.body(as: Slipway_V1_ServiceListQuery.self)
            return .services
        case .serviceStatusQuery:
            let query = try message.body(as: Slipway_V1_ServiceStatusQuery.self)
            return .serviceStatus(try checked(ServiceName.self, query.service),
                                  historyLimit: query.historyLimit == 0 ? 20 : min(Int(query.historyLimit), 1_000))
        case .logQuery:
            let query = try message.body(as: Slipway_V1_LogQuery.self)
            return .log(try jobID(query.jobID), offset: query.offset,
                        maxBytes: query.maxBytes == 0 ? 256 << 10 : min(Int(query.maxBytes), 1 << 20))
        default:
            throw Rejection(.unsupported, "the coordinator's intake does not handle \(message.type)")
        }
    }

    private static func checked<Value: CheckedValue>(_ type: Value.Type, _ text: String) throws(Rejection) -> Value {
        do {
            return try Value(text)
        } catch {
            throw .invalid(error.description)
        }
    }

    /// A malformed job id names no job: `not_found`, as for a well-formed one that does not exist.
    private static func jobID(_ text: String) throws(Rejection) -> JobID {
        guard let id = JobID(validating: text) else { throw Rejection(.notFound, "no job \(SafeText.printable(text))") }
        return id
    }

    private static func knownRegion(_ text: String, _ regions: [String]) throws(Rejection) -> RegionName {
        let region = try checked(RegionName.self, text)
        guard regions.isEmpty || regions.contains(region.rawValue) else {
            throw .invalid("region \(region) is not one of this coordinator's regions (\(regions.joined(separator: ", ")))")
        }
        return region
    }

    private static func targetScope(_ service: String, _ regionTexts: [String], _ setBy: String,
                                    _ regions: [String]) throws(Rejection) -> (ServiceName, [RegionName], String) {
        let name = try checked(ServiceName.self, service)
        guard regionTexts.count <= 64, Set(regionTexts).count == regionTexts.count else {
            throw .invalid("regions must be distinct, at most 64")
        }
        var targets: [RegionName] = []
        for text in regionTexts { targets.append(try knownRegion(text, regions)) }
        guard (1...128).contains(setBy.utf8.count), SafeText.printable(setBy, limit: 128) == setBy else {
            throw .invalid("set_by must name who asked: 1 to 128 printable characters")
        }
        return (name, targets, setBy)
    }
}
