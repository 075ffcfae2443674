/// Untrusted text made fit for an error reply or a log line: control
/// characters removed, length bounded.
public enum SafeText {
    /// At most `limit` printable characters of `text`.
    public static func printable(_ text: String, limit: Int = 64) -> String {
        String(text.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.prefix(limit).map(Character.init))
    }

    /// True for a name Slipway accepts from outside (service, region, label key,
    /// artifact name): 1…`max` bytes of A-Z a-z 0-9 . _ -, starting with a letter or digit.
    public static func isName(_ text: String, max: Int) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...max).contains(bytes.count), isAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Lowercase hex (0-9 a-f) of a length in `lengths`: digests, commit SHAs and their prefixes.
    public static func isLowercaseHex(_ text: String, lengths: ClosedRange<Int>) -> Bool {
        lengths.contains(text.utf8.count) && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// ASCII letter or digit.
    public static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
    }
}
