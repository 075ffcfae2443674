import CZeroMQ

/// A 32-byte CURVE key (public or secret), printable as 40 Z85 characters.
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
    /// The raw key.
    public let bytes: [UInt8]

    /// Wraps 32 raw bytes; returns nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// Decodes a 40-character Z85 key; returns nil if it is not one.
    public init?(z85: String) {
        let text = Array(z85.utf8)
        guard text.count == 40 else { return nil }
        var decoded = [UInt8](repeating: 0, count: 32)
        let ok = (text + [0]).withUnsafeBufferPointer { source in
            source.withMemoryRebound(to: CChar.self) { zmq_z85_decode(&decoded, $0.baseAddress) != nil }
        }
        guard ok else { return nil }
        self.bytes = decoded
    }

    /// The key as 40 Z85 characters (safe to put in a config file).
    public var z85: String {
        var text = [CChar](repeating: 0, count: 41)
        _ = zmq_z85_encode(&text, bytes, 32)
        return String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Redacted (`CurveKey(rq:N…)`): a key interpolated into a log must not leak a
    /// secret one. Use ``z85`` to print a public key on purpose.
    public var description: String { "CurveKey(\(z85.prefix(4))…)" }

    /// The public key that belongs to `secretKey`.
    public static func publicKey(of secretKey: CurveKey) throws(ZMQError) -> CurveKey {
        var publicText = [CChar](repeating: 0, count: 41)
        let secretText = secretKey.z85.utf8.map { CChar(bitPattern: $0) } + [0]
        try ZMQError.check("zmq_curve_public") { zmq_curve_public(&publicText, secretText) }
        return CurveKey(z85: String(decoding: publicText.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self))!
    }

    /// A new random key pair from libsodium via libzmq.
    public static func generatePair() throws(ZMQError) -> (publicKey: CurveKey, secretKey: CurveKey) {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        try ZMQError.check("zmq_curve_keypair") { zmq_curve_keypair(&publicText, &secretText) }
        let decode = { (text: [CChar]) in CurveKey(z85: String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self))! }
        return (decode(publicText), decode(secretText))
    }
}
