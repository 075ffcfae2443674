/// Who a peer proved to be: the role and name of the key it holds. On the wire
/// (the ZAP user id libzmq attaches to each message) it is `role/name`.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public let role: Role
    public let name: String

    /// An identity; `name` must be 1–64 characters of `a-z`, `0-9`, `.`, `_` and `-`,
    /// starting with a letter or digit.
    public init(role: Role, name: String) throws(AuthError) {
        guard Self.isValidName(name) else {
            throw AuthError("name \"\(name.prefix(80))\" is not 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or digit")
        }
        self.role = role
        self.name = name
    }

    /// Parses a ZAP user id (`role/name`); nil if it is not one.
    public init?(userID: String) {
        let parts = userID.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let role = Role(rawValue: String(parts[0])), Self.isValidName(String(parts[1])) else { return nil }
        self.role = role
        self.name = String(parts[1])
    }

    /// `role/name`, as libzmq carries it.
    public var userID: String { "\(role.rawValue)/\(name)" }
    public var description: String { userID }

    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, isLowerAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
