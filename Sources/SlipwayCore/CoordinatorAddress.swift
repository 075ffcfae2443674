/// Where a coordinator is, as people write it: `HOST`, `HOST:PORT`,
/// `[IPV6]:PORT`, or a `tcp://` intake endpoint. PORT is the intake's (7700 by
/// default); the other sockets follow it in the documented layout: dispatch
/// on PORT+1, events on PORT+2, catch-up snapshots on PORT+3. Per-socket flags
/// remain for layouts that differ.
public struct CoordinatorAddress: Sendable, Hashable, CustomStringConvertible {
    /// The coordinator's intake port when none is given.
    public static let defaultPort: UInt16 = 7700

    /// The host (an IPv6 address without brackets).
    public let host: String
    /// The intake port; the other three follow it.
    public let port: UInt16

    public init(host: String, port: UInt16 = Self.defaultPort) {
        self.host = host
        self.port = port
    }

    /// Parses `text`, or throws an error naming `origin` (the flag or variable) and what is wrong.
    public init(parsing text: String, origin: String? = nil) throws(EndpointError) {
        if text.hasPrefix("tcp://") {
            let endpoint = try Endpoint(parsing: text, origin: origin)
            guard let host = endpoint.host, let port = endpoint.port else { throw EndpointError(text, origin, "not a TCP address") }
            try self.init(checked: host, port: Int(port), text: text, origin: origin)
            return
        }
        guard !text.contains("://") else {
            throw EndpointError(text, origin, "a coordinator address is HOST, HOST:PORT or tcp://HOST:PORT")
        }
        let bracketed = text.hasPrefix("[")
        let colons = text.filter { $0 == ":" }.count
        if !bracketed, colons != 1 {
            // A bare host (or a bare IPv6 address, which needs brackets to carry a port).
            try self.init(checked: text, port: Int(Self.defaultPort), text: text, origin: origin)
            return
        }
        let withPort = bracketed && text.hasSuffix("]") ? text + ":\(Self.defaultPort)" : text
        let endpoint = try Endpoint(parsing: "tcp://" + withPort, origin: origin)
        try self.init(checked: endpoint.host ?? "", port: Int(endpoint.port ?? 0), text: text, origin: origin)
    }

    private init(checked host: String, port: Int, text: String, origin: String?) throws(EndpointError) {
        guard host != "*" else { throw EndpointError(text, origin, "* binds every interface; a client needs the coordinator's address") }
        guard port + 3 <= 65_535 else { throw EndpointError(text, origin, "port \(port) leaves no room for the three sockets after it") }
        // The host goes through the endpoint parser, which knows which hosts are valid.
        let probe = host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        _ = try Endpoint(parsing: probe, origin: origin)
        self.init(host: host, port: UInt16(port))
    }

    private func endpoint(_ offset: UInt16, _ origin: String) -> Endpoint {
        Endpoint(host: host, port: port + offset, origin: origin)
    }

    /// The ROUTER producers, the CLI, regions and agents' reports talk to.
    public var intake: Endpoint { endpoint(0, "--coordinator (intake)") }
    /// The ROUTER workers take jobs from.
    public var dispatch: Endpoint { endpoint(1, "--coordinator (dispatch)") }
    /// The PUB every event goes out on.
    public var events: Endpoint { endpoint(2, "--coordinator (events)") }
    /// The ROUTER where subscribers catch up on missed events.
    public var snapshot: Endpoint { endpoint(3, "--coordinator (snapshot)") }

    /// `HOST:PORT` (`[IPV6]:PORT`).
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
