/// A failed artifact operation: bad manifest, bad piece, I/O trouble.
public struct ArtifactError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Sendable, Hashable {
        /// The manifest is inconsistent (size, piece count, digest format).
        case invalidManifest = "invalid_manifest"
        /// A piece's bytes do not hash to the manifest's digest for it.
        case pieceMismatch = "piece_mismatch"
        /// The assembled artifact does not hash to the manifest's digest.
        case digestMismatch = "digest_mismatch"
        /// Commit was asked for before every piece arrived.
        case incomplete
        /// No such artifact or piece in the store.
        case notFound = "not_found"
        /// A file system call failed.
        case io
    }

    /// What went wrong.
    public let code: Code
    /// Safe detail (digests, indices, paths inside the store; never file contents).
    public let detail: String

    /// Creates an error.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// `piece_mismatch: piece 3 of 3f…`.
    public var description: String { "\(code.rawValue): \(detail)" }
}
