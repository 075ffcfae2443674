#if canImport(Glibc)
import Glibc
#endif

/// A small file read whole, for keys, certificates and tokens: symbolic links
/// are followed (Kubernetes mounts Secret files as links), anything but a
/// regular file is refused without blocking on it, and nothing past `limit`
/// bytes is read.
public enum SmallFile {
    /// Why the file was not read.
    public enum Failure: Error, Equatable {
        /// It could not be opened or read: the system's reason.
        case unreadable(String)
        /// A folder, FIFO, device or socket.
        case notRegular
        /// Longer than the limit; its size when known before reading.
        case tooLarge(size: Int64?)
    }

    /// The bytes of `path` and its mode bits (`st_mode`).
    public static func read(_ path: String, limit: Int) throws(Failure) -> (bytes: [UInt8], mode: UInt32) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw .notRegular }
        guard info.st_size <= limit else { throw .tooLarge(size: Int64(info.st_size)) }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var total = 0
        while total < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + total, $0.count - total) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
            if count == 0 { break }
            total += count
        }
        guard total <= limit else { throw .tooLarge(size: nil) }
        return (Array(bytes[..<total]), UInt32(info.st_mode))
    }
}
