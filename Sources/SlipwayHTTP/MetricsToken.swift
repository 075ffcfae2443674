import SlipwayCore
#if canImport(Glibc)
import Glibc
#endif

/// The bearer token `/metrics` asks for (`--metrics-token-file`): the file's
/// text, without its trailing newline. Prometheus sends the same file with
/// `authorization: { credentials_file: … }`.
///
/// The file is read again on every check, so replacing it rotates the token
/// and removing it shuts `/metrics` without a restart; a file that is missing,
/// readable by others or malformed admits nobody (fail closed).
public struct MetricsToken: Sendable {
    /// Why a token file cannot be used, naming it.
    public struct Problem: Error, CustomStringConvertible {
        /// One line for logs.
        public let description: String
    }

    /// Fewer characters than this cannot be a random secret.
    public static let minimumLength = 32
    /// A token file larger than this is refused.
    public static let maximumBytes = 4_096

    /// The file's path.
    public let path: String

    /// Checks the file now: a daemon that cannot use it must not start.
    public init(path: String) throws(Problem) {
        self.path = path
        _ = try Self.read(path)
    }

    /// What a check of a request's `Authorization` header finds.
    public enum Verdict: Equatable, Sendable {
        /// The header carries the token.
        case admitted
        /// No header, another scheme or another token.
        case refused
        /// The file cannot be used now; the reason names it.
        case unavailable(String)
    }

    /// Judges an `Authorization` header value against the file as it is now.
    public func check(authorization: String?) -> Verdict {
        let expected: [UInt8]
        do { expected = try Self.read(path) } catch { return .unavailable(error.description) }
        guard let authorization, let presented = Self.bearer(authorization) else { return .refused }
        return Self.constantTimeEqual(Array(presented.utf8), expected) ? .admitted : .refused
    }

    /// The credentials of a `Bearer` header (the scheme is case-insensitive), or nil.
    static func bearer(_ header: String) -> Substring? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].drop { $0 == " " }
    }

    /// Equal bytes, in a time that depends on the lengths only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// The token in `path`: a regular file only its owner can read, holding
    /// printable ASCII of at least ``minimumLength`` characters and one optional newline.
    static func read(_ path: String) throws(Problem) -> [UInt8] {
        let file: (bytes: [UInt8], mode: UInt32)
        do {
            file = try SmallFile.read(path, limit: maximumBytes)
        } catch {
            switch error {
            case .unreadable(let reason): throw Problem(description: "\(path): \(reason)")
            case .notRegular: throw Problem(description: "\(path): not a regular file")
            case .tooLarge: throw Problem(description: "\(path): more than \(maximumBytes) bytes; a token is one line")
            }
        }
        guard file.mode & (S_IRWXG | S_IRWXO) == 0 else {
            throw Problem(description: "\(path): holds a secret but its mode is \(String(file.mode & 0o777, radix: 8)); run chmod 600 \(path)")
        }
        var token = file.bytes[...]
        if token.last == UInt8(ascii: "\n") { token = token.dropLast() }
        if token.last == UInt8(ascii: "\r") { token = token.dropLast() }
        guard token.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw Problem(description: "\(path): a token is one line of printable ASCII without spaces")
        }
        guard token.count >= minimumLength else {
            throw Problem(description: "\(path): \(token.count) characters; a token needs at least \(minimumLength) (e.g. openssl rand -hex 32)")
        }
        return Array(token)
    }
}
