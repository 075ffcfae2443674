import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Resolves a recipe's artifact path inside the job's workspace. The path comes
/// from a submission or the repository, so it may try to escape with `..` or a
/// symbolic link; both are refused after resolving the real path.
enum ArtifactPath {
    struct Escape: Error, CustomStringConvertible {
        let description: String
    }

    /// The artifact's real path, guaranteed inside `workspace` and a regular file.
    static func resolve(_ relative: String, in workspace: URL) throws -> URL {
        guard !relative.isEmpty, !relative.contains("\0") else { throw Escape(description: "artifact path is empty") }
        // Refuse `..` that climbs out before touching the file system: the target
        // may not exist, and the answer should not depend on whether it does.
        var depth = 0
        for component in relative.split(separator: "/") where component != "." {
            depth += component == ".." ? -1 : 1
            if depth < 0 { throw Escape(description: "artifact path \(relative) resolves outside the workspace") }
        }
        guard let root = realPath(workspace.path) else { throw Escape(description: "workspace is missing") }
        let joined = root + "/" + relative
        guard let real = realPath(joined) else {
            throw Escape(description: "artifact \(relative) was not produced by the recipe")
        }
        guard real.hasPrefix(root + "/") else {
            throw Escape(description: "artifact path \(relative) resolves outside the workspace")
        }
        var info = stat()
        guard stat(real, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Escape(description: "artifact \(relative) is not a regular file")
        }
        return URL(fileURLWithPath: real)
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
