import Foundation
import SlipwayThreads
#if canImport(Glibc)
import Glibc
#endif

/// A child process in a process group of its own, with stdout and stderr piped.
///
/// Started by ``ProcessSpawn`` (own process group, clean signal state), so a
/// cancel or timeout kills the build and everything it started.
struct ChildProcess {
    let pid: pid_t
    /// Read ends of the child's stdout and stderr.
    let stdout: Int32
    let stderr: Int32

    /// Starts `arguments[0]` (an absolute path) in `directory` with exactly `environment`, as `user` if given.
    static func spawn(_ arguments: [String], environment: [String: String], directory: String? = nil,
                      user: BuildUser? = nil) throws -> ChildProcess {
        var argv = arguments
        if let directory { argv = ["/usr/bin/env", "-C", directory, "--"] + arguments }
        if let user { argv = user.wrap(argv) }
        let out = try makePipe(), err = try makePipe()

        let pid: pid_t
        do {
            pid = try ProcessSpawn.spawn(argv, environment: environment) { actions in
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_adddup2(&actions, out.write, 1)
                posix_spawn_file_actions_adddup2(&actions, err.write, 2)
            }
        } catch {
            close(out.write)
            close(err.write)
            close(out.read)
            close(err.read)
            throw error
        }
        close(out.write)
        close(err.write)
        return ChildProcess(pid: pid, stdout: out.read, stderr: err.read)
    }

    /// Runs a command to completion and returns its exit status and combined output
    /// (at most 64 KiB kept). For short helper commands such as git.
    /// A command that ran past its timeout or was cancelled has its whole
    /// process group killed before it is reaped.
    static func run(_ arguments: [String], environment: [String: String], directory: String? = nil,
                    timeout: Duration = .seconds(600), cancelled: () -> Bool = { false }) throws -> (status: Int32, output: String) {
        let child = try spawn(arguments, environment: environment, directory: directory)
        var output: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        let end = child.pump(until: deadline, cancelled: cancelled) { _, bytes in
            if output.count < 65_536 { output += bytes.prefix(65_536 - output.count) }
        }
        if end != .finished { child.killGroup() }
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
        let status = ProcessSpawn.waitForExit(pid)
        close(stdout)
        close(stderr)
        return status
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError("pipe failed: \(String(cString: strerror(errno)))") }
        // Close-on-exec for our ends; dup2 in the child clears it on the copies it uses.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }
}
