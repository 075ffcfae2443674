import Foundation
import SlipwayThreads
#if canImport(Glibc)
import Glibc
#endif

/// Runs one service's process and its health checks, without blocking the
/// agent loop: ``tick(now:)`` reports what happened since the last call.
///
/// The process runs `/bin/sh -c COMMAND` in a process group of its own, with
/// `SLIPWAY_BINARY` (the installed build), `SLIPWAY_SERVICE` and
/// `SLIPWAY_DIGEST` set; its output goes to `output.log` in the service's
/// folder (truncated at each start). Without a health command the build is
/// healthy once its process has stayed up for the grace period; with one, the
/// command is run every second until it exits 0, the process dies, or the
/// health timeout passes.
final class ServiceRunner {
    /// What changed.
    enum Event: Equatable {
        case healthy(String)
        case unhealthy(String, reason: String)
        case exited(String, status: Int32)
    }

    let spec: ServiceSpec
    private let folder: URL
    private let baseEnvironment: [String: String]
    private(set) var digest: String?
    private var pid: pid_t?
    private var startedAt: ContinuousClock.Instant?
    private var checking = false
    private var probe: (pid: pid_t, startedAt: ContinuousClock.Instant)?
    private var nextProbe: ContinuousClock.Instant?

    init(spec: ServiceSpec, folder: URL, environment: [String: String]) {
        self.spec = spec
        self.folder = folder
        self.baseEnvironment = environment
    }

    /// Whether the service's process is running.
    var isRunning: Bool { pid != nil }

    /// Stops whatever runs, starts `binary` (build `digest`) and begins the health check.
    func start(digest: String, binary: URL, now: ContinuousClock.Instant) throws {
        stop()
        var environment = baseEnvironment
        environment["SLIPWAY_BINARY"] = binary.path
        environment["SLIPWAY_SERVICE"] = spec.name
        environment["SLIPWAY_DIGEST"] = digest
        let log = folder.appendingPathComponent("output.log").path
        pid = try ProcessSpawn.spawn(["/bin/sh", "-c", spec.command], environment: environment) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        try? "\(pid!)\n".write(to: folder.appendingPathComponent("pid"), atomically: true, encoding: .utf8)
        self.digest = digest
        startedAt = now
        checking = true
        nextProbe = now + .milliseconds(200)
    }

    /// Stops a process group this service left running when the agent was killed
    /// (its pid file names it, and its environment must name this service: pids are reused).
    func stopLeftover() {
        let file = folder.appendingPathComponent("pid")
        guard let text = try? String(contentsOf: file, encoding: .utf8), let leftover = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              leftover > 1, let environ = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(leftover)/environ")),
              environ.split(separator: 0).contains(where: { $0.elementsEqual(Data("SLIPWAY_SERVICE=\(spec.name)".utf8)) }) else { return }
        kill(-leftover, SIGTERM)
        let deadline = ContinuousClock.now + spec.stopTimeout
        while kill(leftover, 0) == 0, ContinuousClock.now < deadline { usleep(20_000) }
        kill(-leftover, SIGKILL)
        try? FileManager.default.removeItem(at: file)
    }

    /// Stops the process group: SIGTERM, then SIGKILL after the stop timeout.
    /// Blocks for at most that long (services that ignore SIGTERM hold the loop up to it).
    func stop() {
        killProbe()
        guard let pid else { return }
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + spec.stopTimeout
        while ProcessSpawn.exitStatus(of: pid) == nil {
            if ContinuousClock.now >= deadline {
                kill(-pid, SIGKILL)
                _ = ProcessSpawn.waitForExit(pid)
                break
            }
            usleep(20_000)
        }
        // Anything the service left behind in its group goes too.
        kill(-pid, SIGKILL)
        self.pid = nil
        checking = false
    }

    /// True unless a health check is in progress (it wants ticks several times a second).
    var isSettled: Bool { !checking }

    /// What happened since the last call.
    func tick(now: ContinuousClock.Instant) -> Event? {
        guard let pid, let digest, let startedAt else { return nil }
        if let status = ProcessSpawn.exitStatus(of: pid) {
            kill(-pid, SIGKILL)
            self.pid = nil
            killProbe()
            guard checking else { return .exited(digest, status: status) }
            checking = false
            return .unhealthy(digest, reason: "exited with status \(status) during its health check\(lastOutput())")
        }
        guard checking else { return nil }
        guard let healthCheck = spec.healthCheck else {
            guard now - startedAt >= spec.healthGrace else { return nil }
            checking = false
            return .healthy(digest)
        }
        if let probe {
            if let status = ProcessSpawn.exitStatus(of: probe.pid) {
                kill(-probe.pid, SIGKILL)
                self.probe = nil
                if status == 0 {
                    checking = false
                    return .healthy(digest)
                }
                nextProbe = now + .seconds(1)
            } else if now - probe.startedAt >= .seconds(10) {
                killProbe()
                nextProbe = now + .seconds(1)
            }
        }
        if now - startedAt >= spec.healthTimeout {
            checking = false
            killProbe()
            return .unhealthy(digest, reason: "health check did not pass within \(spec.healthTimeout)\(lastOutput(file: "health.log"))")
        }
        if probe == nil, let nextProbe, now >= nextProbe {
            var environment = baseEnvironment
            environment["SLIPWAY_SERVICE"] = spec.name
            environment["SLIPWAY_DIGEST"] = digest
            let log = folder.appendingPathComponent("health.log").path
            if let started = try? ProcessSpawn.spawn(["/bin/sh", "-c", healthCheck], environment: environment, fileActions: { actions in
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }) {
                probe = (started, now)
            }
            self.nextProbe = nil
        }
        return nil
    }

    private func killProbe() {
        guard let probe else { return }
        kill(-probe.pid, SIGKILL)
        _ = ProcessSpawn.waitForExit(probe.pid)
        self.probe = nil
    }

    /// The end of a log, for a failure reason.
    private func lastOutput(file: String = "output.log") -> String {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent(file)), !data.isEmpty else { return "" }
        let tail = String(decoding: data.suffix(200), as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        return tail.isEmpty ? "" : " (last output: \(tail.prefix(160)))"
    }
}
