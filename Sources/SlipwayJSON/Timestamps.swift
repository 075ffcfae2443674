#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONValue {
    /// A time as RFC 3339 in UTC with microseconds (`2026-12-02T02:33:41.123456Z`),
    /// or null for 0, which the protocol uses for "not yet".
    public static func time(unixMicros micros: Int64) -> JSONValue {
        guard micros > 0 else { return .null }
        var seconds = time_t(micros / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let fraction = String(micros % 1_000_000)
        return .string("\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
                       + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z")
    }
}
