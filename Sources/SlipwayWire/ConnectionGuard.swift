import CSystemShims
import CZeroMQ
public import Logging
import SlipwayCore
import SlipwayMetrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Wire bytes of the messages a socket delivered, per connection (the
/// connection's descriptor, which libzmq attaches to every frame), and whether
/// the socket's owner found nothing left to read the last time it looked.
/// Written by the socket's thread, read by the ``ConnectionWatch`` thread.
final class DeliveryLedger: Sendable {
    /// Who is at the other end of an accepted connection, to check later that
    /// a descriptor number still is that connection.
    struct Identity: Sendable, Equatable {
        let localPort: Int32
        let peer: String
    }

    private struct State {
        var bytes: [Int32: UInt64] = [:]
        var connections: [Int32: Identity] = [:]
        /// When the owner last found nothing complete waiting on the socket.
        var drainedAt = ContinuousClock.now
    }

    private let curve: Bool
    private let state = Mutex(State())

    init(curve: Bool) { self.curve = curve }

    /// One frame of `size` bytes arrived from the connection `descriptor`.
    func delivered(_ size: Int, from descriptor: Int32) {
        guard descriptor >= 0 else { return }
        // ZMTP 3 frame header (2 bytes, 9 past 255), plus CURVE's MESSAGE command (33 bytes) when encrypted.
        let body = curve ? size + 33 : size
        let onWire = UInt64(body + (body < 256 ? 2 : 9))
        state.withLock { $0.bytes[descriptor, default: 0] += onWire }
    }

    /// The owner found nothing complete waiting on the socket.
    func foundNothing(now: ContinuousClock.Instant = .now) { state.withLock { $0.drainedAt = now } }

    /// Whether the owner found nothing waiting within the last `recent`: then
    /// all a connection holds is a message in progress. A busy owner (messages
    /// waiting unread) says nothing about the messages, so this stays false.
    func drained(within recent: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { now - $0.drainedAt <= recent }
    }
    var connections: [Int32: Identity] { state.withLock { $0.connections } }
    /// Bytes delivered from the connection so far.
    func delivered(_ descriptor: Int32) -> UInt64 { state.withLock { $0.bytes[descriptor] ?? 0 } }

    /// What libzmq holds for the connection: `arrived` minus what was delivered.
    /// Delivered past arrived (framing estimates) is brought down to it, in the
    /// same step, so estimates never build up credit.
    func held(_ descriptor: Int32, arrived: UInt64) -> UInt64 {
        state.withLock { state in
            let delivered = state.bytes[descriptor] ?? 0
            guard arrived > delivered else {
                state.bytes[descriptor] = arrived
                return 0
            }
            return arrived - delivered
        }
    }

    /// A new connection: what arrived on it before now counts as delivered (the
    /// handshake, and frames the owner read before it saw the connection).
    func accepted(_ descriptor: Int32, _ identity: Identity, arrived: UInt64) {
        state.withLock {
            $0.connections[descriptor] = identity
            $0.bytes[descriptor] = max($0.bytes[descriptor] ?? 0, arrived)
        }
    }

    func forget(_ descriptor: Int32) {
        state.withLock {
            $0.bytes[descriptor] = nil
            $0.connections[descriptor] = nil
        }
    }
}

/// Keeps what one bound socket's peers can make the daemon hold bounded.
///
/// libzmq buffers a multipart message until its last frame has arrived, without
/// limit (`ZMQ_MAXMSGSIZE` bounds one frame), and the application cannot see a
/// message before it is complete: a peer that never finishes one grows the
/// daemon inside libzmq, by about 64 bytes per empty frame it sends. What libzmq
/// holds for a connection is what the kernel received on it (`TCP_INFO`), minus
/// what is still unread in the kernel, minus what the socket delivered. The
/// process-wide ``ConnectionWatch`` looks at that every 20 ms when memory
/// grows (once a second otherwise) and cuts (`shutdown`) a connection that
/// holds more than one largest legitimate message while its socket has nothing
/// complete to read (``partialBound``), more than ``queuedBound`` otherwise, or
/// the most of all when the process is past its memory ceiling (tiny frames
/// cost libzmq 32 times their wire size, so the wire bound alone is not enough).
/// libzmq then drops the partial message, and the freed memory goes back to the
/// system (`malloc_trim`).
///
/// Create it on the socket's thread, right after binding; keep it as long as
/// the socket, and poll ``events`` with the socket: when it is readable, call
/// ``poll()`` (it takes in new connections, which must be known before the
/// watch can see what they hold).
public final class ConnectionGuard {
    let ledger: DeliveryLedger
    private let socket: ZMQSocket
    private let monitor: ZMQSocket
    private let id: Int

    /// Watches `socket` (bound, TCP) as `daemon`'s socket `name`.
    /// - Parameters:
    ///   - partialBound: the most a connection may hold while the socket has
    ///     nothing complete to read: its largest legitimate message.
    ///   - queuedBound: the most while complete messages wait to be read.
    ///   - curve: the socket runs CURVE (each frame carries 33 more bytes).
    public init(socket: ZMQSocket, daemon: String, name: String, partialBound: Int, queuedBound: Int,
                curve: Bool = false, logger: Logger) throws {
        self.socket = socket
        ledger = DeliveryLedger(curve: curve)
        let endpoint = "inproc://slipway-guard-\(WireMessage.newMessageID())"
        let handle = try socket.checkedHandle()
        try ZMQError.check("zmq_socket_monitor", context: endpoint) {
            zmq_socket_monitor(handle, endpoint, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED)
        }
        monitor = try ZMQSocket(context: socket.context, type: .pair)
        try monitor.set(.linger(.zero))
        try monitor.set(.receiveHighWaterMark(0))
        try monitor.connect(endpoint)
        socket.ledger = ledger
        id = ConnectionWatch.shared.add(ConnectionWatch.Watched(
            ledger: ledger, daemon: daemon, name: name,
            partialBound: partialBound, queuedBound: max(queuedBound, partialBound), logger: logger))
    }

    deinit { stop() }

    /// Stops watching; call it before closing the socket. libzmq sends monitor
    /// events from its I/O thread with blocking sends: once the reading end is
    /// gone, the events of a socket still shutting down (a disconnect per peer,
    /// its listeners closing) block that thread, and every socket it serves with
    /// it; a coordinator that stepped down kept its ports for half a minute so.
    public func stop() {
        guard monitor.isOpen else { return }
        ConnectionWatch.shared.remove(id)
        socket.ledger = nil
        if let handle = socket.handle { _ = zmq_socket_monitor(handle, nil, 0) }
        monitor.close()
    }

    /// The socket that is readable when connections were accepted or closed.
    public var events: ZMQSocket { monitor }

    /// Takes in connections accepted and closed since the last call, and notes
    /// whether complete messages wait on the socket.
    public func poll() {
        if ((try? socket.currentEvents()) ?? ZMQ_POLLIN) & ZMQ_POLLIN == 0 { ledger.foundNothing() }
        while let frames = try? monitor.receive(wait: .never, maxFrames: 2), let event = frames.first, event.count >= 6 {
            let kind = Int32(UInt16(event[0]) | UInt16(event[1]) << 8)
            let descriptor = Int32(bitPattern: UInt32(event[2]) | UInt32(event[3]) << 8 | UInt32(event[4]) << 16 | UInt32(event[5]) << 24)
            if kind == ZMQ_EVENT_ACCEPTED {
                if let identity = ConnectionWatch.identity(of: descriptor) {
                    ledger.accepted(descriptor, identity, arrived: ConnectionWatch.arrived(descriptor) ?? 0)
                    ConnectionWatch.shared.connectionAccepted()
                }
            } else {
                ledger.forget(descriptor)
                ConnectionWatch.shared.trimSoon()
            }
        }
    }

    /// Connections cut for this socket since start.
    public var cut: Int { ConnectionWatch.shared.cut(id) }
}
