import Hummingbird
import SlipwayCore
import SlipwayProto

/// The pages: Builds, Artifacts, Services, each list and each item.
extension ConsoleApp {
    func addPages(to router: Router<ConsoleContext>) {
        router.get("/") { _, context in
            _ = try context.requireViewer()
            return Response.redirect(to: "/builds", type: .found)
        }
        router.get("/builds") { request, context in
            let viewer = try context.requireViewer()
            let query = try Self.jobQuery(request)
            let jobs = try await gateway.call { [query] in try await $0.jobs(query) }
            return Response.html(BuildPages.list(jobs, status: query.status == .unspecified ? "" : query.status.word,
                                                 artifact: query.artifactName, viewer: viewer))
        }
        router.get("/builds/:id") { request, context in
            let viewer = try context.requireViewer()
            let id = try Self.jobID(context)
            let job = try await gateway.call { try await $0.job(id.rawValue) }
            return Response.html(BuildPages.job(job, viewer: viewer, notice: Self.notice(request)))
        }
        router.get("/artifacts") { request, context in
            let viewer = try context.requireViewer()
            var query = Slipway_V1_ArtifactQuery()
            query.name = try Self.optionalName(request, "name")
            query.limit = 100
            let artifacts = try await gateway.call { [query] in try await $0.artifacts(query) }
            return Response.html(ArtifactPages.list(artifacts, name: query.name, viewer: viewer))
        }
        router.get("/artifacts/:digest") { _, context in
            let viewer = try context.requireViewer()
            let artifact = try await artifact(try Self.digest(context))
            let builder = artifact.jobID.isEmpty ? "" : ((try? await gateway.call { try await $0.job(artifact.jobID) })?.workerID ?? "")
            return Response.html(ArtifactPages.artifact(artifact, builder: builder, viewer: viewer))
        }
        router.get("/audit") { request, context in
            let viewer = try context.requireOperator()
            let since = request.uri.queryParameters["since"].map(String.init) ?? "24h"
            let query = try Self.auditQuery(since: since, limit: 500)
            let entries = try await gateway.call { try await $0.audit(query) }
            return Response.html(AuditPage.render(entries, since: since, viewer: viewer))
        }
        router.get("/services") { _, context in
            let viewer = try context.requireViewer()
            let services = try await gateway.call { try await $0.services() }
            return Response.html(ServicePages.list(services, viewer: viewer))
        }
        router.get("/services/:service") { request, context in
            let viewer = try context.requireViewer()
            let service = try Self.serviceName(context)
            let status = try await gateway.call { try await $0.status(service: service.rawValue) }
            return Response.html(ServicePages.service(status, viewer: viewer, notice: Self.notice(request)))
        }
    }

    /// One artifact by digest or prefix; 404 when none, 400 when the prefix fits several.
    func artifact(_ digest: DigestPrefix) async throws(ConsoleError) -> Slipway_V1_ArtifactInfo {
        var query = Slipway_V1_ArtifactQuery()
        query.digest = digest.rawValue
        let found = try await gateway.call({ [query] in try await $0.artifacts(query) })
        guard let artifact = found.first else { throw .notFound("no artifact sha256:\(digest.rawValue)") }
        guard found.count == 1 else {
            throw .badInput("sha256:\(digest.rawValue) is the start of \(found.count) artifacts' digests; give more of it")
        }
        return artifact
    }

    // MARK: parsing the URL, once

    static func jobQuery(_ request: Request) throws(ConsoleError) -> Slipway_V1_JobListQuery {
        var query = Slipway_V1_JobListQuery()
        if let status = request.uri.queryParameters["status"].map(String.init), !status.isEmpty {
            guard let parsed = JobStatus(rawValue: status) else {
                throw .badInput("unknown status '\(SafeText.printable(status))': queued, running, succeeded, failed or cancelled")
            }
            query.status = parsed.wire
        }
        query.artifactName = try optionalName(request, "artifact")
        query.limit = 100
        if let limit = request.uri.queryParameters["limit"].map(String.init) {
            guard let value = UInt32(limit), (1...1_000).contains(value) else { throw .badInput("limit must be 1…1000") }
            query.limit = value
        }
        return query
    }

    /// The newest `limit` audit entries, from `since` ago (a duration) or from the start.
    static func auditQuery(since: String?, limit: UInt32) throws(ConsoleError) -> Slipway_V1_AuditQuery {
        var query = Slipway_V1_AuditQuery()
        query.limit = limit
        if let since {
            guard let period = DurationText.parse(since) else { throw .badInput("since: a duration such as 1h, 24h or 7d") }
            query.sinceUnixMicros = nowMicros - Int64(period.components.seconds) * 1_000_000
        }
        return query
    }

    static func optionalName(_ request: Request, _ key: String) throws(ConsoleError) -> String {
        guard let text = request.uri.queryParameters[Substring(key)].map(String.init), !text.isEmpty else { return "" }
        guard SafeText.isName(text, max: 128) else { throw .badInput("\(key): '\(SafeText.printable(text))' is not a name") }
        return text
    }

    static func jobID(_ context: ConsoleContext) throws(ConsoleError) -> JobID {
        let text = context.parameters.get("id") ?? ""
        do { return try JobID(text) } catch { throw .badInput("\(error)") }
    }

    static func digest(_ context: ConsoleContext) throws(ConsoleError) -> DigestPrefix {
        var text = context.parameters.get("digest") ?? ""
        if text.hasPrefix("sha256:") { text.removeFirst(7) }
        do { return try DigestPrefix(text) } catch { throw .badInput("\(error)") }
    }

    static func serviceName(_ context: ConsoleContext) throws(ConsoleError) -> ServiceName {
        let text = context.parameters.get("service") ?? ""
        do { return try ServiceName(text) } catch { throw .badInput("\(error)") }
    }

    /// The line shown after an action: fixed words chosen by `done`, never text from the URL.
    static func notice(_ request: Request) -> String {
        switch request.uri.queryParameters["done"].map(String.init) ?? "" {
        case "deploy": "Deploy started. The rollout below updates as regions report."
        case "rollback": "Rolled back: every target of this service is back on the build its last change replaced."
        case "pause": "Rollout paused."
        case "resume": "Rollout resumed."
        case "promote": "Rollout promoted to its next wave."
        case "abort": "Rollout aborted: every machine goes back to the build it came from."
        case "cancel": "Cancel requested."
        default: ""
        }
    }
}
