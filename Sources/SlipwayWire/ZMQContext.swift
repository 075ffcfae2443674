import CZeroMQ

/// A libzmq context: the I/O threads behind every socket made from it.
///
/// A context is thread-safe (libzmq guarantees it), unlike the sockets made from
/// it. Each socket keeps its context alive; the context is terminated when the
/// last reference goes away, after all of its sockets were closed.
public final class ZMQContext: @unchecked Sendable {
    // @unchecked: libzmq documents zmq_ctx_* as thread-safe, and the handle is
    // immutable for the object's life.
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` libzmq I/O threads, and room for
    /// `maxSockets` sockets (libzmq's default is 1023).
    public init(ioThreads: Int32 = 1, maxSockets: Int32? = nil) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else {
            throw ZMQError(errno: slipway_zmq_errno(), operation: "zmq_ctx_new")
        }
        self.handle = handle
        try ZMQError.check("zmq_ctx_set", context: "ZMQ_IO_THREADS") { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
        if let maxSockets {
            try ZMQError.check("zmq_ctx_set", context: "ZMQ_MAX_SOCKETS") { zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, maxSockets) }
        }
    }

    /// Makes every blocking call on this context's sockets fail with `.contextTerminated`,
    /// so their owners wake up, close their sockets and let the context end.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // Retry EINTR: a signal during termination must not leak the context.
        _ = try? ZMQError.check("zmq_ctx_term") { zmq_ctx_term(handle) }
    }

    /// The libzmq version this process runs against, e.g. (4, 3, 4).
    public static var libraryVersion: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether libzmq was built with `capability`, e.g. "curve".
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) == 1
    }
}
