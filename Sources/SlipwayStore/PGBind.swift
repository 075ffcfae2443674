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
        var literal: [UInt8] = [UInt8(ascii: "{")]
        literal.reserveCapacity(values.reduce(2) { $0 + $1.utf8.count + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { literal.append(UInt8(ascii: ",")) }
            literal.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { literal.append(UInt8(ascii: "\\")) }
                literal.append(byte)
            }
            literal.append(UInt8(ascii: "\""))
        }
        literal.append(UInt8(ascii: "}"))
        return .text(String(decoding: literal, as: UTF8.self))
    }

    /// A `bytea[]` parameter (cast it: `$1::bytea[]`) in PostgreSQL's binary array
    /// format, so byte strings travel as they are, without hex or escapes.
    public static func byteaArray(_ values: [[UInt8]]) -> PGBind {
        var data: [UInt8] = []
        data.reserveCapacity(20 + values.reduce(0) { $0 + 4 + $1.count })
        func append(_ value: Int32) {
            withUnsafeBytes(of: value.bigEndian) { data.append(contentsOf: $0) }
        }
        append(values.isEmpty ? 0 : 1)  // dimensions
        append(0)  // no NULL elements
        append(byteaOID)
        if !values.isEmpty {
            append(Int32(values.count))
            append(1)  // lower bound
        }
        for value in values {
            append(Int32(value.count))
            data.append(contentsOf: value)
        }
        return .bytes(data)
    }

    /// `bytea`'s type OID, which a binary array names for its elements.
    private static let byteaOID: Int32 = 17
}

extension PGBind: ExpressibleByStringLiteral {
    /// A text parameter from a literal.
    public init(stringLiteral value: String) { self = .text(value) }
}

extension PGBind: ExpressibleByIntegerLiteral {
    /// An integer parameter from a literal.
    public init(integerLiteral value: Int) { self = .int(value) }
}
