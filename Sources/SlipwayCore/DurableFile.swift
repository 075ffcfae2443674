public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small state files that must survive a crash or a power loss whole: the new
/// contents go to a temporary file in the same folder, are fsynced, renamed
/// over the old file, and the folder is fsynced so the rename itself is kept.
/// A reader sees the old contents or the new, never an empty or partial file
/// (Foundation's `.atomic` write renames but never fsyncs).
public enum DurableFile {
    /// Why a durable write failed: the step and its errno.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Replaces `file` with `data`, durably.
    public static func write(_ data: Data, to file: URL) throws(Failure) {
        let folder = file.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(file.lastPathComponent).\(UInt32.random(in: 0...UInt32.max)).tmp")
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("create \(temporary.lastPathComponent)") }
        var written = 0
        let ok = data.withUnsafeBytes { bytes -> Bool in
            while written < bytes.count {
                let count = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return false }
                written += count
            }
            return fsync(descriptor) == 0
        }
        let code = errno
        close(descriptor)
        guard ok else {
            unlink(temporary.path)
            throw Failure(description: "write \(temporary.lastPathComponent): \(String(cString: strerror(code)))")
        }
        guard rename(temporary.path, file.path) == 0 else {
            let failed = failure("rename into \(file.lastPathComponent)")
            unlink(temporary.path)
            throw failed
        }
        let directory = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw failure("open folder \(folder.lastPathComponent)") }
        defer { close(directory) }
        guard fsync(directory) == 0 else { throw failure("fsync folder \(folder.lastPathComponent)") }
    }

    private static func failure(_ step: String) -> Failure {
        Failure(description: "\(step): \(String(cString: strerror(errno)))")
    }
}
