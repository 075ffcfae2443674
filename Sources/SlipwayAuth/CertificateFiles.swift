import SlipwayCore
#if canImport(Glibc)
import Glibc
#endif

extension Certificate {
    /// Reads a certificate or secret file (at most ``maxFileBytes``). A file that
    /// holds a secret key must be readable by its owner only, as ssh insists.
    public static func load(path: String) throws(AuthError) -> Certificate {
        let file: (bytes: [UInt8], mode: UInt32)
        do {
            file = try SmallFile.read(path, limit: maxFileBytes)
        } catch {
            switch error {
            case .unreadable(let reason): throw AuthError("\(path): \(reason)")
            case .notRegular: throw AuthError("\(path): not a regular file")
            case .tooLarge(let size?): throw AuthError("\(path): \(size) bytes, more than a certificate's \(maxFileBytes)")
            case .tooLarge(nil): throw AuthError("\(path): more than a certificate's \(maxFileBytes) bytes")
            }
        }
        guard let text = String(validating: file.bytes, as: UTF8.self) else { throw AuthError("\(path): not UTF-8 text") }
        let certificate = try Certificate(parsing: text, source: path)
        if certificate.secretKey != nil, file.mode & (S_IRWXG | S_IRWXO) != 0 {
            throw AuthError("\(path): holds a secret key but its mode is \(String(file.mode & 0o777, radix: 8)); run chmod 600 \(path)")
        }
        return certificate
    }

    /// Reads a secret key file: a certificate that must hold its secret key.
    public static func loadSecret(path: String) throws(AuthError) -> Certificate {
        let certificate = try load(path: path)
        guard certificate.secretKey != nil else { throw AuthError("\(path): holds no secret key (it is a public certificate)") }
        return certificate
    }

    /// The file names ``write(to:)`` uses: `ROLE-NAME.cert` and `ROLE-NAME.secret`.
    public var fileStem: String { "\(identity.role.rawValue)-\(identity.name)" }

    /// Writes `ROLE-NAME.cert` (mode 0644) and, if this holds a secret key,
    /// `ROLE-NAME.secret` (created with mode 0600) into `directory`. Neither may
    /// exist already: a key is never overwritten.
    /// - Returns: the paths written, public first.
    @discardableResult
    public func write(to directory: String) throws(AuthError) -> [String] {
        var written: [String] = []
        let publicPath = directory + "/" + fileStem + ".cert"
        try Self.create(publicPath, text: publicPart.text(), mode: 0o644)
        written.append(publicPath)
        if secretKey != nil {
            let secretPath = directory + "/" + fileStem + ".secret"
            do {
                try Self.create(secretPath, text: text(includingSecret: true), mode: 0o600)
            } catch {
                unlink(publicPath)
                throw error
            }
            written.append(secretPath)
        }
        return written
    }

    private static func create(_ path: String, text: String, mode: mode_t) throws(AuthError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else {
            let reason = errno == EEXIST ? "exists already; keys are never overwritten" : String(cString: strerror(errno))
            throw AuthError("\(path): \(reason)")
        }
        // The umask may have taken bits away; the mode asked for is the mode meant.
        fchmod(descriptor, mode)
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(path)
                throw AuthError("\(path): \(reason)")
            }
            offset += count
        }
        let synced = fsync(descriptor) == 0
        guard close(descriptor) == 0, synced else {
            unlink(path)
            throw AuthError("\(path): could not be written durably")
        }
    }
}
