public import Hummingbird
public import Logging
import SlipwayCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Serves the process's metrics as Prometheus text on `GET /metrics`, on
/// Hummingbird like the console; anything else is 404 (or 400 if it is not HTTP).
public enum MetricsEndpoint {
    /// Why an address is not one to listen on.
    public struct Failure: Error, CustomStringConvertible {
        /// One line for logs.
        public let description: String
    }

    /// `HOST:PORT` → its parts; the host must be an IPv4 address.
    public static func parse(_ listen: String) throws -> (host: String, port: UInt16) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]), port > 0,
              inet_addr(String(listen[..<colon])) != INADDR_NONE else {
            throw Failure(description: "must be IPV4:PORT, e.g. 127.0.0.1:9100 (got '\(SafeText.printable(listen))')")
        }
        return (String(listen[..<colon]), port)
    }

    /// Refuses to serve metrics without a token: a daemon that runs authenticated
    /// (not `--insecure`) needs a token file on any address, loopback included, because
    /// nothing else it serves answers without a key and any local process can reach
    /// 127.0.0.1. An `--insecure` daemon answers anyone, as its sockets do.
    public static func checkExposure(listen: String, tokenGiven: Bool, insecure: Bool) throws {
        _ = try parse(listen)
        guard !tokenGiven, !insecure else { return }
        throw Failure(description: "\(listen) would serve metrics without a key, and nothing else an authenticated daemon serves does: "
                      + "give --metrics-token-file FILE (Prometheus sends it with authorization.credentials_file)")
    }

    /// The daemon part that binds `listen` (from `--metrics-listen`) and serves what
    /// `render` returns; with `token`, only to requests that carry it.
    public static func service(listen: String, token: MetricsToken?, logger: Logger,
                               render: @escaping @Sendable () -> [UInt8]) throws -> HTTPDaemonService<Router<BasicRequestContext>> {
        let (host, port) = try parse(listen)
        let warnings = RateLimitedWarning(every: .seconds(60))
        return HTTPDaemonService(name: "metrics", host: host, port: Int(port), flag: "--metrics-listen", logger: logger) {
            let router = Router()
            router.get("/metrics") { request, _ in
                if let refusal = refusal(token?.check(authorization: request.headers[.authorization]), logger: logger, warnings: warnings) {
                    return refusal
                }
                return response(render())
            }
            return router
        }
    }

    /// `text` as Prometheus exposition.
    public static func response(_ text: [UInt8]) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    /// The answer to a request the token does not admit, or nil when it may read:
    /// 401 without the token, 503 (logged at most once a minute) when the file cannot be used.
    public static func refusal(_ verdict: MetricsToken.Verdict?, logger: Logger, warnings: RateLimitedWarning) -> Response? {
        switch verdict {
        case nil, .admitted?:
            return nil
        case .refused?:
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"slipway metrics\"", .contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: "a bearer token is needed (--metrics-token-file)\n")))
        case .unavailable(let reason)?:
            if warnings.due() { logger.warning("/metrics refused every request: --metrics-token-file \(reason)") }
            return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: "the metrics token file cannot be read; see the daemon's log\n")))
        }
    }
}

/// Says yes at most once per interval, for warnings a request can trigger:
/// ``RepeatedEvent`` shared by the server's connections.
public final class RateLimitedWarning: Sendable {
    private let gate: Mutex<RepeatedEvent>

    /// Due at once, then at most once per `interval`.
    public init(every interval: Duration) { gate = Mutex(RepeatedEvent(interval: interval)) }

    /// Whether to warn now.
    public func due() -> Bool {
        gate.withLock { $0.occurred(now: .now) != nil }
    }
}
