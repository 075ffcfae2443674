/// A worker process's id, which is also its routing id on the coordinator's
/// dispatch socket. A worker with a key is `NAME@HOST-PID-XXXX`, NAME being its
/// key's name: the coordinator then accepts that id only over a connection
/// authenticated with that key, so one worker key cannot speak for another's
/// workers. Without a key (`--insecure`) it is `worker-HOST-PID-XXXX`.
public enum WorkerID {
    /// Longest id accepted.
    public static let maxLength = 200

    /// Whether `id` is a worker id: 1–200 characters of `A-Z a-z 0-9 . _ -`,
    /// or two such parts joined by one `@`.
    public static func isValid(_ id: String) -> Bool {
        guard id.utf8.count <= maxLength else { return false }
        let parts = id.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }
        return parts.allSatisfy { SafeText.isName(String($0), max: maxLength) }
    }

    /// The key name an id claims (the part before `@`), or nil for an id without one.
    public static func keyName(of id: String) -> String? {
        guard let at = id.firstIndex(of: "@") else { return nil }
        return String(id[..<at])
    }
}
