import Foundation
public import SlipwayThreads
#if canImport(Glibc)
import Glibc
#endif

/// Serves ``SlipwayMetrics/registry`` as Prometheus text on `GET /metrics`
/// (HTTP/1.0, one request per connection), on a thread of its own.
///
/// A deliberately small server: scrapes come every few seconds from one
/// Prometheus, so connections are handled one at a time, each with a 500 ms
/// budget for the whole exchange (a client that sends nothing, or reads
/// slowly, is cut off); anything but `GET /metrics` gets 404 or 400.
public enum MetricsEndpoint {
    /// Why the endpoint could not start.
    public struct Failure: Error, CustomStringConvertible {
        /// One line for logs.
        public let description: String
    }

    /// The service that serves `host:port` until graceful shutdown.
    public static func service(listen: String) throws -> LoopService {
        let (host, port) = try parse(listen)
        return LoopService(name: "metrics") { stop in
            let server = try bind(host: host, port: port)
            defer { close(server) }
            while !stop.isStopped {
                var descriptor = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, 200) > 0 else { continue }
                let client = accept(server, nil, nil)
                guard client >= 0 else { continue }
                answer(client, deadline: .now + .milliseconds(500))
                close(client)
            }
        }
    }

    /// `HOST:PORT` → its parts; the host must be an IPv4 address.
    static func parse(_ listen: String) throws -> (String, UInt16) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]), port > 0,
              inet_addr(String(listen[..<colon])) != INADDR_NONE else {
            throw Failure(description: "metrics address must be IPV4:PORT, e.g. 127.0.0.1:9100 (got '\(listen)')")
        }
        return (String(listen[..<colon]), port)
    }

    private static func bind(host: String, port: UInt16) throws -> Int32 {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard server >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(server, 16) == 0 else {
            let code = errno
            close(server)
            throw Failure(description: "cannot listen on \(host):\(port) for metrics: \(String(cString: strerror(code)))")
        }
        return server
    }

    private static func answer(_ client: Int32, deadline: ContinuousClock.Instant) {
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // Read until the blank line that ends the request head (or 4 KiB, or the deadline):
        // closing with unread request bytes would reset the connection, response and all.
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while request.count < 4_096, !request.suffix(4).elementsEqual([13, 10, 13, 10]), !request.suffix(2).elementsEqual([10, 10]),
              ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                request += buffer[..<count]
            } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                break
            }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let response: (status: String, body: [UInt8])
        if parts.count < 2 || !parts[0].allSatisfy(\.isUppercase) {
            response = ("400 Bad Request", Array("bad request\n".utf8))
        } else if parts[0] == "GET", parts[1] == "/metrics" {
            response = ("200 OK", SlipwayMetrics.registry.emitToBuffer())
        } else {
            response = ("404 Not Found", Array("only GET /metrics is served here\n".utf8))
        }
        let head = "HTTP/1.0 \(response.status)\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + response.body
        var sent = 0
        while sent < bytes.count, ContinuousClock.now < deadline {
            let written = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written > 0 {
                sent += written
            } else if errno != EAGAIN && errno != EINTR {
                return
            }
        }
        // Half-close, then let the client's end arrive: a close with bytes in flight
        // from the client would turn into a reset that can discard the response.
        shutdown(client, Int32(SHUT_WR))
        while ContinuousClock.now < deadline,
              buffer.withUnsafeMutableBytes({ recv(client, $0.baseAddress, $0.count, 0) }) > 0 {}
    }
}
