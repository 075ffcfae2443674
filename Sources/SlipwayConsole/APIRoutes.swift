import Foundation
import HTTPTypes
import Hummingbird
import SlipwayCore
import SlipwayJSON
import SlipwayProto

/// The JSON API (docs/console-api.yaml): the same objects the CLI prints with
/// `--json` (docs/json-output.md), each with `error` last; a failure is
/// `{"error": {"code", "message", "status"}}` with a 4xx or 5xx status.
extension ConsoleApp {
    /// The body of an action request; every key optional, checked by ``ConsoleAction/parse``.
    struct ActionBody: Decodable {
        var artifact: String?
        var plan: String?
        var region: String?
        var new_service: Bool?
    }

    func addAPI(to router: Router<ConsoleContext>) {
        let api = router.group("/api/v1")
        api.get("/me") { _, context in
            let viewer = try context.requireViewer()
            return Self.ok(["name": .string(viewer.name), "role": .string(viewer.role.rawValue), "csrf_token": viewer.csrfToken.map { .string($0) } ?? .null])
        }
        api.get("/jobs") { request, context in
            _ = try context.requireViewer()
            let query = try Self.jobQuery(request)
            let jobs = try await gateway.call { [query] in try await $0.jobs(query) }
            return Self.ok(["jobs": .array(jobs.map(\.json))])
        }
        api.get("/jobs/:id") { _, context in
            _ = try context.requireViewer()
            let id = try Self.jobID(context)
            return Self.ok(["job": try await gateway.call { try await $0.job(id.rawValue) }.json])
        }
        api.get("/jobs/:id/log") { request, context in
            _ = try context.requireViewer()
            let id = try Self.jobID(context)
            let offsetText = request.uri.queryParameters["offset"].map(String.init) ?? "0"
            guard let offset = UInt64(offsetText) else { throw ConsoleError.badInput("offset must be a byte count") }
            let (header, bytes) = try await gateway.call { try await $0.log(id.rawValue, from: offset) }
            // A character cut at the chunk's end waits for the next read (at the log's end it is shown as it is).
            let whole = header.complete ? bytes.count : LogText.completePrefix(bytes)
            return Self.ok([
                "job_id": .string(header.jobID.isEmpty ? id.rawValue : header.jobID),
                "attempt": .count(header.attempt),
                "offset": .count(header.offset),
                "next_offset": .count(header.offset + UInt64(whole)),
                "complete": .bool(header.complete),
                "status": .string(header.status.word),
                "text": .string(String(decoding: bytes[..<whole], as: UTF8.self)),
            ])
        }
        api.post("/jobs/:id/cancel") { request, context in
            let viewer = try context.requireOperator()
            try checkCSRF(request.headers[Self.csrfHeader], context)
            let id = try Self.jobID(context)
            return Self.ok(try await perform(.cancel(id), by: viewer))
        }
        api.get("/artifacts") { request, context in
            _ = try context.requireViewer()
            var query = Slipway_V1_ArtifactQuery()
            query.name = try Self.optionalName(request, "name")
            query.limit = 100
            let artifactQuery = query
            return Self.ok(["artifacts": .array(try await gateway.call { try await $0.artifacts(artifactQuery) }.map(\.json))])
        }
        api.get("/artifacts/:digest") { _, context in
            _ = try context.requireViewer()
            return Self.ok(["artifact": try await artifact(try Self.digest(context)).json])
        }
        api.get("/services") { _, context in
            _ = try context.requireViewer()
            let services = try await gateway.call { try await $0.services() }
            let now = Self.nowMicros
            return Self.ok(["services": .array(services.map { $0.summaryJSON(nowMicros: now, staleAfterMicros: Self.staleMicros) })])
        }
        api.get("/services/:service") { _, context in
            _ = try context.requireViewer()
            let service = try Self.serviceName(context)
            let status = try await gateway.call { try await $0.status(service: service.rawValue) }
            return Self.ok(status.statusJSONFields(nowMicros: Self.nowMicros, staleAfterMicros: Self.staleMicros))
        }
        api.get("/services/:service/rollout") { _, context in
            _ = try context.requireViewer()
            let service = try Self.serviceName(context)
            return Self.ok(["rollout": try await gateway.call { try await $0.rollout(service: service.rawValue) }.json])
        }
        api.post("/services/:service/:action") { request, context in
            try await act(request, context, word: context.parameters.get("action") ?? "")
        }
        api.post("/services/:service/rollout/:action") { request, context in
            let word = context.parameters.get("action") ?? ""
            guard ConsoleAction.controlWords[word] != nil else { throw ConsoleError.notFound("no rollout action '\(SafeText.printable(word))': pause, resume, promote or abort") }
            return try await act(request, context, word: word)
        }
        api.get("/audit") { request, context in
            _ = try context.requireOperator()
            let query = try Self.auditQuery(since: request.uri.queryParameters["since"].map(String.init), limit: 200)
            return Self.ok(["entries": .array(try await gateway.call { try await $0.audit(query) }.map(\.json))])
        }
        api.get("/events") { request, context in
            return try liveEvents(request, viewer: try context.requireViewer())
        }
    }

    /// `deploy` and `rollback` under `/services/NAME/`, and the rollout controls.
    private func act(_ request: Request, _ context: ConsoleContext, word: String) async throws -> Response {
        let viewer = try context.requireOperator()
        try checkCSRF(request.headers[Self.csrfHeader], context)
        guard ["deploy", "rollback"].contains(word) || ConsoleAction.controlWords[word] != nil else {
            throw ConsoleError.notFound("no action '\(SafeText.printable(word))' on a service: deploy, rollback, or rollout/pause|resume|promote|abort")
        }
        let body = try await Self.decodeBody(ActionBody.self, request, context)
        var fields: [String: String] = [:]
        fields["artifact"] = body.artifact
        fields["plan"] = body.plan
        fields["region"] = body.region
        fields["new_service"] = body.new_service == true ? "true" : nil
        let action = try ConsoleAction.parse(word, service: context.parameters.get("service"), fields: fields)
        return Self.ok(try await perform(action, by: viewer))
    }

    /// Server-Sent Events: one `data:` line of JSON per coordinator event, and a comment every 15 s to keep proxies
    /// from closing it. The stream ends, and its watcher slot is freed, as soon as the browser goes away, and
    /// within 15 s of its account's removal from the users file or its session's end.
    private func liveEvents(_ request: Request, viewer: Viewer) throws -> Response {
        guard let stream = hub.watch(owner: viewer.name) else {
            throw ConsoleError(.serviceUnavailable, "busy", "too many live connections (for this account, or in all); try again later")
        }
        let bearer = request.headers[.authorization].flatMap(ConsoleAccess.bearerToken)
        let cookie = request.cookies[ConsoleAccess.cookieName]?.value
        let access = self.access
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
            let (chunks, chunk) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(hub.bufferLimit))
            do {
                try await request.body.consumeWithCancellationOnInboundClose { _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .seconds(15))
                                // Revoked or expired since the stream opened: it ends here.
                                guard access.viewer(bearer: bearer, cookie: cookie) != nil else {
                                    chunk.finish()
                                    return
                                }
                                chunk.yield(": keep-alive\n\n")
                            }
                        }
                        group.addTask {
                            for await line in stream { chunk.yield("data: \(line)\n\n") }
                            chunk.finish()
                        }
                        for await text in chunks { try await writer.write(ByteBuffer(string: text)) }
                        group.cancelAll()
                    }
                }
            } catch is CancellationError {
                return  // the browser left
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let staleMicros: Int64 = 45_000_000
    static var nowMicros: Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    static func ok(_ fields: [(key: String, value: JSONValue)]) -> Response {
        .json(.object(fields + [("error", .null)]))
    }

    static func ok(_ fields: KeyValuePairs<String, JSONValue>) -> Response {
        ok(fields.map { (key: $0.key, value: $0.value) })
    }

    /// A JSON body of at most the context's upload limit; an empty body is `{}`.
    static func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request, _ context: ConsoleContext) async throws -> T {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        let bytes = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: bytes.isEmpty ? Data("{}".utf8) : bytes)
        } catch {
            throw ConsoleError.badInput("the body is not the JSON object this call takes: \(error)")
        }
    }
}
