/// Durations as people write them in flags and configuration: `500ms`, `5s`,
/// `2m`, `1h`, `14d`, or `0`. One parser, so every place reads them alike.
public enum DurationText {
    /// The duration `text` names, or nil when it is not one (negative, no unit, or absurdly long).
    public static func parse(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let value = Double(number), value >= 0, value < 1e7, !(suffix == "m" && text.hasSuffix("ms")) {
                return .milliseconds(Int64(value * scale * 1_000))
            }
        }
        return nil
    }
}
