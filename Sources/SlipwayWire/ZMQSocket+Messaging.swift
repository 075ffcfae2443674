import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

extension ZMQSocket {
    /// Sends a multipart message: all frames arrive together or not at all.
    ///
    /// Frames are copied once into libzmq messages (`zmq_msg_t`), so any size
    /// works; nothing is truncated.
    /// - Returns: false when `wait` ran out before the message could be queued
    ///   (high-water mark reached, or no peer for PUSH/DEALER); nothing was sent.
    @discardableResult
    public func send(_ frames: [[UInt8]], wait: ZMQWait = .forever) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        for (index, frame) in frames.enumerated() {
            let more = index < frames.count - 1
            // Once the first frame is queued, libzmq accepts the rest of the message.
            let accepted = try send(frame: frame, more: more, wait: index == 0 ? wait : .forever, checkBlocking: index == 0)
            if !accepted { return false }
        }
        return true
    }

    /// Sends one frame; `more` says another frame of the same message follows.
    /// - Returns: false when `wait` ran out before the frame could be queued.
    @discardableResult
    public func send(frame: [UInt8], more: Bool = false, wait: ZMQWait = .forever) throws(ZMQError) -> Bool {
        try send(frame: frame, more: more, wait: wait, checkBlocking: true)
    }

    private func send(frame: [UInt8], more: Bool, wait: ZMQWait, checkBlocking: Bool) throws(ZMQError) -> Bool {
        let handle = try checkedHandle()
        if checkBlocking { checkMayBlock(wait) }
        if case .timeout = wait, try !poll(ZMQ_POLLOUT, wait) { return false }
        var flags: Int32 = more ? ZMQ_SNDMORE : 0
        if wait != .forever { flags |= ZMQ_DONTWAIT }
        var message = zmq_msg_t()
        try ZMQError.check("zmq_msg_init_size") { zmq_msg_init_size(&message, frame.count) }
        if !frame.isEmpty {
            frame.withUnsafeBytes { source in
                zmq_msg_data(&message).copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
        }
        do {
            try ZMQError.check("zmq_msg_send") { zmq_msg_send(&message, handle, flags) }
            return true
        } catch {
            zmq_msg_close(&message)
            if error.code == .wouldBlock { return false }
            throw error
        }
    }

    /// Receives one whole multipart message.
    ///
    /// A message with more than `maxFrames` frames is read to its end, dropped
    /// whole and reported as `EMSGSIZE`, so the socket stays in step with its peer.
    /// - Returns: nil when `wait` ran out with nothing to receive.
    public func receive(wait: ZMQWait = .forever, maxFrames: Int = 16) throws(ZMQError) -> [[UInt8]]? {
        guard let first = try receiveFrame(wait: wait, checkBlocking: true, keep: true, onWire: type != .router) else {
            return nil
        }
        var frames = [first.bytes]
        var more = first.more
        var overflow = false
        while more {
            // The rest of a multipart message is already here: libzmq delivers it atomically.
            // Frames past the limit are read (to stay in step) but not copied out.
            let keep = frames.count < maxFrames
            guard let next = try receiveFrame(wait: .forever, checkBlocking: false, keep: keep, onWire: true) else { break }
            more = next.more
            if keep { frames.append(next.bytes) } else { overflow = true }
        }
        if overflow {
            throw ZMQError(errno: EMSGSIZE, operation: "zmq_msg_recv", context: "message has more than \(maxFrames) frames")
        }
        return frames
    }

    /// Receives the next message like ``receive(wait:maxFrames:)``, but a message
    /// with more than `maxFrames` frames is dropped and reported to `dropped`
    /// instead of thrown: for a daemon's loop it is bad input to count, not a
    /// socket failure.
    public func receive(wait: ZMQWait, maxFrames: Int = 16, droppingOversize dropped: () -> Void) throws(ZMQError) -> [[UInt8]]? {
        while true {
            do {
                return try receive(wait: wait, maxFrames: maxFrames)
            } catch {
                guard error.code == .messageTooLarge else { throw error }
                dropped()
            }
        }
    }

    /// Receives one frame and whether more frames of the same message follow.
    /// - Returns: nil when `wait` ran out with nothing to receive.
    public func receiveFrame(wait: ZMQWait = .forever) throws(ZMQError) -> (bytes: [UInt8], more: Bool)? {
        try receiveFrame(wait: wait, checkBlocking: true, keep: true, onWire: true)
    }

    /// `keep`: copy the bytes out (else an empty array stands for them).
    /// `onWire`: the frame crossed the connection (a ROUTER's routing-id frame did not).
    private func receiveFrame(wait: ZMQWait, checkBlocking: Bool, keep: Bool, onWire: Bool) throws(ZMQError) -> (bytes: [UInt8], more: Bool)? {
        let handle = try checkedHandle()
        if checkBlocking { checkMayBlock(wait) }
        if case .timeout = wait, try !poll(ZMQ_POLLIN, wait) { return nil }
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        do {
            try ZMQError.check("zmq_msg_recv") { zmq_msg_recv(&message, handle, wait == .forever ? 0 : ZMQ_DONTWAIT) }
        } catch {
            if error.code == .wouldBlock { return nil }
            throw error
        }
        let size = zmq_msg_size(&message)
        // A ROUTER's routing-id frame is made locally and carries no metadata: take the first frame that does.
        if !receivingMessage {
            peerUserID = nil
            peerCurveKey = nil
        }
        if peerUserID == nil, zap.curveServer, zap.domain, zap.enforced {
            peerUserID = zmq_msg_gets(&message, "User-Id").map { String(cString: $0) }
            peerCurveKey = zmq_msg_gets(&message, Self.curveKeyProperty).map { String(cString: $0) }
        }
        receivingMessage = zmq_msg_more(&message) != 0
        if onWire, let ledger {
            ledger.delivered(size, from: zmq_msg_get(&message, ZMQ_SRCFD))
        }
        let bytes = size == 0 || !keep ? [] : [UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: size))
        return (bytes, zmq_msg_more(&message) != 0)
    }

    /// Waits until the socket is ready for `events` (ZMQ_POLLIN or ZMQ_POLLOUT).
    private func poll(_ events: Int32, _ wait: ZMQWait) throws(ZMQError) -> Bool {
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(events), revents: 0)
        let ready = try ZMQError.check("zmq_poll") { zmq_poll(&item, 1, wait.pollMilliseconds) }
        return ready > 0
    }
}
