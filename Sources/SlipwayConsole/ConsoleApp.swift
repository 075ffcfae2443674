public import Hummingbird
public import Logging
public import SlipwayHTTP
import SlipwayJSON

/// The console's HTTP application: pages, the JSON API, live events, sign-in,
/// `/healthz` and `/metrics`, on Hummingbird. It keeps no state of its own:
/// every read and action is a coordinator request, so any number of consoles
/// can stand behind one load balancer (sharing the session key).
public struct ConsoleApp: Sendable {
    let gateway: CoordinatorGateway
    let access: ConsoleAccess
    let hub: LiveEventHub
    let metrics: @Sendable () -> [UInt8]
    /// Besides a signed-in user, who may read `/metrics` (a Prometheus server): nil, nobody else.
    let metricsToken: MetricsToken?
    let metricsWarnings = RateLimitedWarning(every: .seconds(60))
    let logger: Logger
    /// Whether cookies carry `Secure` (the console is reached over HTTPS through a proxy).
    let secureCookies: Bool

    public init(gateway: CoordinatorGateway, access: ConsoleAccess, hub: LiveEventHub, secureCookies: Bool,
                metrics: @escaping @Sendable () -> [UInt8], metricsToken: MetricsToken? = nil, logger: Logger = Logger(label: "slipway.console")) {
        self.gateway = gateway
        self.metricsToken = metricsToken
        self.logger = logger
        self.access = access
        self.hub = hub
        self.secureCookies = secureCookies
        self.metrics = metrics
    }

    /// Every route, behind error rendering and authentication.
    public func router() -> Router<ConsoleContext> {
        let router = Router(context: ConsoleContext.self)
        router.add(middleware: RequestMetrics())
        router.add(middleware: SecurityHeaders())
        router.add(middleware: ErrorRenderer())
        router.add(middleware: Authenticator(access: access))
        // Liveness only: it answers anyone, so it says nothing else (the watcher count is a metric).
        router.get("/healthz") { _, _ in Response.json(.object(["status": "ok"])) }
        router.get("/metrics") { request, context in
            // A signed-in user, or Prometheus with the --metrics-token-file token; never anyone.
            guard context.viewer == nil else { return MetricsEndpoint.response(metrics()) }
            let verdict = metricsToken?.check(authorization: request.headers[.authorization]) ?? .refused
            return MetricsEndpoint.refusal(verdict, logger: logger, warnings: metricsWarnings) ?? MetricsEndpoint.response(metrics())
        }
        router.get("/static/console.css") { _, _ in StaticAssets.response(StaticAssets.css, type: "text/css; charset=utf-8") }
        router.get("/static/console.js") { _, _ in StaticAssets.response(StaticAssets.script, type: "text/javascript; charset=utf-8") }
        addSignIn(to: router)
        addPages(to: router)
        addActions(to: router)
        addAPI(to: router)
        return router
    }
}

/// Counts requests by route and status class for `/metrics`.
struct RequestMetrics: RouterMiddleware {
    typealias Context = ConsoleContext

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        ConsoleMetrics.request(status: response.status.code)
        return response
    }
}
