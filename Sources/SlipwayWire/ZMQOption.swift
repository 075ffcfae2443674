import CZeroMQ

/// A socket option Slipway sets; see `zmq_setsockopt(3)` for each.
public enum ZMQOption: Sendable, Hashable {
    /// Messages queued per peer before sends block or drop (0 = unlimited).
    case sendHighWaterMark(Int32)
    /// Messages queued per peer on the receiving side (0 = unlimited).
    case receiveHighWaterMark(Int32)
    /// ZMQ_SNDBUF: the kernel's send buffer per connection, in bytes (0: the OS default).
    case sendBuffer(Int32)
    /// How long unsent messages are kept after close; `nil` waits forever.
    case linger(Duration?)
    /// Queue messages only to completed connections (no queueing to a peer not yet up).
    case immediate(Bool)
    /// This socket's identity as seen by a ROUTER peer.
    case routingID([UInt8])
    /// ROUTER: fail with `.hostUnreachable` instead of silently dropping unroutable messages.
    case routerMandatory(Bool)
    /// ROUTER: a new connection with a routing id already in use takes it over
    /// (a peer that reconnected) instead of being refused.
    case routerHandover(Bool)
    /// Send a ZMTP PING this often.
    case heartbeatInterval(Duration)
    /// Close the connection if no traffic arrives this long after a PING.
    case heartbeatTimeout(Duration)
    /// Ask the peer to time us out after this long without traffic.
    case heartbeatTTL(Duration)
    /// SUB: receive messages whose first frame starts with this prefix (empty = all).
    case subscribe([UInt8])
    /// SUB: stop receiving a prefix.
    case unsubscribe([UInt8])
    /// Act as the CURVE server (needs ``curveSecretKey(_:)``).
    case curveServer(Bool)
    /// This socket's long-term CURVE public key.
    case curvePublicKey(CurveKey)
    /// This socket's long-term CURVE secret key.
    case curveSecretKey(CurveKey)
    /// Client: the server's CURVE public key.
    case curveServerKey(CurveKey)
    /// The ZAP domain: which trust folder the context's ZAP handler checks clients against.
    case zapDomain(String)
    /// Refuse clients when no ZAP handler answers, instead of admitting them
    /// (libzmq's default, kept for old code); libzmq's option 93, a draft.
    case zapEnforceDomain(Bool)
    /// Largest inbound frame accepted; larger ones drop the connection (-1 = no limit).
    case maxMessageSize(Int64)
    /// Delay before reconnecting after a dropped connection.
    case reconnectInterval(Duration)
    /// Upper bound of the exponential reconnect back-off (0 = no back-off).
    case reconnectIntervalMax(Duration)
    /// XPUB: pass every subscription message up, duplicates included.
    case xpubVerbose(Bool)
}

extension ZMQSocket {
    /// Sets one option.
    public func set(_ option: ZMQOption) throws(ZMQError) {
        switch option {
        case .sendHighWaterMark(let n): try setInt(ZMQ_SNDHWM, n, "ZMQ_SNDHWM")
        case .receiveHighWaterMark(let n): try setInt(ZMQ_RCVHWM, n, "ZMQ_RCVHWM")
        case .sendBuffer(let n): try setInt(ZMQ_SNDBUF, n, "ZMQ_SNDBUF")
        case .linger(let d): try setInt(ZMQ_LINGER, d.map { Int32(clamping: $0.wholeMilliseconds) } ?? -1, "ZMQ_LINGER")
        case .immediate(let on): try setInt(ZMQ_IMMEDIATE, on ? 1 : 0, "ZMQ_IMMEDIATE")
        case .routingID(let id): try setBytes(ZMQ_ROUTING_ID, id, "ZMQ_ROUTING_ID")
        case .routerMandatory(let on): try setInt(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
        case .routerHandover(let on): try setInt(ZMQ_ROUTER_HANDOVER, on ? 1 : 0, "ZMQ_ROUTER_HANDOVER")
        case .heartbeatInterval(let d): try setInt(ZMQ_HEARTBEAT_IVL, Int32(clamping: d.wholeMilliseconds), "ZMQ_HEARTBEAT_IVL")
        case .heartbeatTimeout(let d): try setInt(ZMQ_HEARTBEAT_TIMEOUT, Int32(clamping: d.wholeMilliseconds), "ZMQ_HEARTBEAT_TIMEOUT")
        case .heartbeatTTL(let d): try setInt(ZMQ_HEARTBEAT_TTL, Int32(clamping: d.wholeMilliseconds), "ZMQ_HEARTBEAT_TTL")
        case .subscribe(let prefix): try setBytes(ZMQ_SUBSCRIBE, prefix, "ZMQ_SUBSCRIBE")
        case .unsubscribe(let prefix): try setBytes(ZMQ_UNSUBSCRIBE, prefix, "ZMQ_UNSUBSCRIBE")
        case .curveServer(let on):
            try setInt(ZMQ_CURVE_SERVER, on ? 1 : 0, "ZMQ_CURVE_SERVER")
            zap.curveServer = on
        case .curvePublicKey(let key): try setBytes(ZMQ_CURVE_PUBLICKEY, key.bytes, "ZMQ_CURVE_PUBLICKEY")
        case .curveSecretKey(let key): try setBytes(ZMQ_CURVE_SECRETKEY, key.bytes, "ZMQ_CURVE_SECRETKEY")
        case .curveServerKey(let key): try setBytes(ZMQ_CURVE_SERVERKEY, key.bytes, "ZMQ_CURVE_SERVERKEY")
        case .zapDomain(let domain):
            try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZMQ_ZAP_DOMAIN")
            zap.domain = !domain.isEmpty
        case .zapEnforceDomain(let on):
            try setInt(93, on ? 1 : 0, "ZMQ_ZAP_ENFORCE_DOMAIN")
            zap.enforced = on
        case .maxMessageSize(let n):
            var value = n
            let handle = try checkedHandle()
            try ZMQError.check("zmq_setsockopt", context: "ZMQ_MAXMSGSIZE") {
                zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &value, MemoryLayout<Int64>.size)
            }
        case .reconnectInterval(let d): try setInt(ZMQ_RECONNECT_IVL, Int32(clamping: d.wholeMilliseconds), "ZMQ_RECONNECT_IVL")
        case .reconnectIntervalMax(let d): try setInt(ZMQ_RECONNECT_IVL_MAX, Int32(clamping: d.wholeMilliseconds), "ZMQ_RECONNECT_IVL_MAX")
        case .xpubVerbose(let on): try setInt(ZMQ_XPUB_VERBOSE, on ? 1 : 0, "ZMQ_XPUB_VERBOSE")
        }
    }

    /// Reads an integer option, e.g. `ZMQ_SNDHWM` (for tests and diagnostics).
    public func intOption(_ option: Int32) throws(ZMQError) -> Int32 {
        try Self.intOption(checkedHandle(), option, operation: "zmq_getsockopt", context: "\(option)")
    }

    /// One `getsockopt` of an integer option on `handle`; errors name `operation` and `context`.
    static func intOption(_ handle: UnsafeMutableRawPointer, _ option: Int32, operation: String, context: String) throws(ZMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try ZMQError.check(operation, context: context) { zmq_getsockopt(handle, option, &value, &size) }
        return value
    }

    /// This socket's routing id (as set, or as assigned by libzmq).
    public func routingID() throws(ZMQError) -> [UInt8] {
        try getBytes(ZMQ_ROUTING_ID, capacity: 256, name: "ZMQ_ROUTING_ID")
    }

    private func setInt(_ option: Int32, _ value: Int32, _ name: String) throws(ZMQError) {
        let handle = try checkedHandle()
        var value = value
        try ZMQError.check("zmq_setsockopt", context: name) {
            zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size)
        }
    }

    private func setBytes(_ option: Int32, _ bytes: [UInt8], _ name: String) throws(ZMQError) {
        let handle = try checkedHandle()
        try ZMQError.check("zmq_setsockopt", context: name) {
            bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        }
    }

    func getBytes(_ option: Int32, capacity: Int, name: String) throws(ZMQError) -> [UInt8] {
        let handle = try checkedHandle()
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        try ZMQError.check("zmq_getsockopt", context: name) {
            buffer.withUnsafeMutableBytes { zmq_getsockopt(handle, option, $0.baseAddress, &size) }
        }
        return Array(buffer.prefix(size))
    }
}
