import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif
import SlipwayThreads

/// One libzmq socket, owned by the thread that created it.
///
/// libzmq sockets are not thread-safe, so this class is deliberately not
/// `Sendable`: the compiler keeps it inside the isolation domain that made it
/// (normally an actor pinned to an ``SlipwayThreads/OwnedThread``). Every call
/// also checks at run time that it comes from the creating thread, and calls
/// that can block (``ZMQWait/forever`` and ``ZMQWait/timeout(_:)``) must run on an
/// `OwnedThread`, never on Swift's cooperative pool.
///
/// Sockets are created with LINGER of 1 second so that closing never hangs the
/// context for long, and with a 64 MiB limit on inbound frames so that a hostile
/// peer cannot make libzmq buffer gigabytes; set ``ZMQOption/linger(_:)`` and
/// ``ZMQOption/maxMessageSize(_:)`` to change them.
public final class ZMQSocket {
    /// The inbound frame limit new sockets get (64 MiB: sixteen 4 MiB artifact pieces).
    public static let defaultMaxMessageSize: Int64 = 64 << 20

    /// The socket pattern.
    public let type: ZMQSocketType
    let context: ZMQContext
    var handle: UnsafeMutableRawPointer?
    private let owner: pthread_t
    /// Counts the wire bytes of every message received, per connection, when a
    /// ``ConnectionGuard`` watches this socket.
    var ledger: DeliveryLedger?
    /// The authenticated identity (the ZAP handler's user id, `role/name`) of the
    /// peer that sent the message received last. Set only on a CURVE server socket
    /// with a ZAP domain and ``ZMQOption/zapEnforceDomain(_:)``: anywhere else a
    /// peer could name itself (libzmq passes a peer's own "User-Id" property
    /// through when ZAP did not run), so it stays nil. Read it right after
    /// receiving, before the next receive.
    public internal(set) var peerUserID: String?
    /// The CURVE public key (Z85) the ZAP handler admitted that peer with (its
    /// `X-Curve-Key` property), set when ``peerUserID`` is: a daemon checks it is
    /// still trusted, so a revoked key is refused on connections made before.
    public internal(set) var peerCurveKey: String?
    /// The property the ZAP handler sets to the admitted client's public key.
    public static let curveKeyProperty = "X-Curve-Key"
    /// What the options say about ZAP: ``peerUserID`` is only trusted when all hold.
    var zap = (curveServer: false, domain: false, enforced: false)
    /// Inside a multipart message (the user id is the first one its frames carry).
    var receivingMessage = false
    /// Its `ZMQ_EVENTS` as ``ZMQPoller`` last read them, valid until ``eventsUnknown``:
    /// any call on the socket may run libzmq's pending commands, which changes its
    /// events without its notification descriptor saying so.
    var polledEvents: Int16 = 0
    var eventsUnknown = true
    /// libzmq's `ZMQ_FD`: readable when commands wait for the socket (read once, when first polled).
    var notificationDescriptor: Int32?

    /// Creates a socket on `context`, owned by the calling thread.
    public init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError(errno: slipway_zmq_errno(), operation: "zmq_socket", context: "\(type)")
        }
        self.type = type
        self.context = context
        self.handle = handle
        self.owner = pthread_self()
        try set(.linger(.seconds(1)))
        try set(.maxMessageSize(Self.defaultMaxMessageSize))
    }

    deinit {
        // The last reference may be released on any thread; nothing else can use
        // the socket any more, and libzmq allows a socket to migrate threads with a
        // full memory barrier between uses, which the release provides.
        if let handle { zmq_close(handle) }
    }

    /// Accepts connections on `endpoint`, e.g. `tcp://127.0.0.1:*` or `inproc://name`.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let handle = try checkedHandle()
        try ZMQError.check("zmq_bind", context: endpoint) { zmq_bind(handle, endpoint) }
    }

    /// Connects to `endpoint`; libzmq reconnects by itself when the peer restarts.
    /// A DEALER connected to `endpoint` with LINGER 0, for request/reply with
    /// retries (Lazy Pirate): on a timeout the socket is closed and replaced, and
    /// whatever it had not sent yet goes with it instead of holding up close.
    /// `options` are set before connecting (high-water marks apply only to
    /// connections made after them).
    public static func requestDealer(context: ZMQContext, connectedTo endpoint: String,
                                     options: [ZMQOption] = []) throws(ZMQError) -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer)
        try socket.set(.linger(.zero))
        for option in options { try socket.set(option) }
        try socket.connect(endpoint)
        return socket
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        let handle = try checkedHandle()
        try ZMQError.check("zmq_connect", context: endpoint) { zmq_connect(handle, endpoint) }
    }

    /// Stops accepting on an endpoint given to ``bind(_:)``.
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let handle = try checkedHandle()
        try ZMQError.check("zmq_unbind", context: endpoint) { zmq_unbind(handle, endpoint) }
    }

    /// Drops a connection made with ``connect(_:)``.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let handle = try checkedHandle()
        try ZMQError.check("zmq_disconnect", context: endpoint) { zmq_disconnect(handle, endpoint) }
    }

    /// The endpoint of the last bind, with a wildcard port resolved (`tcp://127.0.0.1:41234`).
    public func lastEndpoint() throws(ZMQError) -> String {
        let bytes = try getBytes(ZMQ_LAST_ENDPOINT, capacity: 1_024, name: "ZMQ_LAST_ENDPOINT")
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Closes the socket now; later calls throw `.socketClosed`.
    public func close() {
        checkOwner()
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    /// True until ``close()``.
    public var isOpen: Bool { handle != nil }

    func checkedHandle() throws(ZMQError) -> UnsafeMutableRawPointer {
        eventsUnknown = true
        return try pollingHandle()
    }

    /// The handle, for ``ZMQPoller``'s own calls: those read the events, so they leave them known.
    func pollingHandle() throws(ZMQError) -> UnsafeMutableRawPointer {
        checkOwner()
        guard let handle else { throw ZMQError(errno: ENOTSOCK, operation: "socket", context: "closed") }
        return handle
    }

    /// Reads `ZMQ_EVENTS` (running the socket's pending commands, which quiets its notification descriptor).
    func refreshEvents(_ handle: UnsafeMutableRawPointer) throws(ZMQError) {
        // Until read, unknown: a poll after a failed read (the context ending) reads again and fails again.
        eventsUnknown = true
        polledEvents = Int16(truncatingIfNeeded: try Self.intOption(handle, ZMQ_EVENTS, operation: "zmq_poll", context: "ZMQ_EVENTS"))
        eventsUnknown = false
    }

    /// `ZMQ_EVENTS` now, kept for ``ZMQPoller`` (which then need not read them again this turn).
    func currentEvents() throws(ZMQError) -> Int32 {
        try refreshEvents(pollingHandle())
        return Int32(polledEvents)
    }

    /// `ZMQ_FD`, read once.
    func notificationDescriptor(_ handle: UnsafeMutableRawPointer) throws(ZMQError) -> Int32 {
        if let notificationDescriptor { return notificationDescriptor }
        let value = try Self.intOption(handle, ZMQ_FD, operation: "zmq_getsockopt", context: "ZMQ_FD")
        notificationDescriptor = value
        return value
    }

    func checkOwner() {
        precondition(pthread_equal(owner, pthread_self()) != 0,
                     "ZMQSocket(\(type)) used from a thread that does not own it; keep each socket in one actor or OwnedThread")
    }

    func checkMayBlock(_ wait: ZMQWait) {
        if wait.blocks {
            precondition(OwnedThread.isOnOwnedThread,
                         "blocking ZMQSocket call off an OwnedThread; use ZMQWait.never here or run the socket on an OwnedThread")
        }
    }
}
