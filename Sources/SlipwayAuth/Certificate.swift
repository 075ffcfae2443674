public import Crypto
import Foundation
public import SlipwayWire

/// A CURVE key pair's certificate: the identity it speaks for and its public
/// key, plus the secret key in the secret file only.
///
/// The text is ZeroMQ's ZPL format, as CZMQ's `zcert` writes it, so ZeroMQ
/// tooling reads it:
///
/// ```
/// #   Slipway CURVE certificate (public): worker/w1
/// metadata
///     role = "worker"
///     name = "w1"
/// curve
///     public-key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
/// ```
///
/// The secret file has the same lines plus `secret-key = "…"`. A coordinator's
/// certificate also has a `signing` section with `ed25519-public-key` (and, in
/// the secret file, `ed25519-secret-key`): the key it signs targets with, in Z85.
public struct Certificate: Sendable, Hashable {
    public let identity: Identity
    public let publicKey: CurveKey
    /// Present only when read from a secret file.
    public let secretKey: CurveKey?
    /// The target-signing key (coordinator certificates only).
    public let signing: SigningKey?

    /// An Ed25519 key pair as a certificate holds it: 32 raw bytes each.
    public struct SigningKey: Sendable, Hashable {
        public let publicKey: [UInt8]
        /// Present only in the secret file.
        public let secretKey: [UInt8]?

        /// The key to verify signatures with.
        public var verifier: Curve25519.Signing.PublicKey? { try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) }
        /// Without the secret half.
        public var publicPart: SigningKey { SigningKey(publicKey: publicKey, secretKey: nil) }
        /// The key to sign with, when the secret half is here.
        public var signer: Curve25519.Signing.PrivateKey? { secretKey.flatMap { try? Curve25519.Signing.PrivateKey(rawRepresentation: $0) } }
    }

    /// Larger files are refused unread: a certificate is a few hundred bytes.
    public static let maxFileBytes = 4_096

    public init(identity: Identity, publicKey: CurveKey, secretKey: CurveKey? = nil, signing: SigningKey? = nil) {
        self.identity = identity
        self.publicKey = publicKey
        self.secretKey = secretKey
        self.signing = signing
    }

    /// A new random key pair for `identity`; a coordinator's also gets a signing key pair.
    public static func generate(for identity: Identity) throws -> Certificate {
        let pair = try CurveKey.generatePair()
        var signing: SigningKey?
        if identity.role == .coordinator {
            let key = Curve25519.Signing.PrivateKey()
            signing = SigningKey(publicKey: Array(key.publicKey.rawRepresentation), secretKey: Array(key.rawRepresentation))
        }
        return Certificate(identity: identity, publicKey: pair.publicKey, secretKey: pair.secretKey, signing: signing)
    }

    /// The certificate without its secret keys: what trust directories and agents hold.
    public var publicPart: Certificate {
        Certificate(identity: identity, publicKey: publicKey, signing: signing?.publicPart)
    }

    /// The file text: the public certificate, or with `includingSecret` the secret file.
    public func text(includingSecret: Bool = false) -> String {
        var lines = [
            "#   Slipway CURVE certificate (\(includingSecret ? "SECRET: keep it readable by its owner only" : "public")): \(identity)",
            "metadata",
            "    role = \"\(identity.role.rawValue)\"",
            "    name = \"\(identity.name)\"",
            "curve",
            "    public-key = \"\(publicKey.z85)\"",
        ]
        if includingSecret, let secretKey { lines.append("    secret-key = \"\(secretKey.z85)\"") }
        if let signing, let publicText = CurveKey(bytes: signing.publicKey)?.z85 {
            // Not `public-key`: tools that read ZPL certificates line by line (pyzmq's
            // load_certificate) would take it for the CURVE key.
            lines += ["signing", "    ed25519-public-key = \"\(publicText)\""]
            if includingSecret, let secret = signing.secretKey.flatMap({ CurveKey(bytes: $0) }) {
                lines.append("    ed25519-secret-key = \"\(secret.z85)\"")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a certificate or secret file's text; `source` names it in errors.
    public init(parsing text: String, source: String) throws(AuthError) {
        var section = ""
        var values: [String: String] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let place = "\(source) line \(index + 1)"
            if trimmed.count == line.count {
                guard trimmed == "metadata" || trimmed == "curve" || trimmed == "signing" else { throw AuthError("\(place): unknown section \"\(trimmed.prefix(40))\"") }
                section = String(trimmed)
                continue
            }
            guard !section.isEmpty else { throw AuthError("\(place): a value outside any section") }
            let parts = trimmed.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw AuthError("\(place): expected name = \"value\"") }
            let key = section + "." + parts[0].trimmingSpaces
            let quoted = parts[1].trimmingSpaces
            guard quoted.count >= 2, quoted.hasPrefix("\""), quoted.hasSuffix("\""), !quoted.dropFirst().dropLast().contains("\"") else {
                throw AuthError("\(place): the value of \(key) must be in double quotes")
            }
            guard values[key] == nil else { throw AuthError("\(place): \(key) appears twice") }
            values[key] = String(quoted.dropFirst().dropLast())
        }
        let known: Set<String> = ["metadata.role", "metadata.name", "curve.public-key", "curve.secret-key",
                                  "signing.ed25519-public-key", "signing.ed25519-secret-key"]
        if let unknown = values.keys.sorted().first(where: { !known.contains($0) }) {
            throw AuthError("\(source): unknown setting \(unknown)")
        }
        guard let roleText = values["metadata.role"] else { throw AuthError("\(source): no role") }
        guard let role = Role(rawValue: roleText) else {
            throw AuthError("\(source): role \"\(roleText.prefix(40))\" is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let name = values["metadata.name"] else { throw AuthError("\(source): no name") }
        let identity: Identity
        do { identity = try Identity(role: role, name: name) } catch { throw AuthError("\(source): \(error.message)") }
        guard let publicText = values["curve.public-key"] else { throw AuthError("\(source): no public-key") }
        guard let publicKey = CurveKey(z85: publicText) else { throw AuthError("\(source): public-key is not 40 Z85 characters") }
        var secretKey: CurveKey?
        if let secretText = values["curve.secret-key"] {
            guard let key = CurveKey(z85: secretText) else { throw AuthError("\(source): secret-key is not 40 Z85 characters") }
            guard (try? CurveKey.publicKey(of: key)) == publicKey else {
                throw AuthError("\(source): secret-key does not belong to public-key")
            }
            secretKey = key
        }
        var signing: SigningKey?
        if let signingText = values["signing.ed25519-public-key"] {
            guard let key = CurveKey(z85: signingText), (try? Curve25519.Signing.PublicKey(rawRepresentation: key.bytes)) != nil else {
                throw AuthError("\(source): signing public-key is not an Ed25519 key in 40 Z85 characters")
            }
            var secret: [UInt8]?
            if let secretText = values["signing.ed25519-secret-key"] {
                guard let bytes = CurveKey(z85: secretText)?.bytes,
                      let signer = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes),
                      Array(signer.publicKey.rawRepresentation) == key.bytes else {
                    throw AuthError("\(source): signing secret-key does not belong to signing public-key")
                }
                secret = bytes
            }
            signing = SigningKey(publicKey: key.bytes, secretKey: secret)
        } else if values["signing.ed25519-secret-key"] != nil {
            throw AuthError("\(source): a signing secret-key without its public-key")
        }
        self.init(identity: identity, publicKey: publicKey, secretKey: secretKey, signing: signing)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
