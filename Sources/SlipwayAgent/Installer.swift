import Foundation
import SlipwayArtifact
#if canImport(Glibc)
import Glibc
#endif

/// Installs builds of one service on this machine:
/// ```
/// services/<service>/versions/<digest>/<service>   the executable, one folder per build
/// services/<service>/current  -> versions/<digest>  what runs
/// services/<service>/previous -> versions/<digest>  what a rollback returns to
/// ```
/// A build is written into a temporary folder, fsynced and renamed into
/// `versions/`; a link is switched by creating it under a temporary name and
/// renaming it over the old one. A crash at any point leaves `current` on a
/// complete build.
struct Installer {
    let service: String
    let folder: URL
    private let files = FileManager.default

    init(service: String, root: URL) throws {
        self.service = service
        self.folder = root.appendingPathComponent("services/\(service)")
        try files.createDirectory(at: folder.appendingPathComponent("versions"), withIntermediateDirectories: true)
    }

    /// The installed executable of build `digest`.
    func binary(_ digest: String) -> URL { folder.appendingPathComponent("versions/\(digest)/\(service)") }

    /// The builds the `current` and `previous` links point at.
    func links() -> (current: String?, previous: String?) { (target(of: "current"), target(of: "previous")) }

    /// Writes build `digest` from `store` into its version folder (once).
    func install(_ digest: String, from store: BlobStore) throws {
        guard !files.fileExists(atPath: binary(digest).path) else { return }
        let staging = folder.appendingPathComponent("versions/.installing-\(digest)")
        try? files.removeItem(at: staging)
        try files.createDirectory(at: staging, withIntermediateDirectories: true)
        let file = staging.appendingPathComponent(service)
        try store.export(digest, to: file)
        guard chmod(file.path, 0o755) == 0 else { throw InstallError("chmod \(file.path): errno \(errno)") }
        let destination = folder.appendingPathComponent("versions/\(digest)")
        try? files.removeItem(at: destination)
        guard rename(staging.path, destination.path) == 0 else { throw InstallError("rename into versions/\(digest): errno \(errno)") }
        try syncFolder(folder.appendingPathComponent("versions"))
    }

    /// Points `current` at `digest` and `previous` at `previous` (or removes it).
    func link(current digest: String, previous: String?) throws {
        try switchLink("current", to: digest)
        if let previous { try switchLink("previous", to: previous) } else { try? files.removeItem(at: folder.appendingPathComponent("previous")) }
        try syncFolder(folder)
    }

    /// Records that build `digest` passed its health check here, so an agent
    /// restarted later starts it as known-good rather than checking it as new.
    func markHealthy(_ digest: String) {
        _ = files.createFile(atPath: folder.appendingPathComponent("versions/\(digest)/.healthy").path, contents: nil)
    }

    /// Whether build `digest` passed its health check on this machine.
    func isHealthy(_ digest: String) -> Bool {
        files.fileExists(atPath: folder.appendingPathComponent("versions/\(digest)/.healthy").path)
    }

    /// Removes `current`: no build is to run.
    func unlinkCurrent() {
        unlink(folder.appendingPathComponent("current").path)
    }

    /// Deletes every build but `keep`.
    func prune(keeping keep: Set<String>) {
        let versions = folder.appendingPathComponent("versions")
        for name in (try? files.contentsOfDirectory(atPath: versions.path)) ?? [] where !keep.contains(name) {
            try? files.removeItem(at: versions.appendingPathComponent(name))
        }
    }

    private func switchLink(_ name: String, to digest: String) throws {
        let temporary = folder.appendingPathComponent(".\(name)-\(UUID().uuidString)")
        guard symlink("versions/\(digest)", temporary.path) == 0 else { throw InstallError("symlink \(name): errno \(errno)") }
        guard rename(temporary.path, folder.appendingPathComponent(name).path) == 0 else {
            let code = errno
            unlink(temporary.path)
            throw InstallError("switching \(name) to \(digest): errno \(code)")
        }
    }

    private func target(of name: String) -> String? {
        guard let destination = try? files.destinationOfSymbolicLink(atPath: folder.appendingPathComponent(name).path) else { return nil }
        let digest = URL(fileURLWithPath: destination).lastPathComponent
        return Manifest.isDigest(digest) && files.fileExists(atPath: binary(digest).path) ? digest : nil
    }

    private func syncFolder(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw InstallError("open \(url.path): errno \(errno)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw InstallError("fsync \(url.path): errno \(errno)") }
    }
}

/// An install step that failed.
struct InstallError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
