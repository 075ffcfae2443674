public import Hummingbird
import HTTPTypes
import SlipwayJSON

/// The request context: Hummingbird's, plus who is asking.
public struct ConsoleContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``Authenticator`` when the request proves who it is.
    var viewer: Viewer?
    var session: SessionSigner.Session?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Forms and API bodies are small; anything larger is refused with 413 before it is read.
    public var maxUploadSize: Int { 64 * 1024 }

    /// The viewer, or "not signed in".
    func requireViewer() throws(ConsoleError) -> Viewer {
        guard let viewer else { throw ConsoleError.notSignedIn }
        return viewer
    }

    /// The viewer if an operator; else why not.
    func requireOperator() throws(ConsoleError) -> Viewer {
        let viewer = try requireViewer()
        guard viewer.isOperator else { throw ConsoleError.viewerOnly }
        return viewer
    }
}

/// Reads who a request is from (bearer token or session cookie) into the context.
struct Authenticator: RouterMiddleware {
    typealias Context = ConsoleContext
    let access: ConsoleAccess

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        var context = context
        // Only a Bearer header is ours: a proxy's Basic credentials leave the cookie to decide.
        let bearer = request.headers[.authorization].flatMap(ConsoleAccess.bearerToken)
        if let (viewer, session) = access.viewer(bearer: bearer, cookie: request.cookies[ConsoleAccess.cookieName]?.value) {
            context.viewer = viewer
            context.session = session
        } else if bearer != nil, request.uri.path != "/metrics" {
            // A wrong token is an error, not an anonymous visit (on /metrics it may be the metrics token).
            throw ConsoleError(.unauthorized, "bad_token", "unknown or revoked bearer token")
        }
        return try await next(request, context)
    }
}

/// Turns every error into a clear reply: JSON under `/api/`, a page elsewhere;
/// a page that needs a sign-in sends the browser to the sign-in form.
struct ErrorRenderer: RouterMiddleware {
    typealias Context = ConsoleContext

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let failure: ConsoleError
            switch error {
            case let error as ConsoleError: failure = error
            case let error as any HTTPResponseError:
                failure = ConsoleError(error.status, Self.code(error.status), Self.message(error.status))
            default:
                context.logger.error("request failed", metadata: ["error": "\(error)"])
                failure = ConsoleError(.internalServerError, "internal", "the console failed: \(error)")
            }
            let path = request.uri.path
            if path.hasPrefix("/api/") || path == "/metrics" || path == "/healthz" {
                return .json(failure.json, status: failure.status)
            }
            if failure.code == "not_signed_in" {
                return .redirect(to: "/login?next=\(HTML.urlComponent(path))", type: .found)
            }
            let page = PageLayout(title: "Cannot do that", viewer: context.viewer, problem: failure.message)
                .render("<p><a href=\"javascript:history.back()\">Back</a></p>")
            return .html(page, status: failure.status)
        }
    }

    private static func code(_ status: HTTPResponse.Status) -> String {
        switch status {
        case .contentTooLarge: "too_large"
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        default: status.code < 500 ? "bad_input" : "internal"
        }
    }

    private static func message(_ status: HTTPResponse.Status) -> String {
        switch status {
        case .contentTooLarge: "the request body is larger than 64 KiB"
        case .notFound: "no such page"
        case .badRequest: "the request is malformed"
        default: status.reasonPhrase
        }
    }
}

/// Headers every reply carries: no framing (clickjacking), scripts and styles from the console only,
/// no MIME sniffing, no URLs leaked to other sites.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = ConsoleContext
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        response.headers[Self.frameOptions] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[Self.referrerPolicy] = "same-origin"
        return response
    }
}

extension Response {
    static func html(_ page: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: value.rendered + "\n")))
    }
}
