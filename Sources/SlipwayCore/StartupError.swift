#if canImport(Glibc)
import Glibc
#endif

/// Why a daemon cannot start or keep serving: the setting to fix (a flag and
/// its value) and what is wrong with it. Daemons print its description as their
/// one last line and exit non-zero.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    /// The setting, as an operator would find it: `--store-dir /srv/slipway`.
    public let setting: String
    /// What is wrong: `cannot create the folder: Permission denied`.
    public let reason: String

    /// An error about `setting`.
    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }

    /// `--store-dir /srv/slipway: cannot create the folder: Permission denied`.
    public var description: String { "\(setting): \(reason)" }
}

/// Checks daemons run on their settings before they serve, so a mistake shows
/// at start, with the setting named, instead of at the first request.
public enum StartupCheck {
    /// Creates `path` (and its parents) if needed and proves a file can be
    /// created in it.
    public static func writableDirectory(_ path: String, setting: String) throws(StartupError) {
        let where_ = "\(setting) \(path)"
        guard !path.isEmpty else { throw StartupError(setting: setting, reason: "needs a folder") }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/\(component)"
            if mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw StartupError(setting: where_, reason: "cannot create the folder \(prefix): \(errnoText())")
            }
        }
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw StartupError(setting: where_, reason: "is not a folder")
        }
        let probe = "\(path)/.slipway-write-check-\(getpid())"
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw StartupError(setting: where_, reason: "cannot write in the folder: \(errnoText())")
        }
        close(descriptor)
        unlink(probe)
    }

    /// The text of the current `errno`.
    public static func errnoText() -> String { String(cString: strerror(errno)) }
}
