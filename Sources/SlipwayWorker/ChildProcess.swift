import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process in a process group of its own, with stdout and stderr piped.
///
/// Spawned with an empty signal mask and default signal handlers: the worker's
/// threads block signals (Swift's runtime does), and children would inherit that.
/// The group lets a cancel or timeout kill the build and everything it started.
struct ChildProcess {
    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    let pid: pid_t
    /// Read ends of the child's stdout and stderr.
    let stdout: Int32
    let stderr: Int32

    /// Starts `arguments[0]` (an absolute path) in `directory` with exactly `environment`.
    static func spawn(_ arguments: [String], environment: [String: String], directory: String? = nil) throws -> ChildProcess {
        var argv = arguments
        if let directory { argv = ["/usr/bin/env", "-C", directory, "--"] + arguments }
        let out = try makePipe(), err = try makePipe()

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        posix_spawn_file_actions_adddup2(&actions, err.write, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        close(out.write)
        close(err.write)
        guard rc == 0 else {
            close(out.read)
            close(err.read)
            throw SpawnError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        return ChildProcess(pid: pid, stdout: out.read, stderr: err.read)
    }

    /// Runs a command to completion and returns its exit status and combined output
    /// (at most 64 KiB kept). For short helper commands such as git.
    static func run(_ arguments: [String], environment: [String: String], directory: String? = nil,
                    timeout: Duration = .seconds(600)) throws -> (status: Int32, output: String) {
        let child = try spawn(arguments, environment: environment, directory: directory)
        var output: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        _ = child.pump(until: deadline, cancelled: { false }) { _, bytes in
            if output.count < 65_536 { output += bytes.prefix(65_536 - output.count) }
        }
        return (child.waitForExit(), String(decoding: output, as: UTF8.self))
    }

    /// Reads both pipes until the child exits (or the deadline passes, or `cancelled`
    /// says so), handing each chunk to `sink(isStderr, bytes)`.
    /// - Returns: why reading stopped.
    func pump(until deadline: ContinuousClock.Instant, cancelled: () -> Bool,
              sink: (Bool, [UInt8]) -> Void) -> PumpEnd {
        var open = [stdout, stderr]
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var exitedAt: ContinuousClock.Instant?
        while !open.isEmpty {
            if cancelled() { return .cancelled }
            let now = ContinuousClock.now
            if now >= deadline { return .timedOut }
            // Once the main process is gone, whatever it left behind in its group is
            // killed, and the pipes get one second to drain.
            if exitedAt == nil, hasExited() {
                exitedAt = now
                killGroup()
            }
            if let exitedAt, now - exitedAt > .seconds(1) { break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready <= 0 { continue }
            for entry in fds where entry.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    sink(entry.fd == stderr, Array(buffer[0..<count]))
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        return .finished
    }

    enum PumpEnd { case finished, cancelled, timedOut }

    /// Sends SIGKILL to the whole process group.
    func killGroup() {
        kill(-pid, SIGKILL)
    }


    /// True once the main process has exited (it stays a zombie until `waitForExit`).
    func hasExited() -> Bool {
        var info = siginfo_t()
        // WNOWAIT: look without reaping, so waitForExit still gets the status.
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
    }

    /// Reaps the child; closes the pipes. Returns the exit code, or 128 + signal.
    func waitForExit() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(stdout)
        close(stderr)
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe failed: \(String(cString: strerror(errno)))") }
        // Close-on-exec for our ends; dup2 in the child clears it on the copies it uses.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }
}
