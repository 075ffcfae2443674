import Crypto
import Foundation
import SlipwayCore

/// Signed sign-in cookies and the CSRF tokens bound to them.
///
/// A cookie is `v1.NAME.EXPIRES.NONCE.MAC`: the user (hex, since names may hold dots), when the session ends
/// (Unix seconds), 16 random bytes, and an HMAC-SHA256 over the rest with the
/// console's session key. It carries no role: each request looks the user up
/// in the users file, so a removed or demoted user loses access at once.
/// Consoles behind one load balancer share the key (`--session-key-file`).
///
/// The CSRF token of a session is an HMAC of its nonce under the same key:
/// a page embeds it in every form, and a request that changes anything must
/// carry it back (a form field, or the `X-CSRF-Token` header).
public struct SessionSigner: Sendable {
    /// A session read from a valid cookie.
    public struct Session: Sendable, Equatable {
        public let user: String
        public let expires: Int64
        public let nonce: String
    }

    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// Signs with `key` (at least 32 bytes).
    public init(key: [UInt8]) {
        precondition(key.count >= 32, "a session key has at least 32 bytes")
        self.keyBytes = key
    }

    /// A new session cookie value for `user`, valid until `expires` (Unix seconds).
    public func cookie(user: String, expires: Int64) -> String {
        var generator = SystemRandomNumberGenerator()
        let nonce = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let body = "v1.\(Hex.encode(user.utf8)).\(expires).\(nonce)"
        return "\(body).\(mac(body))"
    }

    /// The session a cookie value carries, if its signature holds and it has not expired at `now`.
    public func session(from cookie: String, now: Int64) -> Session? {
        guard cookie.utf8.count <= 256 else { return nil }
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "v1", let expires = Int64(parts[2]) else { return nil }
        let body = parts[0..<4].joined(separator: ".")
        guard let given = Self.mac(hex: parts[4]),
              HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Array(body.utf8), using: key) else { return nil }
        guard expires > now, !parts[1].isEmpty, let nameBytes = Hex.decode(parts[1]),
              let user = String(bytes: nameBytes, encoding: .utf8), ConsoleUsers.isValidName(user) else { return nil }
        return Session(user: user, expires: expires, nonce: String(parts[3]))
    }

    /// The CSRF token that goes with `session`.
    public func csrfToken(for session: Session) -> String {
        mac("csrf\n\(session.nonce)")
    }

    /// Whether `token` is `session`'s CSRF token (compared in constant time).
    public func checkCSRF(_ token: String?, for session: Session) -> Bool {
        guard let token, let given = Self.mac(hex: Substring(token)) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Array("csrf\n\(session.nonce)".utf8), using: key)
    }

    /// A new random key for a console that was given none.
    public static func randomKey() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    private func mac(_ text: String) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key))
    }

    /// A MAC as written: 64 hex digits.
    private static func mac(hex: Substring) -> [UInt8]? {
        hex.utf8.count == 64 ? Hex.decode(hex) : nil
    }
}
