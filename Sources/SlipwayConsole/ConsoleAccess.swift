import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization

/// Who may sign in, and the checks every request passes: the users file
/// (re-read when it changes, so adding or removing a line needs no restart),
/// signed session cookies, and a bound on password checks running at once
/// (bcrypt is slow on purpose; a flood of sign-ins must not take every core).
public final class ConsoleAccess: Sendable {
    private struct Loaded {
        var users: ConsoleUsers
        var modified: String?
        var checkedAt: ContinuousClock.Instant
    }

    /// The name of the sign-in cookie.
    public static let cookieName = "slipway_session"

    private let usersPath: String
    private let loaded: Mutex<Loaded>
    private let passwordChecks = Atomic<Int>(0)
    private let logger: Logger
    let signer: SessionSigner
    /// How long a sign-in lasts.
    public let sessionLifetime: Duration
    /// Password checks allowed at once; more are refused with 429.
    public let passwordCheckLimit = 2

    /// Loads the users file at `usersPath` (throws naming the line when it is malformed).
    public init(usersPath: String, sessionKey: [UInt8], sessionLifetime: Duration, logger: Logger) throws {
        self.usersPath = usersPath
        let users = try ConsoleUsers.load(path: usersPath)
        loaded = Mutex(Loaded(users: users, modified: Self.modified(usersPath), checkedAt: .now))
        signer = SessionSigner(key: sessionKey)
        self.sessionLifetime = sessionLifetime
        self.logger = logger
    }

    /// The users file as of at most a second ago.
    var users: ConsoleUsers {
        let (current, stale) = loaded.withLock { ($0.users, ContinuousClock.now - $0.checkedAt > .seconds(1)) }
        guard stale else { return current }
        let modified = Self.modified(usersPath)
        let unchanged = loaded.withLock { state -> Bool in
            state.checkedAt = .now
            return state.modified == modified
        }
        guard !unchanged else { return current }
        do {
            let fresh = try ConsoleUsers.load(path: usersPath)
            loaded.withLock { $0.users = fresh; $0.modified = modified }
            logger.notice("users file reloaded", metadata: ["accounts": "\(fresh.accounts.count)"])
            return fresh
        } catch {
            // A half-written or broken file keeps the last good one: nobody is locked out by a typo.
            logger.error("users file not reloaded, keeping the previous one", metadata: ["error": "\(error)"])
            loaded.withLock { $0.modified = modified }
            return current
        }
    }

    /// The viewer a request proves to be: a bearer token, else a valid session cookie of a user still in the file.
    func viewer(bearer: String?, cookie: String?) -> (Viewer, SessionSigner.Session?)? {
        if let bearer {
            guard let account = users.account(bearer: bearer) else { return nil }
            return (Viewer(name: account.name, role: account.role, csrfToken: nil), nil)
        }
        guard let cookie, let session = signer.session(from: cookie, now: Self.now()),
              let account = users.account(named: session.user), case .password = account.secret else { return nil }
        return (Viewer(name: account.name, role: account.role, csrfToken: signer.csrfToken(for: session)), session)
    }

    /// Checks a password (at most ``passwordCheckLimit`` at once) and returns a new cookie value, or why not.
    func signIn(name: String, password: String) async throws(ConsoleError) -> String {
        guard passwordChecks.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue <= passwordCheckLimit else {
            passwordChecks.wrappingSubtract(1, ordering: .releasing)
            throw ConsoleError(.tooManyRequests, "busy", "too many sign-ins at once; try again in a moment")
        }
        defer { passwordChecks.wrappingSubtract(1, ordering: .releasing) }
        let users = self.users
        // bcrypt takes a quarter second: off the cooperative pool's threads.
        let account = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: users.signIn(name: name, password: password)) }
        }
        guard let account else {
            logger.notice("sign-in refused", metadata: ["user": "\(ConsoleUsers.isValidName(name) ? name : "(invalid name)")"])
            throw ConsoleError(.unauthorized, "bad_credentials", "unknown user or wrong password")
        }
        logger.notice("signed in", metadata: ["user": "\(account.name)", "role": "\(account.role.rawValue)"])
        return signer.cookie(user: account.name, expires: Self.now() + sessionLifetime.components.seconds)
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// The token of an `Authorization: Bearer TOKEN` header (the scheme in any case), or nil for another scheme.
    static func bearerToken(_ header: String) -> String? {
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// What identifies a version of the file: through symlinks (a Kubernetes Secret mount swaps its target).
    private static func modified(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
    }
}
