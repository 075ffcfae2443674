import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

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
    /// A socket (its events read through libzmq) or a plain file descriptor, and what to wait for.
    private struct Item {
        let socket: ZMQSocket?
        let fd: Int32
        let events: Int16
    }

    private var items: [Item] = []

    /// An empty poller.
    public init() {}

    /// Adds a socket; returns its index in ``poll(wait:)``'s result.
    @discardableResult
    public func add(_ socket: ZMQSocket, _ events: ZMQPollEvents = .readable) throws(ZMQError) -> Int {
        // Refused if closed; not `checkedHandle`: adding a socket does not change its events.
        _ = try socket.pollingHandle()
        items.append(Item(socket: socket, fd: -1, events: events.rawValue))
        return items.count - 1
    }

    /// Adds a file descriptor; returns its index in ``poll(wait:)``'s result.
    @discardableResult
    public func add(fileDescriptor: Int32, _ events: ZMQPollEvents = .readable) -> Int {
        items.append(Item(socket: nil, fd: fileDescriptor, events: events.rawValue))
        return items.count - 1
    }

    /// Waits until at least one item is ready or `wait` runs out.
    ///
    /// As `zmq_poll`, but a socket is asked for its `ZMQ_EVENTS` (a system call or two
    /// in libzmq) only when a call on it since it was last asked may have changed them,
    /// or when its notification descriptor says commands wait for it. `zmq_poll` asks
    /// every socket on every pass: measured, about 50 system calls per turn of an
    /// agent's loop with 20 sockets, most of its CPU while it downloads.
    /// - Returns: for each item, in the order added, the events that are ready (empty after a timeout).
    public func poll(wait: ZMQWait) throws(ZMQError) -> [ZMQPollEvents] {
        let count = items.count
        // Refresh handles each time: a socket closed since `add` must not be polled.
        var handles: [UnsafeMutableRawPointer?] = []
        var descriptors: [pollfd] = []
        handles.reserveCapacity(count)
        descriptors.reserveCapacity(count)
        for item in items {
            if let socket = item.socket {
                let handle = try socket.pollingHandle()
                handles.append(handle)
                descriptors.append(pollfd(fd: try socket.notificationDescriptor(handle), events: Int16(POLLIN), revents: 0))
            } else {
                handles.append(nil)
                var events: Int16 = 0
                if item.events & Int16(ZMQ_POLLIN) != 0 { events |= Int16(POLLIN) }
                if item.events & Int16(ZMQ_POLLOUT) != 0 { events |= Int16(POLLOUT) }
                descriptors.append(pollfd(fd: item.fd, events: events, revents: 0))
            }
        }
        if let socket = items.first(where: { $0.socket != nil })?.socket { socket.checkMayBlock(wait) }
        for (index, item) in items.enumerated() where item.socket?.eventsUnknown == true {
            try item.socket!.refreshEvents(handles[index]!)
        }
        var ready = [Int16](repeating: 0, count: count)
        // A socket's entry is read from the socket, so one polled twice reads the same, fresh events.
        func readSockets() {
            for (index, item) in items.enumerated() { if let socket = item.socket { ready[index] = socket.polledEvents & item.events } }
        }
        readSockets()
        let deadline: ContinuousClock.Instant? = if case .timeout(let duration) = wait { .now + duration } else { nil }
        while true {
            var timeout: Int32 = -1
            if ready.contains(where: { $0 != 0 }) || wait == .never {
                timeout = 0
            } else if let deadline {
                let left = deadline - .now
                timeout = left <= .zero ? 0 : Int32(clamping: left.wholeMilliseconds)
            }
            let found = descriptors.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t(count), timeout) }
            if found < 0 {
                guard errno == EINTR else { throw ZMQError(errno: errno, operation: "zmq_poll", context: "poll") }
                continue
            }
            for (index, item) in items.enumerated() where descriptors[index].revents != 0 {
                if let socket = item.socket {
                    try socket.refreshEvents(handles[index]!)
                } else {
                    let revents = descriptors[index].revents
                    var events: Int16 = 0
                    if revents & Int16(POLLIN) != 0 { events |= Int16(ZMQ_POLLIN) }
                    if revents & Int16(POLLOUT) != 0 { events |= Int16(ZMQ_POLLOUT) }
                    if revents & ~Int16(POLLIN | POLLOUT | POLLPRI) != 0 { events |= Int16(ZMQ_POLLERR) }
                    ready[index] = events
                }
            }
            readSockets()
            if timeout == 0 || ready.contains(where: { $0 != 0 }) { break }
            if let deadline, ContinuousClock.now >= deadline { break }
        }
        return ready.map { ZMQPollEvents(rawValue: $0) }
    }
}
