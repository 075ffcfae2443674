public import Logging
public import SlipwayCore

/// What one peer of a bound socket may make the daemon hold, set where the
/// socket is made: the largest frame libzmq accepts (a bigger one drops the
/// peer), complete messages waiting to be read and replies waiting to be sent
/// per peer, and the ``ConnectionGuard`` that cuts a peer past them.
public struct ServerLimits: Sendable {
    /// The largest legitimate message on the socket, all frames together.
    public var largestMessage: Int
    /// Complete messages a peer may have waiting to be read (ZMQ_RCVHWM).
    public var receiveQueue: Int32
    /// Messages to a peer waiting to leave (ZMQ_SNDHWM); past it, sends say
    /// "would block" and the daemon answers `busy` or drops the reply.
    public var sendQueue: Int32

    /// Limits for a socket whose messages are at most `largestMessage` bytes.
    public init(largestMessage: Int, receiveQueue: Int32 = 64, sendQueue: Int32 = 64) {
        self.largestMessage = largestMessage
        self.receiveQueue = receiveQueue
        self.sendQueue = sendQueue
    }

    /// Requests and replies of a few KiB to 1 MiB: intake, tracker, snapshots, piece requests.
    public static let control = ServerLimits(largestMessage: (1 << 20) + (64 << 10))

    /// The most one peer can make the socket hold in messages it sent:
    /// `receiveQueue` complete ones and one in progress.
    public var inboundPerPeer: Int { largestMessage * (Int(receiveQueue) + 1) }
}

extension ZMQSocket {
    /// A ROUTER bound to `endpoint` with `limits` and `security`, watched by a
    /// ``ConnectionGuard`` that cuts a peer holding more than they allow.
    public static func boundedRouter(context: ZMQContext, endpoint: Endpoint, limits: ServerLimits,
                                     security: ServerSecurity, daemon: String, name: String, logger: Logger,
                                     configure: (ZMQSocket) throws -> Void = { _ in }) throws -> (ZMQSocket, ConnectionGuard) {
        let socket = try ZMQSocket(context: context, type: .router)
        for option in security.options { try socket.set(option) }
        try socket.set(.routerMandatory(true))
        try socket.set(.maxMessageSize(Int64(limits.largestMessage)))
        try socket.set(.receiveHighWaterMark(limits.receiveQueue))
        try socket.set(.sendHighWaterMark(limits.sendQueue))
        try configure(socket)
        try socket.bind(endpoint)
        let watch = try ConnectionGuard(socket: socket, daemon: daemon, name: name, partialBound: limits.largestMessage,
                                        queuedBound: limits.largestMessage * Int(limits.receiveQueue),
                                        curve: security.isCurve, logger: logger)
        return (socket, watch)
    }
}
