import SlipwayCore
import SlipwayProto
import SlipwayWire

/// Checks a submission from outside before anything is stored. Every rule has a
/// message a CI user can act on.
enum SubmissionValidator {
    struct Invalid: Error { let message: String }

    /// `transports`: the repository transports the operator allows (`--repo-transports`).
    static func validate(_ submit: Slipway_V1_SubmitBuild, transports: Set<RepoTransport> = RepoTransport.defaultAllowed) throws(Invalid) {
        let key = submit.idempotencyKey
        guard (1...200).contains(key.utf8.count), !hasControl(key) else {
            throw Invalid(message: "idempotency key must be 1 to 200 printable characters")
        }
        let repo = submit.repoURL
        guard (1...2_048).contains(repo.utf8.count), !repo.hasPrefix("-"), !hasControl(repo) else {
            throw Invalid(message: "repo URL must be 1 to 2048 printable characters and must not start with '-'")
        }
        let transport: RepoTransport
        do { transport = try RepoTransport(address: repo) } catch { throw Invalid(message: "\(error)") }
        guard transports.contains(transport) else {
            throw Invalid(message: "repo URL uses \(transport.rawValue), which this coordinator does not build from (it allows: \(transports.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        guard isCommitOrRef(submit.commit) else {
            throw Invalid(message: "commit '\(SafeText.printable(submit.commit))' is neither a 40-character hex SHA nor a branch or tag name")
        }
        guard isName(submit.artifactName, max: 128) else {
            throw Invalid(message: "artifact name must be 1 to 128 characters of A-Z a-z 0-9 . _ - and start with a letter or digit")
        }
        guard submit.artifactPath.utf8.count <= 1_024, !submit.artifactPath.contains("\0") else {
            throw Invalid(message: "artifact path must be at most 1024 characters")
        }
        guard submit.recipe.utf8.count <= 65_536, !submit.recipe.contains("\0") else {
            throw Invalid(message: "recipe must be at most 64 KiB")
        }
        guard submit.labels.count <= 32,
              submit.labels.allSatisfy({ isName($0.key, max: 64) && $0.value.utf8.count <= 128 && !hasControl($0.value) }) else {
            throw Invalid(message: "labels: at most 32, keys of A-Z a-z 0-9 . _ - up to 64 characters, values up to 128")
        }
        guard submit.maxAttempts <= 20 else { throw Invalid(message: "max attempts must be at most 20") }
        guard submit.timeoutSeconds <= 86_400 else { throw Invalid(message: "timeout must be at most 24 hours") }
    }

    static func isFullSHA(_ text: String) -> Bool {
        SafeText.isLowercaseHex(text, lengths: 40...40)
    }

    /// Hex digits a short SHA needs before the build cache answers it: with
    /// 12, a repository of a million commits holds another commit of the same
    /// prefix about once in 280 million lookups (git itself would call that
    /// ambiguous and the build fail); shorter ones are built, and the worker resolves them.
    static let minimumCachedPrefix = 12

    /// Whether `text` is lowercase hex of `minimum`…40 characters.
    static func isSHAPrefix(_ text: String, minimum: Int) -> Bool {
        SafeText.isLowercaseHex(text, lengths: minimum...40)
    }

    static func isCommitOrRef(_ text: String) -> Bool {
        if isFullSHA(text) { return true }
        let bytes = Array(text.utf8)
        guard (1...200).contains(bytes.count), let first = bytes.first, isAlphanumeric(first),
              !text.contains(".."), !text.hasSuffix("/"), !text.hasSuffix(".lock") else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "/") }
    }

    static func isName(_ text: String, max: Int) -> Bool { SafeText.isName(text, max: max) }

    static func isAlphanumeric(_ byte: UInt8) -> Bool { SafeText.isAlphanumeric(byte) }

    static func hasControl(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 32 || $0.value == 127 }
    }
}
