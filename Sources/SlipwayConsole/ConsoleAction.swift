import SlipwayCore
import SlipwayProto

/// Something an operator asks the console to do, parsed once from a form or
/// an API body; every field is checked before the coordinator hears of it.
enum ConsoleAction: Sendable, Equatable {
    case deploy(service: ServiceName, artifact: DigestPrefix, plan: String, region: RegionName?, newService: Bool)
    case rollback(service: ServiceName, region: RegionName?)
    case control(service: ServiceName, Slipway_V1_RolloutAction)
    case cancel(JobID)

    /// The word in URLs, forms and the audit trail: `deploy`, `rollback`, `pause`, …
    var word: String {
        switch self {
        case .deploy: "deploy"
        case .rollback: "rollback"
        case .control(_, let action): Self.controlWords.first { $0.value == action }?.key ?? "control"
        case .cancel: "cancel"
        }
    }

    static let controlWords: [String: Slipway_V1_RolloutAction] = ["pause": .pause, "resume": .resume, "promote": .promote, "abort": .abort]

    /// Builds the action `word` from named fields (form fields or JSON keys); a clear 400 otherwise.
    static func parse(_ word: String, service: String?, fields: [String: String]) throws(ConsoleError) -> ConsoleAction {
        func serviceName() throws(ConsoleError) -> ServiceName {
            guard let service, !service.isEmpty else { throw .badInput("name the service") }
            do { return try ServiceName(service) } catch { throw .badInput("service: \(error)") }
        }
        func region() throws(ConsoleError) -> RegionName? {
            guard let text = fields["region"], !text.isEmpty else { return nil }
            do { return try RegionName(text) } catch { throw .badInput("region: \(error)") }
        }
        switch word {
        case "deploy":
            let service = try serviceName()
            var digest = fields["artifact"] ?? ""
            if digest.hasPrefix("sha256:") { digest.removeFirst(7) }
            let artifact: DigestPrefix
            do { artifact = try DigestPrefix(digest) } catch { throw .badInput("artifact: \(error)") }
            let plan = fields["plan"] ?? ""
            guard plan.isEmpty || SafeText.isName(plan, max: 64) else { throw .badInput("plan: '\(SafeText.printable(plan))' is not a plan name") }
            let newService = ["on", "true", "1"].contains(fields["new_service"] ?? "")
            return .deploy(service: service, artifact: artifact, plan: plan, region: try region(), newService: newService)
        case "rollback":
            return .rollback(service: try serviceName(), region: try region())
        case "cancel":
            guard let id = fields["job"] else { throw .badInput("name the job") }
            do { return .cancel(try JobID(id)) } catch { throw .badInput("job: \(error)") }
        default:
            guard let action = controlWords[word] else {
                throw .badInput("unknown action '\(SafeText.printable(word))': deploy, rollback, pause, resume, promote, abort or cancel")
            }
            return .control(service: try serviceName(), action)
        }
    }

    /// The fields that rebuild this action (the confirmation form's hidden inputs).
    var fields: [(String, String)] {
        switch self {
        case .deploy(let service, let artifact, let plan, let region, let newService):
            [("service", service.rawValue), ("artifact", artifact.rawValue), ("plan", plan), ("region", region?.rawValue ?? ""),
             ("new_service", newService ? "on" : "")]
        case .rollback(let service, let region): [("service", service.rawValue), ("region", region?.rawValue ?? "")]
        case .control(let service, _): [("service", service.rawValue)]
        case .cancel(let job): [("job", job.rawValue)]
        }
    }

    /// The service the action changes (nil for a job).
    var service: ServiceName? {
        switch self {
        case .deploy(let service, _, _, _, _), .rollback(let service, _), .control(let service, _): service
        case .cancel: nil
        }
    }
}
