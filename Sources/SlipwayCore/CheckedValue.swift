/// A string that has passed its rule once, at the edge where it arrived (a
/// flag, a request, a file), and is trusted from then on: `Digest`,
/// `RegionName`, `ServiceName`, `MachineID`, `JobID`.
public protocol CheckedValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The text, exactly as checked.
    var rawValue: String { get }
    /// What a user would call this value, for error messages ("region name").
    static var kind: String { get }
    /// Why `text` is not a valid value, or nil when it is.
    static func problem(with text: String) -> String?
    /// Wraps text that already passed ``problem(with:)``.
    init(unchecked text: String)
}

extension CheckedValue {
    /// Checks `text`; the error says what the rule is.
    public init(_ text: String) throws(InvalidValue) {
        if let problem = Self.problem(with: text) { throw InvalidValue(kind: Self.kind, text: text, rule: problem) }
        self.init(unchecked: text)
    }

    /// Checks `text`; nil if it breaks the rule.
    public init?(validating text: String) {
        guard Self.problem(with: text) == nil else { return nil }
        self.init(unchecked: text)
    }

    /// Whether `text` would be accepted.
    public static func isValid(_ text: String) -> Bool { problem(with: text) == nil }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A value from outside that broke its rule.
public struct InvalidValue: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was expected ("region name").
    public let kind: String
    /// The text received, made printable and bounded.
    public let text: String
    /// The rule it broke.
    public let rule: String

    /// An error for `text`, which is not a valid `kind`.
    public init(kind: String, text: String, rule: String) {
        self.kind = kind
        self.text = SafeText.printable(text, limit: 80)
        self.rule = rule
    }

    /// `'eu west' is not a region name: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`.
    public var description: String { "'\(text)' is not a \(kind): \(rule)" }
}

/// A SHA-256 digest as 64 lowercase hex characters: the identity of an artifact.
public struct Digest: CheckedValue {
    public let rawValue: String
    public static let kind = "digest"
    public init(unchecked text: String) { rawValue = text }

    public static func problem(with text: String) -> String? {
        SafeText.isLowercaseHex(text, lengths: 64...64) ? nil : "a digest is 64 lowercase hex characters (SHA-256)"
    }

    /// `sha256:` and the first 12 hex characters, for people; commands accept the full form.
    public var short: String { "sha256:\(rawValue.prefix(12))" }
}

/// A digest as people type it: the full 64 hex characters, or a prefix of at
/// least 8 (what `status` and the other commands print), which the
/// coordinator resolves when exactly one artifact starts with it.
public struct DigestPrefix: CheckedValue {
    /// The fewest hex characters a prefix may have.
    public static let minimumLength = 8

    public let rawValue: String
    public static let kind = "digest"
    public init(unchecked text: String) { rawValue = text }

    public static func problem(with text: String) -> String? {
        SafeText.isLowercaseHex(text, lengths: minimumLength...64) ? nil
            : "a digest is 64 lowercase hex characters (SHA-256), or at least its first \(minimumLength)"
    }

    /// The digest itself when all 64 characters are given.
    public var full: Digest? { Digest(validating: rawValue) }
}

/// The rule shared by names Slipway takes from outside.
enum NameRule {
    static func problem(with text: String, max: Int) -> String? {
        SafeText.isName(text, max: max) ? nil : "1 to \(max) characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
    }
}

/// A region's name, e.g. `eu-west`.
public struct RegionName: CheckedValue {
    public let rawValue: String
    public static let kind = "region name"
    public init(unchecked text: String) { rawValue = text }
    public static func problem(with text: String) -> String? { NameRule.problem(with: text, max: 64) }
}

/// A service's name: what machines run and targets name.
public struct ServiceName: CheckedValue {
    public let rawValue: String
    public static let kind = "service name"
    public init(unchecked text: String) { rawValue = text }
    public static func problem(with text: String) -> String? { NameRule.problem(with: text, max: 128) }
}

/// A machine's id within its region.
public struct MachineID: CheckedValue {
    public let rawValue: String
    public static let kind = "machine id"
    public init(unchecked text: String) { rawValue = text }
    public static func problem(with text: String) -> String? { NameRule.problem(with: text, max: 128) }
}

/// A build job's id: a UUID in its lowercase text form, as PostgreSQL writes it.
public struct JobID: CheckedValue {
    public let rawValue: String
    public static let kind = "job id"
    public init(unchecked text: String) { rawValue = text }

    public static func problem(with text: String) -> String? {
        let bytes = Array(text.utf8)
        let shaped = bytes.count == 36 && bytes.indices.allSatisfy { index in
            [8, 13, 18, 23].contains(index) ? bytes[index] == UInt8(ascii: "-")
                : (bytes[index] >= 48 && bytes[index] <= 57) || (bytes[index] >= 97 && bytes[index] <= 102)
        }
        return shaped ? nil : "a job id is a UUID like 0b7c3f1e-5a2d-4c1b-9e8f-2a6d4c0b1e3f"
    }
}
