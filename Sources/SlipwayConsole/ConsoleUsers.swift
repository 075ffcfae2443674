import Crypto
import Foundation
import HummingbirdBcrypt
import SlipwayCore
import Synchronization

/// Who may use the console: the users file, one account per line.
///
/// ```text
/// # KIND  NAME        ROLE      SECRET
/// user    alice       operator  $2b$12$…         (bcrypt hash of the password)
/// token   deploy-bot  viewer    sha256:3f1c…     (SHA-256 of the bearer token)
/// ```
///
/// Neither a password nor a token is ever stored: `slipway console-users`
/// writes these lines. Blank lines and `#` comments are ignored; anything else
/// is an error naming its line, so a typo never silently locks someone out.
public struct ConsoleUsers: Sendable, Equatable {
    /// One line of the file.
    public struct Account: Sendable, Equatable {
        /// How the account proves itself.
        public enum Secret: Sendable, Equatable {
            /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`) of the password.
            case password(hash: String)
            /// The SHA-256 of a bearer token.
            case token(sha256: [UInt8])
        }

        public let name: String
        public let role: ConsoleRole
        public let secret: Secret
    }

    /// A malformed users file: which line and why.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// Every account, in file order.
    public let accounts: [Account]

    /// Parses the text of a users file.
    public init(parsing text: String) throws(Invalid) {
        var accounts: [Account] = []
        var names: Set<String> = []
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let kind = fields.first, !kind.hasPrefix("#") else { continue }
            guard fields.count == 4 else {
                throw Invalid(line: line, reason: "expected KIND NAME ROLE SECRET (4 fields), found \(fields.count)")
            }
            let name = fields[1]
            guard Self.isValidName(name) else {
                throw Invalid(line: line, reason: "name '\(SafeText.printable(name))' must be 1–64 of a-z A-Z 0-9 . _ @ -")
            }
            guard names.insert(name).inserted else { throw Invalid(line: line, reason: "name \(name) appears twice") }
            guard let role = ConsoleRole(rawValue: fields[2]) else {
                throw Invalid(line: line, reason: "role '\(SafeText.printable(fields[2]))' is not viewer or operator")
            }
            let secret: Account.Secret
            switch kind {
            case "user":
                let hash = fields[3]
                guard ["$2a$", "$2b$", "$2y$"].contains(where: hash.hasPrefix), hash.utf8.count == 60 else {
                    throw Invalid(line: line, reason: "a user's secret is a 60-character bcrypt hash ($2b$…); make one with `slipway console-users add`")
                }
                secret = .password(hash: hash)
            case "token":
                let text = fields[3]
                guard text.hasPrefix("sha256:"), SafeText.isLowercaseHex(String(text.dropFirst(7)), lengths: 64...64) else {
                    throw Invalid(line: line, reason: "a token's secret is sha256:<64 lowercase hex>; make one with `slipway console-users token`")
                }
                secret = .token(sha256: Hex.decode(text.dropFirst(7))!)
            default:
                throw Invalid(line: line, reason: "kind '\(SafeText.printable(kind))' is not user or token")
            }
            accounts.append(Account(name: name, role: role, secret: secret))
        }
        self.accounts = accounts
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws -> ConsoleUsers {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Invalid(line: 0, reason: "cannot read \(path): \(error.localizedDescription)")
        }
        guard data.count <= 4 << 20, let text = String(data: data, encoding: .utf8) else {
            throw Invalid(line: 0, reason: "\(path) is not a UTF-8 text file of at most 4 MiB")
        }
        return try ConsoleUsers(parsing: text)
    }

    /// The account `name`, if the file has it.
    public func account(named name: String) -> Account? {
        accounts.first { $0.name == name }
    }

    /// The user whose password this is, or nil. Costs one bcrypt check even
    /// for an unknown name, so a reply's timing does not tell which names exist.
    public func signIn(name: String, password: String) -> Account? {
        guard let account = account(named: name), case .password(let hash) = account.secret else {
            _ = Bcrypt.verify(password, hash: Self.decoyHash(cost: decoyCost))
            return nil
        }
        return Bcrypt.verify(password, hash: hash) ? account : nil
    }

    /// The account whose bearer token this is, or nil (compared in constant time).
    public func account(bearer token: String) -> Account? {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        var found: Account?
        for account in accounts {
            if case .token(let stored) = account.secret, Self.constantTimeEqual(stored, digest) { found = account }
        }
        return found
    }

    /// A line for the users file: a new user with this password.
    public static func userLine(name: String, role: ConsoleRole, password: String, cost: UInt8 = 12) -> String {
        "user \(name) \(role.rawValue) \(Bcrypt.hash(password, cost: cost))"
    }

    /// A new bearer token and its line for the users file.
    public static func newToken(name: String, role: ConsoleRole) -> (token: String, line: String) {
        var generator = SystemRandomNumberGenerator()
        let token = "slw_" + Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let digest = Hex.encode(SHA256.hash(data: Array(token.utf8)))
        return (token, "token \(name) \(role.rawValue) sha256:\(digest)")
    }

    /// 1–64 of a-z A-Z 0-9 . _ @ -.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "@") || byte == UInt8(ascii: "-")
        }
    }

    /// The cost of the file's first password hash (`$2b$12$…`): what a decoy check must cost.
    private var decoyCost: UInt8 {
        for account in accounts {
            if case .password(let hash) = account.secret, let cost = UInt8(hash.dropFirst(4).prefix(2)) { return cost }
        }
        return 12
    }

    // Valid hashes of a password nobody has, one per cost: a wrong name costs what a wrong password costs.
    private static let decoys = Mutex<[UInt8: String]>([:])

    private static func decoyHash(cost: UInt8) -> String {
        if let known = decoys.withLock({ $0[cost] }) { return known }
        let made = Bcrypt.hash("slipway console decoy", cost: cost)
        decoys.withLock { $0[cost] = made }
        return made
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
