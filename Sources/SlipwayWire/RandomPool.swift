import CSystemShims
import Synchronization

/// Kernel randomness fetched a page at a time for message ids. Each draw of
/// `SystemRandomNumberGenerator` is a `getrandom` call, and every message a
/// daemon sends takes a fresh id (two draws): with the piece picker's
/// shuffles, about 365 such calls a second in each downloading agent. The
/// bytes are the kernel's either way; only the number of calls changes.
enum RandomPool {
    private static let pool = Mutex(Buffer())

    private struct Buffer {
        var bytes = [UInt8](repeating: 0, count: 4096)
        var next = 4096
    }

    /// 128 random bits.
    static func next128() -> (UInt64, UInt64) {
        pool.withLock { buffer in
            if buffer.next + 16 > buffer.bytes.count {
                let filled = buffer.bytes.withUnsafeMutableBytes { slipway_random_bytes($0.baseAddress, UInt($0.count)) == 0 }
                guard filled else {
                    var system = SystemRandomNumberGenerator()
                    return (system.next(), system.next())
                }
                buffer.next = 0
            }
            defer { buffer.next += 16 }
            return buffer.bytes.withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: buffer.next, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: buffer.next + 8, as: UInt64.self))
            }
        }
    }
}
