import ArgumentParser
import Foundation
import Logging
import SlipwayStore
import SlipwayArtifact
import SlipwayProto
#if canImport(Glibc)
import Glibc
#endif

/// The middle value (upper middle for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Prints `text` and flushes at once, so a run's progress shows in a log as it happens.
func say(_ text: String) {
    print(text)
    fflush(nil)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The path of `name`, built next to this executable by `swift build` (same configuration).
func siblingExecutable(_ name: String) throws -> String {
    let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let path = me.deletingLastPathComponent().appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw ValidationError("\(name) not found at \(path); run `swift build -c release --product \(name)` first")
    }
    return path
}

/// Seconds since `start`.
func elapsed(since start: ContinuousClock.Instant) -> Double {
    seconds(ContinuousClock.now - start)
}

/// A duration in seconds.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Writes `bytes` random bytes to `file`.
func writeRandom(to file: URL, bytes: UInt64) throws {
    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
    let out = try FileHandle(forWritingTo: file)
    defer { try? out.close() }
    var generator = SystemRandomNumberGenerator()
    var written: UInt64 = 0
    var block = [UInt64](repeating: 0, count: 1 << 17)  // 1 MiB
    while written < bytes {
        for index in block.indices { block[index] = generator.next() }
        let data = block.withUnsafeBytes { Data($0.prefix(Int(min(UInt64($0.count), bytes - written)))) }
        try out.write(contentsOf: data)
        written += UInt64(data.count)
    }
    try out.synchronize()
}

/// Stores `file` (described by `manifest`) as a committed artifact in the blob store at `root`.
func seed(_ manifest: Slipway_V1_ArtifactManifest, from file: URL, into root: URL) throws {
    let store = try BlobStore(root: root)
    _ = try store.begin(manifest)
    let handle = try FileHandle(forReadingFrom: file)
    defer { try? handle.close() }
    for index in 0..<manifest.pieceSha256.count {
        try store.store(manifest.digest, index: index,
                        bytes: [UInt8](try handle.read(upToCount: Manifest.pieceLength(manifest, index: index)) ?? Data()))
    }
    try store.commit(manifest.digest)
}

/// Starts `path` with `arguments` (stdout to `output` if given).
func launch(_ path: String, _ arguments: [String], output: Pipe? = nil) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let output { process.standardOutput = output }
    try process.run()
    return process
}

/// Asks every process to stop, and kills those still running after `grace`
/// (aria2c's graceful stop waits on trackers and peers that may be gone).
func stopAll(_ processes: [Process], grace: Double = 5) {
    for process in processes where process.isRunning { process.terminate() }
    let deadline = Date().addingTimeInterval(grace)
    while processes.contains(where: \.isRunning), Date() < deadline { usleep(50_000) }
    for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    for process in processes { process.waitUntilExit() }
}

/// Starts `arguments` with stdout and stderr to `log`.
func launchLogged(_ arguments: [String], log: URL) throws -> Process {
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: arguments[0])
    process.arguments = Array(arguments.dropFirst())
    let handle = try FileHandle(forWritingTo: log)
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    return process
}

/// Creates a fresh database beside the one `adminURL` names (migrated to the
/// current schema unless `migrate` is false). - Returns: its URL.
func createBenchDatabase(adminURL: String, suffix: String, logger: Logger, migrate: Bool = true) async throws -> String {
    let name = "slipway_bench_\(suffix)_\(UInt32.random(in: 0...UInt32.max))"
    let admin = PGClient(url: adminURL, logger: logger)
    try await admin.query("CREATE DATABASE \(name)")
    await admin.close()
    var parts = adminURL.split(separator: "/", omittingEmptySubsequences: false)
    parts[parts.count - 1] = Substring(name)
    let url = parts.joined(separator: "/")
    guard migrate else { return url }
    let client = PGClient(url: url, logger: logger)
    _ = try await client.withConnection { try Migrator.migrate($0, logger: logger) }
    await client.close()
    return url
}
