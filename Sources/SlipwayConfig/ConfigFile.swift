/// A Slipway configuration file: TOML sections, one per daemon, whose keys are
/// the daemon's long flag names.
///
/// ```toml
/// [region]
/// name = "eu"
/// store-dir = "/var/lib/slipway/region"
/// peer = ["us=tcp://region-us:7710", "ap=tcp://region-ap:7710"]
/// replication-max-mibps = 400
/// ```
///
/// The subset of TOML read here: `[section]` headers, `key = value` with basic
/// ("…", with escapes) or literal ('…') strings, integers, decimals, booleans
/// and one-line arrays of those, and `#` comments. Anything else is an error
/// that names its line.
public struct ConfigFile: Sendable, Equatable {
    /// A value as written.
    public enum Value: Sendable, Equatable {
        case string(String)
        case number(String)
        case bool(Bool)
        case array([Value])
    }

    /// One `key = value`, with the line it came from.
    public struct Setting: Sendable, Equatable {
        /// The flag name, without `--`.
        public let key: String
        /// The value.
        public let value: Value
        /// 1-based line number, for messages.
        public let line: Int
    }

    /// Section name → its settings, in file order.
    public private(set) var sections: [String: [Setting]] = [:]

    /// Parses `text`.
    public init(parsing text: String) throws(ConfigError) {
        var section: String?
        // By bytes: "\r\n" is one Character in Swift, and would not split on "\n".
        for (offset, raw) in text.utf8.split(separator: 10, omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            var scanner = Scanner(Array(raw), line: number)
            scanner.skipSpaces()
            if scanner.atEnd || scanner.peek == UInt8(ascii: "#") { continue }
            if scanner.peek == UInt8(ascii: "[") {
                scanner.advance()
                let name = scanner.bareKey()
                guard !name.isEmpty, scanner.take(UInt8(ascii: "]")) else {
                    throw ConfigError(line: number, "a section header is [name], e.g. [region]")
                }
                try scanner.expectEnd()
                guard sections[name] == nil else { throw ConfigError(line: number, "section [\(name)] appears twice") }
                sections[name] = []
                section = name
                continue
            }
            let key = scanner.bareKey()
            guard !key.isEmpty else { throw ConfigError(line: number, "expected key = value") }
            scanner.skipSpaces()
            guard scanner.take(UInt8(ascii: "=")) else { throw ConfigError(line: number, "expected '=' after \(key)") }
            scanner.skipSpaces()
            let value = try scanner.value()
            try scanner.expectEnd()
            guard let current = section else {
                throw ConfigError(line: number, "\(key) is outside any section; put settings under [coordinator], [worker], [region] or [agent]")
            }
            guard !sections[current]!.contains(where: { $0.key == key }) else {
                throw ConfigError(line: number, "\(key) is set twice in [\(current)]")
            }
            sections[current]!.append(Setting(key: key, value: value, line: number))
        }
    }

    /// The command-line arguments `section` stands for: `--key=value` per
    /// setting (one word, so a value starting with `-` stays a value; repeated
    /// for arrays; a bare `--key` for `true`), leaving out keys in `overridden`
    /// (given on the command line or in the environment).
    public func arguments(for section: String, except overridden: Set<String> = []) -> [String] {
        var arguments: [String] = []
        for setting in sections[section] ?? [] where !overridden.contains(setting.key) {
            switch setting.value {
            case .bool(true): arguments.append("--\(setting.key)")
            case .bool(false): break
            case .array(let items): for item in items { arguments.append("--\(setting.key)=\(item.text)") }
            default: arguments.append("--\(setting.key)=\(setting.value.text)")
            }
        }
        return arguments
    }
}

extension ConfigFile.Value {
    /// The value as a command-line word.
    var text: String {
        switch self {
        case .string(let text), .number(let text): text
        case .bool(let on): on ? "true" : "false"
        case .array(let items): items.map(\.text).joined(separator: ",")
        }
    }
}

/// Why a configuration file cannot be used; names the line.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// 1-based line number (0: not about one line).
    public let line: Int
    /// What is wrong.
    public let message: String

    /// An error on `line`.
    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    /// `line N: message`.
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// Reads one line of the file.
private struct Scanner {
    let bytes: [UInt8]
    let line: Int
    var index = 0

    init(_ bytes: [UInt8], line: Int) {
        // Windows line endings: the \r is not part of the value.
        self.bytes = bytes.last == 13 ? Array(bytes.dropLast()) : bytes
        self.line = line
    }

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[index] }
    mutating func advance() { index += 1 }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    mutating func skipSpaces() {
        while let byte = peek, byte == 32 || byte == 9 { index += 1 }
    }

    mutating func bareKey() -> String {
        let start = index
        while let byte = peek, (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") {
            index += 1
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func expectEnd() throws(ConfigError) {
        skipSpaces()
        guard atEnd || peek == UInt8(ascii: "#") else {
            throw ConfigError(line: line, "unexpected '\(String(decoding: bytes[index...].prefix(20), as: UTF8.self))'")
        }
    }

    mutating func value() throws(ConfigError) -> ConfigFile.Value {
        guard let first = peek else { throw ConfigError(line: line, "a value is missing") }
        switch first {
        case UInt8(ascii: "\""): return .string(try basicString())
        case UInt8(ascii: "'"): return .string(try literalString())
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            let word = bareKey()
            guard word == "true" || word == "false" else { throw ConfigError(line: line, "'\(word)' is not a value; strings need quotes") }
            return .bool(word == "true")
        default:
            let start = index
            while let byte = peek, (byte >= 48 && byte <= 57) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") {
                index += 1
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self).filter { $0 != "_" }
            guard !text.isEmpty, Double(text) != nil else {
                throw ConfigError(line: line, "not a value (strings need quotes): '\(String(decoding: bytes[start...].prefix(20), as: UTF8.self))'")
            }
            return .number(text)
        }
    }

    private mutating func basicString() throws(ConfigError) -> String {
        advance()
        var out: [UInt8] = []
        while let byte = peek {
            advance()
            switch byte {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escaped = peek else { break }
                advance()
                switch escaped {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(escaped)
                default: throw ConfigError(line: line, "unknown escape \\\(Character(UnicodeScalar(escaped)))")
                }
            default:
                guard byte >= 32 || byte == 9 else { throw ConfigError(line: line, "control character in a string") }
                out.append(byte)
            }
        }
        throw ConfigError(line: line, "string not closed (strings are one line)")
    }

    private mutating func literalString() throws(ConfigError) -> String {
        advance()
        let start = index
        while let byte = peek, byte != UInt8(ascii: "'") { index += 1 }
        guard take(UInt8(ascii: "'")) else { throw ConfigError(line: line, "string not closed (strings are one line)") }
        return String(decoding: bytes[start..<(index - 1)], as: UTF8.self)
    }

    private mutating func array() throws(ConfigError) -> ConfigFile.Value {
        advance()
        var items: [ConfigFile.Value] = []
        while true {
            skipSpaces()
            if take(UInt8(ascii: "]")) { return .array(items) }
            // Refused before descending: a line of a million '[' must not recurse.
            if peek == UInt8(ascii: "[") { throw ConfigError(line: line, "arrays of arrays are not settings") }
            let item = try value()
            items.append(item)
            skipSpaces()
            if take(UInt8(ascii: ",")) { continue }
            guard take(UInt8(ascii: "]")) else { throw ConfigError(line: line, "expected ',' or ']' in an array (arrays are one line)") }
            return .array(items)
        }
    }
}
