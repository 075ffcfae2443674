public import Logging
public import SlipwayWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The keys a daemon admits: a folder with one public certificate file
/// (`*.cert`, see ``Certificate``) per key; any other key is refused.
///
/// Adding or removing a file grants or revokes its key without a restart: each
/// lookup (one per handshake) checks the folder's modification time and reads
/// again what changed; a file rewritten in place is caught by checking the
/// matched file too, and a key not found makes the folder be read again at most
/// every ``missRescanInterval``, so unknown peers cannot make it read the
/// folder on every handshake.
public final class TrustDirectory: Sendable {
    /// The folder.
    public let path: String
    /// Files read at most: a folder that grows past this is a mistake, not a fleet.
    public static let maxFiles = 200_000
    static let missRescanInterval: Duration = .seconds(2)

    private struct Stamp: Equatable {
        let inode: UInt64
        let size: Int64
        let seconds: Int
        let nanoseconds: Int

        init?(_ path: String) {
            var info = stat()
            // stat, not lstat: a file that is a link (a Kubernetes Secret) changes when what it points to does.
            guard stat(path, &info) == 0 else { return nil }
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            seconds = info.st_mtim.tv_sec
            nanoseconds = info.st_mtim.tv_nsec
        }
    }

    private struct Entry {
        let identity: Identity
        let key: CurveKey
        let stamp: Stamp
    }

    private struct State {
        var folder: Stamp?
        /// By file name.
        var files: [String: Entry] = [:]
        var keys: [CurveKey: String] = [:]
        var lastScan = ContinuousClock.now
        var reported: Set<String> = []
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// Agent keys the region's tracker vouched for, admitted besides the folder's (an agent's piece server); nil elsewhere.
    public let vouches: VouchedKeys?

    /// Opens the folder and reads it once. - Throws: if it is not a readable folder.
    public init(path: String, vouches: VouchedKeys? = nil, logger: Logger) throws(AuthError) {
        self.path = path
        self.vouches = vouches
        self.logger = logger
        var info = stat()
        guard stat(path, &info) == 0 else { throw AuthError("\(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw AuthError("\(path): not a folder") }
        guard access(path, R_OK | X_OK) == 0 else { throw AuthError("\(path): not readable") }
        state.withLock { rescan(&$0) }
    }

    /// How many keys are admitted now.
    public var count: Int { state.withLock { $0.keys.count } }

    /// The identity whose certificate holds `key`, or nil: refuse the peer.
    public func identity(of key: CurveKey) -> Identity? {
        state.withLock { state in
            if Stamp(path) != state.folder { rescan(&state) }
            if let found = current(key, &state) { return found }
            guard ContinuousClock.now - state.lastScan >= Self.missRescanInterval else { return nil }
            rescan(&state)
            return current(key, &state)
        }
    }

    /// Whether `key` is admitted: by the folder, else by the tracker's word when
    /// this folder takes it (``vouches``), which may still be coming.
    public func admission(of key: CurveKey) -> VouchedKeys.Verdict {
        if let identity = identity(of: key) { return .trusted(identity) }
        return vouches?.verdict(key) ?? .refused
    }

    /// Whether what comes from `identity` over a connection opened with `key` is still
    /// admitted: the folder still holds the key as that identity, or the tracker's
    /// trust in it still holds (``VouchedKeys/admits(_:as:now:)``).
    public func stillAdmits(_ key: CurveKey, as identity: Identity) -> Bool {
        if let found = self.identity(of: key) { return found == identity }
        return vouches?.admits(key, as: identity) ?? false
    }

    /// The public key of `identity`'s certificate in the folder (the first by file
    /// name if several), read again first if the folder changed; nil if none.
    public func publicKey(of identity: Identity) -> CurveKey? {
        state.withLock { state in
            if Stamp(path) != state.folder { rescan(&state) }
            return state.files.sorted { $0.key < $1.key }.first { $0.value.identity == identity }?.value.key
        }
    }

    /// The key's entry if its file is unchanged since it was read; otherwise reads again.
    private func current(_ key: CurveKey, _ state: inout State) -> Identity? {
        guard let file = state.keys[key], let entry = state.files[file] else { return nil }
        if Stamp(path + "/" + file) == entry.stamp { return entry.identity }
        rescan(&state)
        guard let again = state.keys[key], let fresh = state.files[again] else { return nil }
        return fresh.identity
    }

    private func rescan(_ state: inout State) {
        state.lastScan = .now
        state.folder = Stamp(path)
        guard let folder = opendir(path) else {
            report("\(path): \(String(cString: strerror(errno))); admitting no key until it can be read", &state)
            state.files.removeAll()
            state.keys.removeAll()
            return
        }
        defer { closedir(folder) }
        var files: [String: Entry] = [:]
        var seen = 0
        while let item = readdir(folder) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".cert"), !name.hasPrefix(".") else { continue }
            seen += 1
            guard seen <= Self.maxFiles else {
                report("\(path): more than \(Self.maxFiles) certificates; the rest are not read", &state)
                break
            }
            let file = path + "/" + name
            guard let stamp = Stamp(file) else { continue }
            if let known = state.files[name], known.stamp == stamp {
                files[name] = known
                continue
            }
            do {
                let certificate = try Certificate.load(path: file)
                guard certificate.secretKey == nil else {
                    report("\(file): holds a secret key; a trust folder takes public certificates only, so it is ignored", &state)
                    continue
                }
                files[name] = Entry(identity: certificate.identity, key: certificate.publicKey, stamp: stamp)
            } catch {
                report("\(error.message); ignored", &state)
            }
        }
        var keys: [CurveKey: String] = [:]
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) where keys[entry.key] == nil {
            keys[entry.key] = name
        }
        state.files = files
        state.keys = keys
    }

    /// Logs a problem with the folder once (until the process restarts).
    private func report(_ problem: String, _ state: inout State) {
        guard state.reported.count < 1_000, state.reported.insert(problem).inserted else { return }
        logger.warning("trust folder: \(problem)")
    }
}
