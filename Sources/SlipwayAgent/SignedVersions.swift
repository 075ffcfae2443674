import Foundation
import SlipwayCore

/// The highest signed version this machine has applied, per service and scope
/// (`""` for the global target, else the region of an override: the coordinator
/// numbers each scope on its own). Kept on disk, so a restart does not make an
/// old signed target acceptable again.
struct SignedVersions: Equatable {
    /// A state file that cannot be read or parsed.
    struct Unreadable: Error, CustomStringConvertible {
        let file: String
        let reason: String
        var description: String { "\(file): \(reason) (delete it to accept any signed target again; docs/operations.md)" }
    }

    private(set) var highest: [String: [String: UInt64]] = [:]

    init() {}

    /// The highest version applied for `service` in `scope`, 0 if none.
    func version(_ service: String, scope: String) -> UInt64 { highest[service]?[scope] ?? 0 }

    /// Records `version` as applied. - Returns: whether it raised the highest.
    mutating func applied(_ service: String, scope: String, version: UInt64) -> Bool {
        guard version > self.version(service, scope: scope) else { return false }
        highest[service, default: [:]][scope] = version
        return true
    }

    /// Reads `file`; an absent file is an empty record (a new machine).
    static func load(_ file: URL) throws(Unreadable) -> SignedVersions {
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return SignedVersions()
        } catch {
            throw Unreadable(file: file.path, reason: "cannot read: \(error.localizedDescription)")
        }
        guard data.count <= 1 << 20 else { throw Unreadable(file: file.path, reason: "larger than 1 MiB") }
        guard let parsed = try? JSONDecoder().decode([String: [String: UInt64]].self, from: data) else {
            throw Unreadable(file: file.path, reason: "not a JSON object of service → scope → version")
        }
        var versions = SignedVersions()
        versions.highest = parsed
        return versions
    }

    /// Replaces `file` durably (a crash leaves the old record or the new, whole).
    func save(_ file: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try DurableFile.write(try encoder.encode(highest), to: file)
    }
}
