import Hummingbird
import SlipwayCore
import SlipwayJSON
import SlipwayProto

/// The actions: each button opens a confirmation that says what will change;
/// confirming posts the form (with its CSRF token) to `/actions`.
extension ConsoleApp {
    func addActions(to router: Router<ConsoleContext>) {
        router.get("/deploy") { request, context in
            let viewer = try context.requireOperator()
            let action = try ConsoleAction.parse("deploy", service: request.uri.queryParameters["service"].map(String.init),
                                                 fields: Self.queryFields(request))
            return try await confirmation(action, viewer: viewer)
        }
        router.get("/services/:service/confirm") { request, context in
            let viewer = try context.requireOperator()
            let word = request.uri.queryParameters["action"].map(String.init) ?? ""
            let action = try ConsoleAction.parse(word, service: context.parameters.get("service"), fields: Self.queryFields(request))
            return try await confirmation(action, viewer: viewer)
        }
        router.get("/builds/:id/cancel") { _, context in
            let viewer = try context.requireOperator()
            return try await confirmation(try ConsoleAction.parse("cancel", service: nil, fields: ["job": context.parameters.get("id") ?? ""]),
                                          viewer: viewer)
        }
        router.post("/actions") { request, context in
            let viewer = try context.requireOperator()
            let form = try await URLEncodedFormDecoder().decode([String: String].self, from: request, context: context)
            try checkCSRF(form["csrf"], context)
            let action = try ConsoleAction.parse(form["action"] ?? "", service: form["service"], fields: form)
            do {
                _ = try await perform(action, by: viewer)
            } catch let error as ConsoleError {
                // Refused (not replicated everywhere, a final rollout, …): say so on the same confirmation, nothing changed.
                return try await confirmation(action, viewer: viewer, problem: error.message, status: error.status)
            }
            if case .cancel(let job) = action { return Response.redirect(to: "/builds/\(job.rawValue)?done=cancel", type: .normal) }
            return Response.redirect(to: "/services/\(HTML.urlComponent(action.service!.rawValue))?done=\(action.word)", type: .normal)
        }
    }

    /// Requests that change something carry the session's CSRF token; bearer-token requests have no session and need none.
    func checkCSRF(_ token: String?, _ context: ConsoleContext) throws(ConsoleError) {
        guard let session = context.session else { return }
        guard access.signer.checkCSRF(token, for: session) else { throw ConsoleError.csrf }
    }

    /// Runs `action` at the coordinator, recording `viewer` as the actor; the coordinator's reply as JSON fields.
    func perform(_ action: ConsoleAction, by viewer: Viewer) async throws(ConsoleError) -> [(key: String, value: JSONValue)] {
        let actor = "\(viewer.name) (console)"
        do {
            let fields: [(key: String, value: JSONValue)]
            switch action {
            case .deploy(let service, let artifact, let plan, let region, let newService):
                var request = Slipway_V1_DeployRequest()
                request.service = service.rawValue
                request.artifactDigest = artifact.rawValue
                request.plan = plan
                request.regions = region.map { [$0.rawValue] } ?? []
                request.setBy = actor
                request.newService = newService
                fields = try await gateway.act { [request] in try await $0.deploy(request) }.jsonFields
            case .rollback(let service, let region):
                var request = Slipway_V1_RollbackRequest()
                request.service = service.rawValue
                request.regions = region.map { [$0.rawValue] } ?? []
                request.setBy = actor
                fields = try await gateway.act { [request] in try await $0.rollback(request) }.jsonFields
            case .control(let service, let control):
                let status = try await gateway.act { try await $0.control(service: service.rawValue, control, setBy: actor) }
                fields = [("rollout", status.json)]
            case .cancel(let job):
                fields = try await gateway.act { try await $0.cancel(job.rawValue, reason: "cancelled by \(actor)") }.jsonFields
            }
            ConsoleMetrics.action(action.word, outcome: "done")
            return fields
        } catch {
            ConsoleMetrics.action(action.word, outcome: error.code)
            throw error
        }
    }

    /// The page that names what `action` will change, with the form that does it.
    func confirmation(_ action: ConsoleAction, viewer: Viewer, problem: String = "",
                      status: HTTPResponse.Status = .ok) async throws(ConsoleError) -> Response {
        var action = action
        // The confirmation describes one build: the form it posts names that build in full, not the prefix typed.
        if case .deploy(let service, let prefix, let plan, let region, let newService) = action {
            let full = try await artifact(prefix).digest
            action = .deploy(service: service, artifact: DigestPrefix(unchecked: full), plan: plan, region: region, newService: newService)
        }
        let (title, what) = try await describe(action)
        let hidden = ([("action", action.word)] + action.fields).map {
            "<input type=\"hidden\" name=\"\($0.0)\" value=\"\(HTML.escape($0.1))\">"
        }.joined()
        let back = action.service.map { "/services/\(HTML.urlComponent($0.rawValue))" } ?? "/builds"
        let page = PageLayout(title: title, viewer: viewer, problem: problem).render("""
            <section id="confirmation"><p class="what" id="what">\(what)</p>
            <form method="post" action="/actions" id="confirm-form">\(hidden)\(HTML.csrfField(viewer))
            <button class="danger" id="confirm">\(HTML.escape(title))</button> <a href="\(back)">Cancel</a></form></section>
            """)
        return .html(page, status: status)
    }

    /// A title and a sentence (HTML) saying exactly what will change, from the current state.
    private func describe(_ action: ConsoleAction) async throws(ConsoleError) -> (String, String) {
        switch action {
        case .deploy(let service, let digest, let plan, let region, _):
            let artifact = try await artifact(digest)
            let status = try await gateway.call { try await $0.status(service: service.rawValue) }
            let current = status.targets.first { $0.region == (region?.rawValue ?? "") }
            let now = current.map { " It now runs \(HTML.digestLink($0.artifactDigest)) (v\($0.version), set by \(HTML.escape($0.setBy)))." }
                ?? " It has no target \(region == nil ? "" : "in this region ")yet."
            let build = "\(HTML.escape(artifact.name)) \(HTML.digestLink(artifact.digest)) (commit <code>\(HTML.escape(String(artifact.commit.prefix(12))))</code>)"
            let scope = region.map { "to every machine of service <b>\(HTML.escape(service.rawValue))</b> in region <b>\(HTML.escape($0.rawValue))</b>, at once (a pinned region target)" }
                ?? "to every machine of service <b>\(HTML.escape(service.rawValue))</b> in every region, wave by wave with plan <b>\(HTML.escape(plan.isEmpty ? "the coordinator's default" : plan))</b>"
            let ready = artifact.deployableAtUnixMicros > 0 ? "" : " <b class=\"failure\">This build is not in every region yet; the coordinator will refuse it.</b>"
            let title = region == nil ? "Deploy build \(artifact.name) globally" : "Deploy build \(artifact.name) to \(region!.rawValue)"
            return (title, "Deploy build \(build) \(scope).\(now)\(ready)")
        case .rollback(let service, let region):
            let status = try await gateway.call { try await $0.status(service: service.rawValue) }
            let targets = status.targets.filter { region == nil || $0.region == region!.rawValue }
            guard !targets.isEmpty else { throw .notFound("service \(service.rawValue) has no target\(region.map { " in \($0.rawValue)" } ?? "") to roll back") }
            let changes = targets.map { target in
                "\(target.region.isEmpty ? "global" : HTML.escape(target.region)): \(HTML.digestLink(target.artifactDigest)) → "
                    + (target.previousDigest.isEmpty ? "nothing (the target is cleared)" : HTML.digestLink(target.previousDigest))
            }.joined(separator: "; ")
            return ("Roll back \(service.rawValue)", "Set every target of service <b>\(HTML.escape(service.rawValue))</b> back to the build its last change replaced: \(changes). Machines switch at once.")
        case .control(let service, let control):
            let rollout = try await gateway.call { try await $0.rollout(service: service.rawValue) }
            let name = "rollout \(rollout.id) of <b>\(HTML.escape(service.rawValue))</b> (\(rollout.state.word), wave \(rollout.wave + 1) of \(rollout.waves.count), to \(HTML.digestLink(rollout.toDigest)))"
            switch control {
            case .pause: return ("Pause the rollout", "Pause \(name): no further wave starts; machines keep what they run.")
            case .resume: return ("Resume the rollout", "Resume \(name): the current wave is judged afresh and its deadline restarts.")
            case .promote: return ("Promote the rollout", "Promote \(name) to its next wave now, without waiting for the gate.")
            default: return ("Abort the rollout", "Abort \(name): every machine goes back to \(HTML.digestLink(rollout.fromDigest)).")
            }
        case .cancel(let id):
            let job = try await gateway.call { try await $0.job(id.rawValue) }
            return ("Cancel build \(job.jobID.prefix(8))", "Cancel build <b>\(HTML.escape(job.jobID))</b> (\(HTML.escape(job.artifactName)) at <code>\(HTML.escape(String(job.commit.prefix(12))))</code>, now \(job.status.word)): a running build is stopped by its worker; a queued one never starts.")
        }
    }

    static func queryFields(_ request: Request) -> [String: String] {
        var fields: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { fields[String(key)] = String(value) }
        return fields
    }
}
