public import Logging
public import SlipwayCore
public import SlipwayProto
public import SlipwayWire
import SlipwayMetrics

/// How a daemon proves who it is and whom it admits, from `--key`,
/// `--trust-dir` and `--insecure`, loaded once at start.
public enum DaemonSecurity: Sendable {
    /// No CURVE: every peer that can connect is served and trusted (`--insecure`).
    case insecure
    /// The daemon's own certificate (with its secret key) and, for a daemon
    /// that binds, the folder of the keys it admits.
    case authenticated(own: Certificate, trust: TrustDirectory?)

    /// The ZAP domain every Slipway server socket uses: one trust folder per daemon.
    public static let zapDomain = "slipway"

    /// Loads `--key` (a secret key file written by `slipway keys new`) and
    /// `--trust-dir`, checking the key's role; `--insecure` with neither.
    /// - Throws: ``AuthError`` naming the flag when a file is missing or
    ///   wrong, or when neither keys nor `--insecure` were given.
    /// With `vouched`, the trust folder also admits the agent keys the region's tracker vouches for (``VouchedKeys``).
    public static func load(keyPath: String?, trustDirectory: String?, insecure: Bool, role: Role,
                            needsTrust: Bool, vouched: Bool = false, logger: Logger) throws(AuthError) -> DaemonSecurity {
        if insecure {
            guard keyPath == nil, trustDirectory == nil else {
                throw AuthError("--insecure cannot be combined with --key or --trust-dir")
            }
            return .insecure
        }
        guard let keyPath else {
            throw AuthError("no key: pass --key FILE (a secret key file from `slipway keys new --role \(role.rawValue)`), or --insecure to run without authentication")
        }
        let own: Certificate
        do {
            own = try Certificate.loadSecret(path: keyPath)
        } catch {
            throw AuthError("--key: \(error.message)")
        }
        guard own.identity.role == role else {
            throw AuthError("--key \(keyPath): is a \(own.identity.role.rawValue) key; this daemon needs a \(role.rawValue) key")
        }
        if role == .coordinator, own.signing?.signer == nil {
            throw AuthError("--key \(keyPath): has no target-signing key; make the coordinator's key with `slipway keys new --role coordinator`")
        }
        var trust: TrustDirectory?
        if let trustDirectory {
            do { trust = try TrustDirectory(path: trustDirectory, vouches: vouched ? try VouchedKeys() : nil, logger: logger) } catch { throw AuthError("--trust-dir: \(error.message)") }
        } else if needsTrust {
            throw AuthError("no --trust-dir: a daemon that serves needs the folder of the keys it admits")
        }
        return .authenticated(own: own, trust: trust)
    }

    /// The coordinator's target-signing key, if this is an authenticated coordinator.
    public var targetSigner: Certificate.SigningKey? {
        if case .authenticated(let own, _) = self { own.signing } else { nil }
    }

    /// Whether peers are authenticated.
    public var isAuthenticated: Bool { if case .authenticated = self { true } else { false } }

    /// The identity this daemon speaks as, if authenticated.
    public var identity: Identity? { if case .authenticated(let own, _) = self { own.identity } else { nil } }

    /// The options for a socket this daemon binds.
    public var server: ServerSecurity {
        switch self {
        case .insecure: .plain
        case .authenticated(let own, _): .curve(own.keyPair, zapDomain: Self.zapDomain)
        }
    }

    /// The options for a socket this daemon connects to a server whose public key is `server`.
    public func client(server: CurveKey) -> ClientSecurity {
        switch self {
        case .insecure: .plain
        case .authenticated(let own, _): .curve(own.keyPair, server: server)
        }
    }

    /// Starts the ZAP handler for `context`, before any CURVE socket of it binds;
    /// nil when insecure. - Throws: naming `--trust-dir`, if the handler cannot
    /// start (the daemon must not serve then).
    public func startZAP(context: ZMQContext, daemon: String, logger: Logger) throws(StartupError) -> ZAPHandler? {
        guard case .authenticated(_, let trust?) = self else { return nil }
        do {
            return try ZAPHandler(context: context, domains: [Self.zapDomain: trust], daemon: daemon, logger: logger)
        } catch {
            throw StartupError(setting: "--trust-dir", reason: error.message)
        }
    }

    /// Why `sender` may not send the message of `type` it just sent on `socket`
    /// (a socket this daemon bound), or nil to go on: its role may not send it
    /// (``Permissions``), or its key left the trust folder after the handshake
    /// (the connection stays up until it reconnects; what comes over it is
    /// refused). Nothing is refused when insecure.
    public func refusal(_ type: Slipway_V1_MessageType, from sender: Identity?, on socket: ZMQSocket) -> String? {
        guard isAuthenticated else { return nil }
        if case .denied(let reason) = Permissions.check(type, from: sender) { return reason }
        return revocation(of: socket)
    }

    private func revocation(of socket: ZMQSocket) -> String? {
        guard case .authenticated(_, let trust?) = self, let sender = Self.sender(of: socket) else { return nil }
        guard let text = socket.peerCurveKey, let key = CurveKey(z85: text) else {
            return "\(sender): the handshake recorded no key for this connection"
        }
        guard trust.stillAdmits(key, as: sender) else {
            let place = trust.vouches == nil ? "the trust folder" : "the trust folder, nor vouched for by the region's tracker"
            return "\(sender): its key was revoked (it is no longer in \(place))"
        }
        return nil
    }

    /// Counts a refusal in `slipway_permission_denied_total` by role and message type.
    public static func countRefusal(daemon: String, _ type: Slipway_V1_MessageType, from sender: Identity?) {
        SlipwayMetrics.permissionDenied(daemon: daemon, role: sender?.role.rawValue ?? "none", type: "\(type)")
    }

    /// The public key of `identity` from the trust folder (to pin a peer daemon
    /// this one also admits, e.g. another region); nil when insecure or unknown.
    public func trustedKey(of identity: Identity) -> CurveKey? {
        guard case .authenticated(_, let trust?) = self else { return nil }
        return trust.publicKey(of: identity)
    }

    /// The sender of a message received on a socket this daemon bound: the
    /// identity the ZAP handler vouched for; nil when insecure (nobody is
    /// authenticated, everything is allowed) or when no identity came with it.
    public static func sender(of socket: ZMQSocket) -> Identity? {
        socket.peerUserID.flatMap(Identity.init(userID:))
    }
}

extension Certificate {
    /// The key pair, for a certificate that holds its secret key.
    public var keyPair: CurveKeyPair { CurveKeyPair(publicKey: publicKey, secretKey: secretKey!) }
}

/// Reads a server's public key from `--coordinator-key` and similar flags: a
/// certificate file (public, or a secret key file, whose public half is used)
/// or the 40-character Z85 key itself.
public enum ServerKey {
    public static func load(_ text: String, flag: String, role: Role) throws(AuthError) -> CurveKey {
        if let key = CurveKey(z85: text) { return key }
        let certificate: Certificate
        do {
            certificate = try Certificate.load(path: text)
        } catch {
            throw AuthError("\(flag): \(error.message) (give a certificate file or a 40-character Z85 key)")
        }
        guard certificate.identity.role == role else {
            throw AuthError("\(flag) \(text): is a \(certificate.identity.role.rawValue) certificate; expected a \(role.rawValue) one")
        }
        return certificate.publicKey
    }
}
