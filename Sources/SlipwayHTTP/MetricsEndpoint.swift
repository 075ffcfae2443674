public import Hummingbird
public import Logging
import SlipwayCore
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

    /// The daemon part that binds `listen` (from `--metrics-listen`) and serves what `render` returns.
    public static func service(listen: String, logger: Logger, render: @escaping @Sendable () -> [UInt8]) throws -> HTTPDaemonService<Router<BasicRequestContext>> {
        let (host, port) = try parse(listen)
        return HTTPDaemonService(name: "metrics", host: host, port: Int(port), flag: "--metrics-listen", logger: logger) {
            let router = Router()
            router.get("/metrics") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: render())))
            }
            return router
        }
    }
}
