/// A process's own CURVE key pair.
public struct CurveKeyPair: Sendable, Hashable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// How a socket that binds admits its peers.
public enum ServerSecurity: Sendable, Hashable {
    /// No handshake beyond ZMTP's: anyone who can connect is served (`--insecure`).
    case plain
    /// CURVE with this key pair; the context's ZAP handler admits clients by the
    /// trust folder of `zapDomain`, and a client no handler vouches for is refused.
    case curve(CurveKeyPair, zapDomain: String)

    /// Whether peers must hold a trusted key.
    public var isCurve: Bool { if case .curve = self { true } else { false } }

    /// The options to set before binding.
    public var options: [ZMQOption] {
        switch self {
        case .plain: []
        case .curve(let keys, let domain):
            [.curveServer(true), .curvePublicKey(keys.publicKey), .curveSecretKey(keys.secretKey),
             .zapDomain(domain), .zapEnforceDomain(true)]
        }
    }
}

/// How a socket that connects proves itself to its server.
public enum ClientSecurity: Sendable, Hashable {
    /// No handshake beyond ZMTP's (`--insecure`).
    case plain
    /// CURVE with this key pair, to the server whose public key is `server` (pinned from configuration).
    case curve(CurveKeyPair, server: CurveKey)

    /// Whether the connection is encrypted and authenticated.
    public var isCurve: Bool { if case .curve = self { true } else { false } }

    /// The options to set before connecting.
    public var options: [ZMQOption] {
        switch self {
        case .plain: []
        case .curve(let keys, let server):
            [.curvePublicKey(keys.publicKey), .curveSecretKey(keys.secretKey), .curveServerKey(server)]
        }
    }
}
