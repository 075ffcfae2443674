import ArgumentParser
import Dispatch
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SlipwayHTTP
import SlipwayMetrics
import SlipwayThreads
import Synchronization

/// How every Slipway daemon starts and stops, in one place.
///
/// - It opens every service first (sockets bound, files open, settings
///   checked); only when all are open does it log `serving`, once. If one
///   cannot open, the process prints one line naming the setting and exits 1.
/// - SIGTERM or SIGINT stops every service gracefully; a service that fails
///   later cancels the others and the process exits 1 with one line naming
///   the service and the cause. Either way the process is gone within
///   ``stopLimit``, even if a service does not stop: then it says so and exits 1.
///   A second SIGTERM or SIGINT exits at once.
enum DaemonRunner {
    /// The longest a daemon takes to exit after SIGTERM, SIGINT or a failure.
    static let stopLimit: Duration = .seconds(15)

    /// Runs `services` as the daemon `command` (e.g. `region`) and exits the process.
    /// `insecure`: it runs without CURVE, which `slipway_insecure` says once metrics are up.
    static func run(_ command: String, services: [any DaemonService], options: DaemonOptions, insecure: Bool) async -> Never {
        let name = "slipway \(command)"
        let logger = Logger(label: "slipway.\(command)")
        let control = StopControl(name: name)
        control.installSignalHandlers()
        raiseDescriptorLimit()

        var services = services
        do {
            if let listen = options.metricsListen {
                services.append(try MetricsEndpoint.service(listen: listen, token: try options.metricsToken(), logger: logger, render: metrics))
            }
            SlipwayMetrics.insecure(daemon: command, insecure)
        } catch let error as ValidationError {
            control.fail("cannot start: \(error)")
        } catch {
            control.fail("cannot start: --metrics-listen: \(error)")
        }

        // Phase 1: open everything, or say what cannot be opened.
        let openAll = Task {
            var opened: [String: String] = [:]
            for service in services {
                try Task.checkCancellation()
                opened.merge(try await service.open()) { first, _ in first }
            }
            return opened
        }
        control.whenStopRequested { openAll.cancel() }
        let opened: [String: String]
        do {
            opened = try await openAll.value
        } catch {
            for service in services { await service.discard() }
            if control.isStopRequested { control.exit(0) }
            control.fail("cannot start: \(error)")
        }
        logger.notice("serving", metadata: opened.mapValues { .string($0) })

        // Phase 2: serve until asked to stop, or until a service fails.
        let watched = services.map { Watched(service: $0, control: control) }
        let group = ServiceGroup(configuration: .init(services: watched.map { .init(service: $0) }, logger: logger))
        control.whenStopRequested { Task { await group.triggerGracefulShutdown() } }
        do {
            try await group.run()
        } catch {
            control.fail("\(error)")
        }
        guard control.isStopRequested else { control.fail("a service ended without being asked to stop") }
        logger.notice("stopped")
        control.exit(0)
    }

    /// A tracker serves thousands of agents, a store many downloaders: every
    /// one is a descriptor. The soft limit goes up to the hard one.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Renders this process's metrics as Prometheus text; the first use sends swift-metrics to the registry.
    static let metrics: @Sendable () -> [UInt8] = bootstrapPrometheus()

    /// Sends swift-metrics to a Prometheus registry and returns what renders it.
    private static func bootstrapPrometheus() -> @Sendable () -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[SlipwayMetrics.claimLatencyLabel] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(1000)]
        MetricsSystem.bootstrap(factory)
        return { registry.emitToBuffer() }
    }
}

/// A service whose failure starts the stop deadline at once: the group then
/// cancels the others, and one that does not stop must not keep the process.
private struct Watched: Service {
    let service: any DaemonService
    let control: StopControl

    func run() async throws {
        do {
            try await service.run()
        } catch is CancellationError where control.isStopRequested {
            return  // stopped while it was still getting ready: a clean stop
        } catch {
            control.armDeadline()
            throw ServiceFailure(service: service.name, cause: error)
        }
    }
}

/// A service that failed while serving: `region-tracker: <cause>`.
private struct ServiceFailure: Error, CustomStringConvertible {
    let service: String
    let cause: any Error
    var description: String { "\(service): \(cause)" }
}

/// The process-wide stop state: signal handlers, the hard deadline, the exit.
private final class StopControl: Sendable {
    private let name: String
    private let state = Mutex<(requested: Bool, deadlineSet: Bool, actions: [@Sendable () -> Void])>((false, false, []))
    private let queue = DispatchQueue(label: "slipway.signals")
    // Kept alive for the process's life; only touched in `installSignalHandlers`, before any signal can arrive.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init(name: String) { self.name = name }

    var isStopRequested: Bool { state.withLock { $0.requested } }

    /// SIGTERM and SIGINT request a graceful stop; a second one exits at once.
    func installSignalHandlers() {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in
                if isStopRequested {
                    write("\(name): second signal; exiting now")
                    _exit(1)
                }
                requestStop()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Runs `action` when a stop is requested (at once if it already was).
    func whenStopRequested(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state in
            if state.requested { return true }
            state.actions.append(action)
            return false
        }
        if now { action() }
    }

    func requestStop() {
        let actions = state.withLock { state in
            guard !state.requested else { return [@Sendable () -> Void]() }
            state.requested = true
            defer { state.actions.removeAll() }
            return state.actions
        }
        armDeadline()
        for action in actions { action() }
    }

    /// Prints one line and exits 1 once the other services had their chance to stop.
    func fail(_ line: String) -> Never {
        write("\(name): \(line)")
        exit(1)
    }

    func exit(_ code: Int32) -> Never {
        Foundation.exit(code)
    }

    func armDeadline() {
        let first = state.withLock { state in
            defer { state.deadlineSet = true }
            return !state.deadlineSet
        }
        guard first else { return }
        let limit = DaemonRunner.stopLimit
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(limit.components.seconds * 1_000))) { [name] in
            FileHandle.standardError.write(Data("\(name): did not stop within \(limit); exiting\n".utf8))
            _exit(1)
        }
    }

    private func write(_ line: String) {
        FileHandle.standardError.write(Data("\(line)\n".utf8))
    }
}
