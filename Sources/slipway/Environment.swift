#if canImport(Glibc)
import Glibc
#endif

enum Environment {
    /// A non-empty environment variable.
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}

/// A failure to report to the user as one line, with exit code 1 (no stack trace).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
