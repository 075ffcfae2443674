public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A hostile ZMTP 3.0 peer (NULL mechanism) speaking raw TCP: it can stream one
/// message that never ends, which no libzmq client can (libzmq sends a
/// multipart message only once its last frame is queued).
public final class HostilePeer: @unchecked Sendable {
    // @unchecked: `descriptor` is set once in init; the counters are atomics.
    public enum Flood: Sendable {
        /// Empty frames with MORE set: 2 bytes each on the wire, ~64 in libzmq.
        case tinyFrames
        /// 4 MiB frames with MORE set.
        case bigFrames
    }

    let descriptor: Int32
    private let bytesSent = Atomic<Int>(0)

    /// Connects to 127.0.0.1:`port` and completes the ZMTP handshake as a DEALER.
    public init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw HostileFailure("connect to \(port): errno \(errno)")
        }
        var greeting: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0]
        greeting += Array("NULL".utf8) + [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 31)
        guard write(greeting) else { throw HostileFailure("greeting not sent") }
        // A server too busy to greet within 5 s fails this peer instead of hanging the test.
        var greetingWait = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &greetingWait, socklen_t(MemoryLayout<timeval>.size))
        var peer = [UInt8](repeating: 0, count: 64)
        var got = 0
        while got < 64 {
            let count = peer[got...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw HostileFailure("closed during the greeting") }
            got += count
        }
        let body: [UInt8] = [5] + Array("READY".utf8) + [11] + Array("Socket-Type".utf8) + [0, 0, 0, 6] + Array("DEALER".utf8)
        guard write([0x04, UInt8(body.count)] + body) else { throw HostileFailure("READY not sent") }
    }

    deinit { close(descriptor) }

    /// Wire bytes sent so far.
    public var sent: Int { bytesSent.load(ordering: .relaxed) }

    /// Sends one message that never ends until `deadline` or until the server cuts the connection.
    /// - Returns: true if the server cut it.
    @discardableResult
    public func flood(_ kind: Flood, until deadline: ContinuousClock.Instant) -> Bool {
        let chunk: [UInt8]
        switch kind {
        case .tinyFrames: chunk = [UInt8](repeating: 0, count: 131_072).enumerated().map { $0.offset % 2 == 0 ? 0x01 : 0x00 }
        case .bigFrames:
            var size = UInt64(4 << 20).bigEndian
            chunk = [0x03] + withUnsafeBytes(of: &size) { Array($0) } + [UInt8](repeating: 0x78, count: 4 << 20)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while ContinuousClock.now < deadline {
            guard write(chunk) else {
                guard errno == EAGAIN || errno == EWOULDBLOCK else { return true }
                // The server stopped reading: it must close the connection, even if it is slow to get to it
                // (a loaded machine), so wait out the flood and a little more before calling it held.
                return closedByServer(within: .seconds(2) + max(.zero, deadline - .now))
            }
        }
        return false
    }

    /// Whether the server closed the connection (within `wait`): its end of the stream, or a reset.
    private func closedByServer(within wait: Duration) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
        }
        return false
    }

    /// Sends one frame of `size` bytes (to trip the socket's largest-frame limit).
    /// - Returns: true if the server closed the connection.
    public func sendFrame(size: Int) -> Bool {
        var length = UInt64(size).bigEndian
        _ = write([0x02] + withUnsafeBytes(of: &length) { Array($0) } + [UInt8](repeating: 0x78, count: size))
        var byte: UInt8 = 0
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // The server's own handshake may still be unread: read past it to the end.
        while true {
            let count = recv(descriptor, &byte, 1, 0)
            if count > 0 { continue }
            return count == 0 || errno == ECONNRESET || errno == EPIPE
        }
    }

    private func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 {
                if count < 0 && errno == EINTR { continue }
                return false
            }
            offset += count
            bytesSent.add(count, ordering: .relaxed)
        }
        return true
    }
}

/// Why a hostile peer could not do its part.
public struct HostileFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The resident memory of process `pid`, in MiB (0 if it is gone).
public func residentMiB(_ pid: pid_t) -> Int {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kib / 1_024
}
