import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A failed libzmq call: which call, the errno it left, and a safe description.
///
/// Every libzmq return code goes through ``ZMQError/check(_:_:)``, which retries
/// `EINTR` and throws this error for anything else.
public struct ZMQError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The failures callers branch on; anything else is `.other`.
    public enum Code: Sendable, Hashable {
        /// `EAGAIN`: a non-blocking or timed call found nothing to do.
        case wouldBlock
        /// `ETERM`: the context is shutting down; the owner must close the socket.
        case contextTerminated
        /// `EHOSTUNREACH`: a ROUTER_MANDATORY socket has no peer with that routing id.
        case hostUnreachable
        /// `EFSM`: the socket's state machine does not allow this call now.
        case invalidState
        /// `EADDRINUSE`: the endpoint is already bound.
        case addressInUse
        /// `EINVAL` or `EPROTONOSUPPORT`: a bad endpoint, option or argument.
        case invalidArgument
        /// `ENOTSOCK`: the socket was already closed.
        case socketClosed
        /// `EMSGSIZE`: a received message had more frames than allowed and was dropped whole.
        case messageTooLarge
        /// Any other errno.
        case other
    }

    /// What went wrong, in the terms callers act on.
    public let code: Code
    /// The errno libzmq reported.
    public let errno: Int32
    /// The libzmq function that failed, e.g. `zmq_bind`.
    public let operation: String
    /// Extra context for logs (an endpoint or option name); never shown to users as-is.
    public let context: String

    /// Creates an error from an errno value.
    public init(errno: Int32, operation: String, context: String = "") {
        self.errno = errno
        self.operation = operation
        self.context = context
        self.code = switch errno {
        case EAGAIN: .wouldBlock
        case ETERM: .contextTerminated
        case EHOSTUNREACH: .hostUnreachable
        case EFSM: .invalidState
        case EADDRINUSE: .addressInUse
        case EINVAL, EPROTONOSUPPORT: .invalidArgument
        case ENOTSOCK: .socketClosed
        case EMSGSIZE: .messageTooLarge
        default: .other
        }
    }

    /// `zmq_bind failed: Address already in use`.
    public var description: String {
        "\(operation) failed: \(reason)"
    }

    /// libzmq's text for the errno: `Address already in use`.
    public var reason: String { String(cString: zmq_strerror(errno)) }

    /// The description plus errno and context.
    public var debugDescription: String {
        "ZMQError(\(code), errno: \(errno), operation: \(operation)\(context.isEmpty ? "" : ", context: \(context)")): \(String(cString: zmq_strerror(errno)))"
    }

    /// Runs a libzmq call, retrying while it fails with `EINTR`; throws on any other failure.
    ///
    /// - Returns: the call's non-negative return value.
    @discardableResult
    public static func check(_ operation: String, context: @autoclosure () -> String = "", _ call: () -> Int32) throws(ZMQError) -> Int32 {
        while true {
            let rc = call()
            if rc >= 0 { return rc }
            let err = slipway_zmq_errno()
            if err == EINTR { continue }
            throw ZMQError(errno: err, operation: operation, context: context())
        }
    }
}
