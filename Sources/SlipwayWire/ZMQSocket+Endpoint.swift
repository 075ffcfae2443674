public import SlipwayCore
#if canImport(Glibc)
import Glibc
#endif

/// A bind or connect that failed, naming the endpoint and the setting it came from.
public struct EndpointFailure: Error, Sendable, CustomStringConvertible {
    /// The endpoint, with its ``SlipwayCore/Endpoint/origin``.
    public let endpoint: Endpoint
    /// `bind` or `connect`.
    public let action: String
    /// What libzmq (or the pre-check) said.
    public let reason: String

    /// `--tracker tcp://127.0.0.1:7720: cannot bind: Address already in use`.
    public var description: String { "\(endpoint.labelled): cannot \(action): \(reason)" }
}

extension ZMQSocket {
    /// Binds to a parsed endpoint; the error names it and its setting.
    public func bind(_ endpoint: Endpoint) throws(EndpointFailure) {
        do {
            try bind(endpoint.description)
        } catch {
            var reason = error.reason
            if error.code == .addressInUse, case .tcp(_, let port) = endpoint.transport, let holder = PortHolder.describe(port: Int(port)) {
                reason += " (\(holder))"
            }
            throw EndpointFailure(endpoint: endpoint, action: "bind", reason: reason)
        }
    }

    /// Connects to a parsed endpoint; the error names it and its setting.
    public func connect(_ endpoint: Endpoint) throws(EndpointFailure) {
        do {
            try connect(endpoint.description)
        } catch {
            throw EndpointFailure(endpoint: endpoint, action: "connect", reason: error.reason)
        }
    }

    /// ``requestDealer(context:connectedTo:options:)`` for a parsed endpoint.
    public static func requestDealer(context: ZMQContext, connectedTo endpoint: Endpoint,
                                     options: [ZMQOption] = []) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer)
        try socket.set(.linger(.zero))
        for option in options { try socket.set(option) }
        try socket.connect(endpoint)
        return socket
    }
}

extension Endpoint {
    /// Checks, without taking it, that this endpoint could be bound on this
    /// machine: the host is one of its addresses (or `*`), the ipc folder exists.
    /// A standby runs this before it waits, since the active process holds the ports.
    public func checkBindable() throws(EndpointFailure) {
        switch transport {
        case .ipc(let path):
            let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            guard access(folder.isEmpty ? "/" : folder, W_OK) == 0 else {
                throw EndpointFailure(endpoint: self, action: "bind", reason: "cannot create a socket in \(folder): \(String(cString: strerror(errno)))")
            }
        case .tcp(let host, _):
            guard host != "*" else { return }
            var hints = addrinfo()
            hints.ai_flags = AI_PASSIVE
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var found: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, "0", &hints, &found) == 0, let first = found else {
                throw EndpointFailure(endpoint: self, action: "bind", reason: "host '\(host)' does not resolve")
            }
            defer { freeaddrinfo(found) }
            let descriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { return }
            defer { close(descriptor) }
            if Glibc.bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
                throw EndpointFailure(endpoint: self, action: "bind", reason: "\(host) is not an address of this machine (\(String(cString: strerror(errno))))")
            }
        }
    }
}
