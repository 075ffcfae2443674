/// A ZeroMQ endpoint Slipway binds or connects to, parsed once where it enters
/// (a flag, the config file, the CLI) and carried typed from there on.
///
/// Accepted forms: `tcp://HOST:PORT` (HOST an IPv4 address, a host name, `*`
/// for every interface, or `[IPv6]`; PORT 1–65535) and `ipc://PATH` (a Unix
/// socket path that fits the kernel's 107-byte limit). ``origin`` names where
/// the value came from (`--tracker`, say) so that every later error can say
/// which setting to fix; it is not part of the value's identity.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// How the endpoint is reached.
    public enum Transport: Sendable, Hashable {
        /// TCP to `host` (`*`: every interface, when binding) on `port`.
        case tcp(host: String, port: UInt16)
        /// A Unix-domain socket at `path`.
        case ipc(path: String)
    }

    /// The transport and address.
    public let transport: Transport
    /// The setting this endpoint came from, e.g. `--store`; nil when unknown.
    public var origin: String?

    /// Parses `text`, or throws an error that says what is wrong with it.
    public init(parsing text: String, origin: String? = nil) throws(EndpointError) {
        self.origin = origin
        if text.hasPrefix("tcp://") {
            transport = try Self.parseTCP(String(text.dropFirst(6)), text: text, origin: origin)
        } else if text.hasPrefix("ipc://") {
            let path = String(text.dropFirst(6))
            guard !path.isEmpty, !path.utf8.contains(0) else { throw EndpointError(text, origin, "ipc:// needs a socket path") }
            guard path.utf8.count <= 107 else {
                throw EndpointError(text, origin, "socket path is \(path.utf8.count) bytes; Unix sockets allow at most 107")
            }
            transport = .ipc(path: path)
        } else {
            throw EndpointError(text, origin, "an endpoint is tcp://HOST:PORT or ipc://PATH")
        }
    }

    /// A TCP endpoint.
    public init(host: String, port: UInt16, origin: String? = nil) {
        transport = .tcp(host: host, port: port)
        self.origin = origin
    }

    /// The same endpoint, recorded as coming from `origin`.
    public func named(_ origin: String) -> Endpoint {
        var copy = self
        copy.origin = origin
        return copy
    }

    /// The text libzmq takes: `tcp://127.0.0.1:7700`, `ipc:///run/slipway/intake`.
    public var description: String {
        switch transport {
        case .tcp(let host, let port): "tcp://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        case .ipc(let path): "ipc://\(path)"
        }
    }

    /// The endpoint prefixed with its origin, for error messages: `--store tcp://127.0.0.1:7710`.
    public var labelled: String { origin.map { "\($0) \(description)" } ?? description }

    /// The TCP port, or nil for ipc.
    public var port: UInt16? {
        if case .tcp(_, let port) = transport { port } else { nil }
    }

    /// The TCP host, or nil for ipc.
    public var host: String? {
        if case .tcp(let host, _) = transport { host } else { nil }
    }

    public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool { lhs.transport == rhs.transport }
    public func hash(into hasher: inout Hasher) { hasher.combine(transport) }

    private static func parseTCP(_ rest: String, text: String, origin: String?) throws(EndpointError) -> Transport {
        let host: Substring, portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw EndpointError(text, origin, "an IPv6 host is written [ADDRESS]:PORT")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            portText = rest[rest.index(close, offsetBy: 2)...]
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw EndpointError(text, origin, "'\(host)' is not an IPv6 address")
            }
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw EndpointError(text, origin, "tcp:// needs HOST:PORT") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
            guard host == "*" || isHostName(host) else {
                throw EndpointError(text, origin, "'\(SafeText.printable(String(host)))' is not a host name, an IPv4 address or *")
            }
        }
        guard let port = Int(portText), portText.allSatisfy(\.isASCII) else {
            throw EndpointError(text, origin, "port '\(SafeText.printable(String(portText)))' is not a number")
        }
        guard (1...65_535).contains(port) else { throw EndpointError(text, origin, "port \(port) is outside 1–65535") }
        return .tcp(host: String(host), port: UInt16(port))
    }

    /// Letters, digits, `-` and `.`, as DNS names and IPv4 literals are written.
    private static func isHostName(_ text: Substring) -> Bool {
        guard (1...253).contains(text.utf8.count), !text.hasPrefix("-"), !text.hasPrefix(".") else { return false }
        return text.utf8.allSatisfy { SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }
}

/// An endpoint that could not be parsed: the text, where it came from, and why.
public struct EndpointError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text as given (made printable and bounded).
    public let text: String
    /// The setting it came from, if known.
    public let origin: String?
    /// What is wrong with it.
    public let reason: String

    init(_ text: String, _ origin: String?, _ reason: String) {
        self.text = SafeText.printable(text, limit: 200)
        self.origin = origin
        self.reason = reason
    }

    /// `--store: '127.0.0.1:7845' is not an endpoint: an endpoint is tcp://HOST:PORT or ipc://PATH`.
    public var description: String {
        "\(origin.map { "\($0): " } ?? "")'\(text)' is not a valid endpoint: \(reason)"
    }
}
