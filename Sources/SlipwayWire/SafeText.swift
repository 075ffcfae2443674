/// Untrusted text made fit for an error reply or a log line: control
/// characters removed, length bounded.
public enum SafeText {
    /// At most `limit` printable characters of `text`.
    public static func printable(_ text: String, limit: Int = 64) -> String {
        String(text.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.prefix(limit).map(Character.init))
    }
}
