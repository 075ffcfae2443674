/// A query parameter. Values always travel separately from the SQL text
/// (`PQexecParams`); no user value is ever spliced into a statement.
public enum PGBind: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// Sent as text; the server casts it to the parameter's type.
    case text(String)
    /// Sent in binary format, for `bytea` parameters.
    case bytes([UInt8])

    /// An integer parameter.
    public static func int<I: BinaryInteger>(_ value: I) -> PGBind { .text(String(value)) }
    /// A boolean parameter.
    public static func bool(_ value: Bool) -> PGBind { .text(value ? "t" : "f") }
    /// A text parameter that is NULL when `value` is nil.
    public static func optional(_ value: String?) -> PGBind { value.map(PGBind.text) ?? .null }

    /// A `text[]` parameter (cast it: `$1::text[]`), every element quoted and escaped.
    public static func textArray(_ values: [String]) -> PGBind {
        let quoted = values.map { value in
            "\"" + value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
        }
        return .text("{" + quoted.joined(separator: ",") + "}")
    }
}

extension PGBind: ExpressibleByStringLiteral {
    /// A text parameter from a literal.
    public init(stringLiteral value: String) { self = .text(value) }
}

extension PGBind: ExpressibleByIntegerLiteral {
    /// An integer parameter from a literal.
    public init(integerLiteral value: Int) { self = .int(value) }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
