import Crypto
import Foundation
import SlipwayCore
#if canImport(Glibc)
import Glibc
#endif

/// Fetches a repository at an exact commit: a bare mirror per repository in the
/// cache (cloned once, fetched when a commit is missing), then a clean checkout
/// of the commit in the job's workspace.
struct GitCheckout {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// False when retrying the same commit cannot help (it does not exist).
        let retryable: Bool
    }

    let cacheRoot: URL
    /// True once the build was asked to stop: a running git is killed.
    var cancelled: @Sendable () -> Bool = { false }

    /// Checks out `commit` of `repo` into `workspace` (which must not exist).
    /// - Returns: the full SHA checked out.
    func checkout(repo: String, commit: String, into workspace: URL, log: (String) -> Void) throws -> String {
        guard !repo.hasPrefix("-"), !repo.isEmpty else { throw Failure(description: "invalid repo URL", retryable: false) }
        guard !commit.hasPrefix("-"), !commit.isEmpty else { throw Failure(description: "invalid commit", retryable: false) }
        let repos = cacheRoot.appendingPathComponent("repos")
        try FileManager.default.createDirectory(at: repos, withIntermediateDirectories: true)
        let key = SHA256.hash(data: Data(repo.utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
        let mirror = repos.appendingPathComponent("\(key).git")

        // One build at a time per mirror, across slots and worker processes.
        let lock = open(repos.appendingPathComponent("\(key).lock").path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw Failure(description: "cannot lock the repository cache", retryable: true) }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}

        let isFullSHA = SafeText.isLowercaseHex(commit, lengths: 40...40)
        if !FileManager.default.fileExists(atPath: mirror.path) {
            log("cloning \(repo)\n")
            let staging = repos.appendingPathComponent("\(key).git.tmp-\(getpid())")
            try? FileManager.default.removeItem(at: staging)
            try git(["clone", "--mirror", "--quiet", "--", repo, staging.path], what: "clone \(repo)", retryable: true)
            try FileManager.default.moveItem(at: staging, to: mirror)
        } else if !isFullSHA || (try? git(["--git-dir", mirror.path, "cat-file", "-e", "\(commit)^{commit}"], what: "")) == nil {
            log("fetching \(repo)\n")
            try git(["--git-dir", mirror.path, "fetch", "--quiet", "--prune", "origin"], what: "fetch \(repo)", retryable: true)
        }
        let resolved: String
        do {
            resolved = try git(["--git-dir", mirror.path, "rev-parse", "--verify", "--quiet", "--end-of-options", "\(commit)^{commit}"], what: "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw Failure(description: "commit \(commit) not found in repo \(repo)", retryable: false)
        }
        log("checking out \(resolved)\n")
        try git(["clone", "--quiet", "--shared", "--no-checkout", "--", mirror.path, workspace.path], what: "clone workspace", retryable: true)
        try git(["-C", workspace.path, "checkout", "--quiet", "--detach", resolved], what: "checkout \(resolved)", retryable: true)
        return resolved
    }

    @discardableResult
    private func git(_ arguments: [String], what: String, retryable: Bool = false) throws -> String {
        let environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": cacheRoot.path,
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            // No ext:: or other exotic transports from a hostile repo URL.
            "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
        ]
        let (status, output) = try ChildProcess.run(["/usr/bin/git"] + arguments, environment: environment, cancelled: cancelled)
        if cancelled() { throw Failure(description: "git \(what) stopped: the build was asked to stop", retryable: true) }
        guard status == 0 else {
            let detail = output.split(separator: "\n").last.map(String.init) ?? "exit \(status)"
            throw Failure(description: "git \(what) failed: \(detail)", retryable: retryable)
        }
        return output
    }
}
