/// Replaces every secret value in a stream of bytes with `***`, also when a
/// secret arrives cut in two by a read: bytes that could begin one are held
/// back until the next write shows whether they do, or the stream ends.
struct SecretMask {
    private static let mask = Array("***".utf8)
    /// Longest first, so a secret that contains another is masked whole.
    private let secrets: [[UInt8]]
    private var pending: [UInt8] = []

    init(_ secrets: [String]) {
        self.secrets = Set(secrets.filter { !$0.isEmpty }).map { Array($0.utf8) }.sorted { $0.count > $1.count }
    }

    var isEmpty: Bool { secrets.isEmpty }

    /// The bytes of `bytes` (after what was held back) that can be shown now, masked.
    /// `final`: the stream ends here; nothing is held back.
    mutating func feed(_ bytes: [UInt8], final: Bool = false) -> [UInt8] {
        guard !secrets.isEmpty else { return bytes }
        pending += bytes
        var out: [UInt8] = []
        var index = 0
        scan: while index < pending.count {
            let available = pending.count - index
            for secret in secrets {
                if available >= secret.count {
                    if pending[index..<index + secret.count].elementsEqual(secret) {
                        out += Self.mask
                        index += secret.count
                        continue scan
                    }
                } else if !final, pending[index...].elementsEqual(secret[..<available]) {
                    break scan  // perhaps a secret cut by the read: wait for the rest
                }
            }
            out.append(pending[index])
            index += 1
        }
        pending.removeFirst(index)
        return out
    }
}
