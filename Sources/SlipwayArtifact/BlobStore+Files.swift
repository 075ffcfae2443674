import CSystemShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The store's file system calls: whole files read into one buffer, files written
/// under a temporary name and renamed into place, folders synced, pieces copied out.
extension BlobStore {
    /// A whole file's bytes, read into one buffer (no intermediate `Data`: pieces are
    /// megabytes, and every extra copy is a fresh allocation the kernel must zero).
    static func read(_ file: URL) -> [UInt8]? { read(path: file.path) }

    static func read(path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        let size = Int(status.st_size)
        var complete = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            while count < size {
                let got = Glibc.read(descriptor, buffer.baseAddress! + count, size - count)
                if got < 0, errno == EINTR { continue }
                guard got > 0 else { break }
                count += got
            }
            complete = count == size
        }
        return complete ? bytes : nil
    }

    /// Writes `bytes` under a temporary name in `tmp/` and renames the file into place,
    /// with system calls only (one piece file is written for every piece an agent or
    /// store receives). `sync`: made durable before the rename (manifests, names);
    /// pieces are not, ``IncomingDigest`` syncs each as it lands.
    func writeAtomically(_ bytes: [UInt8], to destination: String, sync: Bool) throws {
        var temporary: String
        var descriptor: Int32
        repeat {
            temporaries += 1
            temporary = rootPath + "/tmp/write-" + String(temporaries)
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        } while descriptor < 0 && errno == EEXIST
        guard descriptor >= 0 else {
            throw ArtifactError(.io, "cannot create a file in the store's tmp folder: errno \(errno)")
        }
        do {
            defer { close(descriptor) }
            try Self.write(bytes[...], to: descriptor)
            if sync, fsync(descriptor) != 0 { throw ArtifactError(.io, "fsync before renaming into \(destination.split(separator: "/").last ?? "") failed: errno \(errno)") }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, destination) == 0 else {
            let code = errno
            unlink(temporary)
            throw ArtifactError(.io, "rename into \(destination.split(separator: "/").last ?? "") failed: errno \(code)")
        }
    }

    func syncDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw ArtifactError(.io, "cannot open folder \(url.lastPathComponent): errno \(errno)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw ArtifactError(.io, "fsync of folder \(url.lastPathComponent) failed: errno \(errno)") }
    }

    /// The most one `write` call hands the kernel. A call of a megabyte or more lets
    /// the page cache take large folios, and on the development VM (Linux 6.18,
    /// freed memory reported back to the host) each one is memory the host must
    /// fault in again: measured with `dd` to a fresh file, 2.0–4.3 s of system time
    /// per GiB in 1 MiB calls and 10 s in 2 MiB ones, against 0.31–0.34 s in 256 or
    /// 512 KiB calls. Replication, writing pieces of up to 4 MiB whole, was 2.7–3.3 ×
    /// slower for it. Later runs saw the same cost come in episodes after large frees
    /// (the first run after a Swift build), at 32 KiB calls as at 256 KiB ones, so
    /// the size is one trigger, not the whole cause (docs/benchmarks.md).
    static let writeChunk = 256 << 10

    /// Appends one piece file to `output` inside the kernel (no copy through this
    /// process), or through a buffer where the file systems cannot do that.
    func copy(piece file: URL, length: Int, to output: Int32) throws {
        let input = open(file.path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ArtifactError(.notFound, "piece \(file.lastPathComponent) is not in this store") }
        defer { close(input) }
        var left = Int64(length)
        while left > 0 {
            let copied = slipway_copy_file_range(input, output, left)
            if copied < 0, errno == EINTR { continue }
            if copied < 0, [EXDEV, ENOSYS, EOPNOTSUPP, EINVAL].contains(errno) {
                guard let bytes = Self.read(file), bytes.count == length else { throw ArtifactError(.io, "cannot read piece \(file.lastPathComponent)") }
                return try Self.write(bytes.suffix(Int(left)), to: output)
            }
            guard copied > 0 else { throw ArtifactError(.io, "piece \(file.lastPathComponent) ended early or could not be copied: errno \(errno)") }
            left -= copied
        }
    }

    /// Writes all of `bytes` to the open file `output`, at most ``writeChunk`` per call.
    public static func write(_ bytes: ArraySlice<UInt8>, to output: Int32) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let wrote = Glibc.write(output, buffer.baseAddress! + done, min(buffer.count - done, Self.writeChunk))
                if wrote < 0, errno == EINTR { continue }
                guard wrote > 0 else { throw ArtifactError(.io, "write failed: errno \(errno)") }
                done += wrote
            }
        }
    }
}
