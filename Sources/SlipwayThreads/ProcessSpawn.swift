import CSystemShims
#if canImport(Glibc)
public import Glibc
#endif

/// Why a child process could not be started.
public struct SpawnError: Error, CustomStringConvertible, Sendable {
    /// One line for logs.
    public let description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

/// Starts child processes the way every Slipway daemon needs them: in a process
/// group of their own (so a stop or timeout reaches everything they started),
/// with an empty signal mask and default handlers (the daemons' threads block
/// signals, as Swift's runtime does, and children would otherwise inherit
/// that), and with **only descriptors 0, 1 and 2**: everything else the daemon
/// has open (listening sockets, libzmq's and libpq's sockets, files) is closed
/// in the child, so a build or service that outlives the daemon cannot hold its
/// ports.
public enum ProcessSpawn {
    /// Starts `arguments[0]` (an absolute path) with exactly `environment`;
    /// `configure` sets up the child's descriptors 0, 1 and 2 (anything above
    /// is closed after it ran).
    public static func spawn(_ arguments: [String], environment: [String: String],
                             fileActions configure: (inout posix_spawn_file_actions_t) -> Void) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        configure(&actions)
        guard slipway_spawn_closefrom(&actions, 3) == 0 else { throw SpawnError("cannot set up the child's descriptors") }

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

        let cArguments = arguments.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, cArguments, cEnvironment)
        guard rc == 0 else { throw SpawnError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Reaps `pid` if it has exited, without blocking.
    /// - Returns: its exit code (128 + signal if killed), or nil while it runs.
    public static func exitStatus(of pid: pid_t) -> Int32? {
        var status: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &status, WNOHANG) } while reaped < 0 && errno == EINTR
        guard reaped == pid else { return reaped < 0 ? 255 : nil }
        return decode(status)
    }

    /// Waits for `pid` to exit and reaps it; the exit code, or 128 + signal.
    public static func waitForExit(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return 255 }
        }
        return decode(status)
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
