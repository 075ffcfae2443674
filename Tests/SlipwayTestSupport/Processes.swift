public import Foundation
import CSystemShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs `/bin/sh -c command`, waiting for it by pid (Foundation's Process does
/// not see its child exit while Swift Testing's exit-test monitor is running).
/// - Returns: the exit status.
@discardableResult
public func runShell(_ command: String) throws -> Int32 {
    let process = try SpawnedProcess(["/bin/sh", "-c", command], log: nil)
    return process.wait()
}

/// Runs a shell command and returns what it printed on stdout (trimmed).
public func shellOutput(_ command: String) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-out-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: file) }
    let status = try runShell("(\(command)) > '\(file.path)'")
    guard status == 0 else { throw ShellFailure(command: command, status: status) }
    return try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// ``runShell(_:)`` for async code: waits without holding a thread of the
/// cooperative pool (one per core), which parallel tests share.
@discardableResult
public func runShell(_ command: String) async throws -> Int32 {
    let process = try SpawnedProcess(["/bin/sh", "-c", command], log: nil)
    return await process.exited()
}

/// ``shellOutput(_:)`` for async code (see the async ``runShell(_:)``).
public func shellOutput(_ command: String) async throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-out-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: file) }
    let status = try await runShell("(\(command)) > '\(file.path)'")
    guard status == 0 else { throw ShellFailure(command: command, status: status) }
    return try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A shell command that exited non-zero.
public struct ShellFailure: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public var description: String { "`\(command)` exited with \(status)" }
}

/// A child process started with posix_spawn, output to a log file.
public final class SpawnedProcess: @unchecked Sendable {
    // @unchecked: `pid` is immutable; `reaped` is only touched by the test that owns the process.
    public let pid: pid_t
    private var reaped = false
    private var status: Int32 = 0

    /// Starts `arguments` with stdout and stderr appended to `log` (or inherited).
    public init(_ arguments: [String], log: URL?) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let log {
            posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Nothing else of the test process (other tests' sockets, thousands in the hostile-peer test).
        _ = slipway_spawn_closefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard rc == 0 else { throw ShellFailure(command: arguments.joined(separator: " "), status: rc) }
        self.pid = pid
    }

    /// Sends a signal.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for exit; returns the exit code or 128 + signal.
    @discardableResult
    public func wait() -> Int32 {
        if !reaped {
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            let signal = raw & 0x7F
            status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            reaped = true
        }
        return status
    }

    /// Whether the process has exited (reaps it if so).
    public var hasExited: Bool {
        if reaped { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            let signal = raw & 0x7F
            status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            reaped = true
        }
        return reaped
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`.
    /// - Returns: the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) -> Int32 {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while !hasExited, ContinuousClock.now < deadline { usleep(20_000) }
        if !hasExited { signal(SIGKILL) }
        return wait()
    }

    /// ``stop(grace:)`` without holding a thread while it waits: tests run in
    /// parallel on a cooperative pool of one thread per core, and a teardown that
    /// sleeps on one starves the other tests' polling for as long as it takes.
    @discardableResult
    public func stopped(grace: Duration = .seconds(10)) async -> Int32 {
        signal(SIGTERM)
        return await exited(killAfter: grace)
    }

    /// ``wait()`` without holding a thread of the cooperative pool; SIGKILL
    /// after `killAfter` if given.
    @discardableResult
    public func exited(killAfter limit: Duration? = nil) async -> Int32 {
        let deadline = limit.map { ContinuousClock.now + $0 }
        while !hasExited {
            if let deadline, ContinuousClock.now >= deadline { signal(SIGKILL); break }
            if (try? await Task.sleep(for: .milliseconds(20))) == nil { usleep(20_000) }
        }
        return wait()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, from below the kernel's
/// ephemeral range (32768+ here): a port from that range can be taken meanwhile
/// by any outgoing connection of a parallel test as its source port. Each call
/// moves on from a random start, so parallel test processes rarely meet.
public func freeLoopbackPort() -> Int {
    portCursor.withLock { next in
        while true {
            let port = next
            next = next >= 32_000 ? 20_000 : next + 1
            if canBind(port) { return port }
        }
    }
}

/// `count` consecutive free ports on 127.0.0.1 (see ``freeLoopbackPort()``),
/// as a coordinator lays its sockets out from its intake port.
public func freeLoopbackPorts(_ count: Int) -> Int {
    portCursor.withLock { next in
        while true {
            let first = next
            next = next + count > 32_000 ? 20_000 : next + count
            if (first..<first + count).allSatisfy(canBind) { return first }
        }
    }
}

private let portCursor = Mutex<Int>(Int.random(in: 20_000..<32_000))

private func canBind(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
