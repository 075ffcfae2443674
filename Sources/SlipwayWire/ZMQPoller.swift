import CZeroMQ

/// What a poll waits for, and what it found.
public struct ZMQPollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    /// Creates events from libzmq's bit mask.
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// A message (or bytes, for a file descriptor) can be received without blocking.
    public static let readable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking.
    public static let writable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

/// Waits on several sockets, and optionally plain file descriptors (a libpq
/// connection's socket, say), at once — the heart of every daemon's I/O loop.
///
/// Like the sockets it holds, a poller belongs to one thread.
public final class ZMQPoller {
    private var sockets: [ZMQSocket?] = []
    private var items: [zmq_pollitem_t] = []

    /// An empty poller.
    public init() {}

    /// Adds a socket; returns its index in ``poll(wait:)``'s result.
    @discardableResult
    public func add(_ socket: ZMQSocket, _ events: ZMQPollEvents = .readable) throws(ZMQError) -> Int {
        let handle = try socket.checkedHandle()
        sockets.append(socket)
        items.append(zmq_pollitem_t(socket: handle, fd: 0, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Adds a file descriptor; returns its index in ``poll(wait:)``'s result.
    @discardableResult
    public func add(fileDescriptor: Int32, _ events: ZMQPollEvents = .readable) -> Int {
        sockets.append(nil)
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Waits until at least one item is ready or `wait` runs out.
    /// - Returns: for each item, in the order added, the events that are ready (empty after a timeout).
    public func poll(wait: ZMQWait) throws(ZMQError) -> [ZMQPollEvents] {
        // Refresh handles each time: a socket closed since `add` must not be polled.
        for (index, socket) in sockets.enumerated() {
            if let socket { items[index].socket = try socket.checkedHandle() }
        }
        if let socket = sockets.first(where: { $0 != nil }) { socket?.checkMayBlock(wait) }
        let count = items.count
        _ = try items.withUnsafeMutableBufferPointer { buffer throws(ZMQError) in
            try ZMQError.check("zmq_poll") { zmq_poll(buffer.baseAddress, Int32(count), wait.pollMilliseconds) }
        }
        return items.map { ZMQPollEvents(rawValue: $0.revents) }
    }
}
