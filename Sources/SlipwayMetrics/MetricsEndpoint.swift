import SlipwayCore
public import SlipwayThreads
#if canImport(Glibc)
import Glibc
#endif

/// Serves the process's metrics as Prometheus text on `GET /metrics`
/// (HTTP/1.0, one request per connection), on a thread of its own.
///
/// Connections are handled side by side with non-blocking sockets: each has
/// 2 seconds for the whole exchange and at most 64 are open at once (a new
/// one then pushes out the oldest), so clients that send half a request, or
/// never read, cannot delay a scrape. Anything but `GET /metrics` gets 404 or 400.
public enum MetricsEndpoint {
    /// Why the endpoint could not start.
    public struct Failure: Error, CustomStringConvertible {
        /// One line for logs.
        public let description: String
    }

    /// `HOST:PORT` → its parts; the host must be an IPv4 address.
    public static func parse(_ listen: String) throws -> (host: String, port: UInt16) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]), port > 0,
              inet_addr(String(listen[..<colon])) != INADDR_NONE else {
            throw Failure(description: "metrics address must be IPV4:PORT, e.g. 127.0.0.1:9100 (got '\(SafeText.printable(listen))')")
        }
        return (String(listen[..<colon]), port)
    }

    /// The service that binds `listen` when opened and serves what `render`
    /// returns until graceful shutdown.
    public static func service(listen: String, render: @escaping @Sendable () -> [UInt8]) throws -> LoopService {
        let (host, port) = try parse(listen)
        return LoopService(name: "metrics") { stop in
            try MetricsServer(host: host, port: port, render: render, stop: stop)
        }
    }
}

/// The non-blocking HTTP loop behind ``MetricsEndpoint``.
final class MetricsServer: ServingLoop {
    private struct Connection {
        let descriptor: Int32
        let deadline: ContinuousClock.Instant
        var request: [UInt8] = []
        var response: [UInt8]?
        var sent = 0
        /// The response is out and the write side shut: waiting for the client's end.
        var closing = false
        var finished = false
    }

    static let budget: Duration = .seconds(2)
    static let maxConnections = 64
    private let server: Int32
    private let address: String
    private let render: @Sendable () -> [UInt8]
    private let stop: StopSignal
    private var connections: [Connection] = []

    init(host: String, port: UInt16, render: @escaping @Sendable () -> [UInt8], stop: StopSignal) throws {
        self.render = render
        self.stop = stop
        self.address = "\(host):\(port)"
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard server >= 0 else { throw StartupError(setting: "--metrics-listen \(address)", reason: StartupCheck.errnoText()) }
        var on: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = inet_addr(host)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(server, 64) == 0 else {
            let reason = StartupCheck.errnoText()
            close(server)
            throw StartupError(setting: "--metrics-listen \(address)", reason: "cannot listen: \(reason)")
        }
        self.server = server
    }

    deinit {
        for connection in connections { close(connection.descriptor) }
        close(server)
    }

    var opened: [String: String] { ["metrics": "http://\(address)/metrics"] }

    func serve() throws {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while !stop.isStopped {
            var descriptors = [pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
            descriptors += connections.map { pollfd(fd: $0.descriptor, events: Int16($0.response == nil || $0.closing ? POLLIN : POLLOUT), revents: 0) }
            _ = poll(&descriptors, nfds_t(descriptors.count), 200)
            let now = ContinuousClock.now
            for (index, descriptor) in descriptors.enumerated().dropFirst() where descriptor.revents != 0 {
                advance(&connections[index - 1], buffer: &buffer)
            }
            connections.removeAll { connection in
                let done = connection.finished || now >= connection.deadline
                if done { close(connection.descriptor) }
                return done
            }
            if descriptors[0].revents != 0 { acceptAll(now: now) }
        }
    }

    private func acceptAll(now: ContinuousClock.Instant) {
        while true {
            let client = accept(server, nil, nil)
            guard client >= 0 else { return }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            if connections.count >= Self.maxConnections {
                close(connections.removeFirst().descriptor)
            }
            connections.append(Connection(descriptor: client, deadline: now + Self.budget))
        }
    }

    /// Moves one connection along: read the request head, answer, half-close,
    /// then wait for the client's end (closing with unread bytes from the client
    /// would reset the connection and could discard the response).
    private func advance(_ connection: inout Connection, buffer: inout [UInt8]) {
        if connection.closing {
            let count = buffer.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { connection.finished = true }
            return
        }
        if connection.response == nil {
            let count = buffer.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 { connection.request += buffer[..<count] }
            let ended = count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR)
            let complete = connection.request.count >= 4_096 || Self.hasHeadEnd(connection.request)
            guard complete || ended else { return }
            connection.response = respond(to: connection.request)
        }
        guard let response = connection.response else { return }
        let written = response[connection.sent...].withUnsafeBytes { send(connection.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written > 0 { connection.sent += written }
        if written < 0 && errno != EAGAIN && errno != EINTR {
            connection.finished = true
        } else if connection.sent >= response.count {
            shutdown(connection.descriptor, Int32(SHUT_WR))
            connection.closing = true
        }
    }

    private static func hasHeadEnd(_ request: [UInt8]) -> Bool {
        request.suffix(4).elementsEqual([13, 10, 13, 10]) || request.suffix(2).elementsEqual([10, 10])
    }

    private func respond(to request: [UInt8]) -> [UInt8] {
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let (status, body): (String, [UInt8])
        if parts.count < 2 || !parts[0].allSatisfy(\.isUppercase) {
            (status, body) = ("400 Bad Request", Array("bad request\n".utf8))
        } else if parts[0] == "GET", parts[1] == "/metrics" {
            (status, body) = ("200 OK", render())
        } else {
            (status, body) = ("404 Not Found", Array("only GET /metrics is served here\n".utf8))
        }
        let head = "HTTP/1.0 \(status)\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}
