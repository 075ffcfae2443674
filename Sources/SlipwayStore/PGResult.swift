/// The rows a statement returned, copied out of libpq's `PGresult` (text format).
public struct PGResult: Sendable {
    /// Column names in order.
    public let columns: [String]
    /// Each row's values; nil is SQL NULL.
    public let rows: [PGRow]
    /// Rows affected by INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 otherwise.
    public let affectedRows: Int

    /// The first row, if any.
    public var first: PGRow? { rows.first }
}

/// One result row. Accessors throw ``PGError`` with code `.badResult` when a
/// value is missing or does not parse, naming the column.
public struct PGRow: Sendable {
    /// The raw text values, nil for NULL.
    public let values: [String?]
    let columnIndex: [String: Int]

    /// The text of a column, nil for NULL.
    public func optionalString(_ column: String) throws(PGError) -> String? {
        guard let index = columnIndex[column] else {
            throw PGError(.badResult, message: "result has no column \(column)")
        }
        return values[index]
    }

    /// The text of a non-NULL column.
    public func string(_ column: String) throws(PGError) -> String {
        guard let value = try optionalString(column) else {
            throw PGError(.badResult, message: "column \(column) is NULL")
        }
        return value
    }

    /// A non-NULL integer column.
    public func int(_ column: String) throws(PGError) -> Int {
        let text = try string(column)
        guard let value = Int(text) else { throw PGError(.badResult, message: "column \(column) is not an integer") }
        return value
    }

    /// An integer column, nil for NULL.
    public func optionalInt(_ column: String) throws(PGError) -> Int? {
        guard let text = try optionalString(column) else { return nil }
        guard let value = Int(text) else { throw PGError(.badResult, message: "column \(column) is not an integer") }
        return value
    }

    /// A non-NULL boolean column.
    public func bool(_ column: String) throws(PGError) -> Bool {
        switch try string(column) {
        case "t": return true
        case "f": return false
        default: throw PGError(.badResult, message: "column \(column) is not a boolean")
        }
    }

    /// A `bytea` column, nil for NULL.
    public func optionalBytes(_ column: String) throws(PGError) -> [UInt8]? {
        try optionalString(column) == nil ? nil : try bytes(column)
    }

    /// A non-NULL `bytea` column (decoded from PostgreSQL's `\x` hex text form).
    public func bytes(_ column: String) throws(PGError) -> [UInt8] {
        let text = Array(try string(column).utf8)
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x"), text.count % 2 == 0 else {
            throw PGError(.badResult, message: "column \(column) is not bytea in hex form")
        }
        var out = [UInt8]()
        out.reserveCapacity((text.count - 2) / 2)
        var index = 2
        while index < text.count {
            guard let high = hexValue(text[index]), let low = hexValue(text[index + 1]) else {
                throw PGError(.badResult, message: "column \(column) has a bad hex digit")
            }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
