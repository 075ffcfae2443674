import CZeroMQ

/// libzmq's built-in proxy (`zmq_proxy_steerable`): forwards every message
/// between two sockets in both directions (XSUB ↔ XPUB for a PUB/SUB hub,
/// ROUTER ↔ DEALER for a request broker), copying each one to an optional
/// capture socket, until `TERMINATE` arrives on the control socket.
public enum ZMQProxy {
    /// Runs the proxy on the calling thread, which must own all four sockets
    /// (an `OwnedThread`); returns after a `TERMINATE` on `control`.
    public static func run(frontend: ZMQSocket, backend: ZMQSocket, capture: ZMQSocket?, control: ZMQSocket) throws(ZMQError) {
        frontend.checkMayBlock(.forever)
        let front = try frontend.checkedHandle()
        let back = try backend.checkedHandle()
        let copy = try capture?.checkedHandle()
        let steer = try control.checkedHandle()
        _ = try ZMQError.check("zmq_proxy_steerable") { zmq_proxy_steerable(front, back, copy, steer) }
    }
}
