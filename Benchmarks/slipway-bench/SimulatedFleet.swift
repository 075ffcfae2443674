import Foundation
import SlipwayAuth
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import Synchronization

/// Thousands of agents in one process, at the protocol level: each has the
/// tracker DEALER and the targets SUB a real agent has, registers, heartbeats at
/// the agent's interval, takes targets from either socket exactly as an agent
/// decides them (`WaveMembership`), and reports itself running a new build at
/// once (a real agent reports a change of state at once). Nothing is downloaded.
///
/// Each of a few threads owns a slice of the agents. Dealers are drained when
/// their next heartbeat is due; targets SUBs are polled while a change is
/// watched, so the time each agent first sees the watched build is taken within
/// a few milliseconds.
final class SimulatedFleet: @unchecked Sendable {
    // @unchecked: each slice's sockets are touched only by its own thread; the
    // shared state is behind `shared`.

    /// What the threads report, shared with the bench.
    struct Shared {
        var watched: (digest: String, since: UInt64)?
        /// Per agent, seconds from the watch's start to when it saw the watched build.
        var seen: [Double?]
        var heartbeats = 0
        var replies = 0
        var refusals = 0
    }

    private struct Agent {
        let machine: String
        let dealer: ZMQSocket
        let targets: ZMQSocket
        var nextBeat: ContinuousClock.Instant
        var running = ""
        var version: UInt64 = 0
    }

    let shared: Mutex<Shared>
    private let context: ZMQContext
    private let region: String
    private let service: String
    private let interval: Duration
    private let stop = StopSignal()
    private var threads: [OwnedThread] = []
    private let codec = WireCodec()

    /// `count` agents of `region` running `service`, against the tracker given,
    /// each subscribed to every endpoint in `targets`.
    init(count: Int, firstMachine: Int = 0, region: String, service: String, tracker: String, targets: [String], heartbeat: Duration,
         threads threadCount: Int) throws {
        context = try ZMQContext(ioThreads: 2, maxSockets: Int32(2 * count + 64))
        self.region = region
        self.service = service
        interval = heartbeat
        shared = Mutex(Shared(seen: Array(repeating: nil, count: count)))
        // Sockets belong to the thread that made them: each thread makes its slice's.
        for number in 0..<threadCount {
            let thread = OwnedThread(name: "fleet-\(number)")
            threads.append(thread)
            let indices = Array(stride(from: number, to: count, by: threadCount))
            Task { [tracker, targets] in
                try? await thread.run { self.run(indices, of: count, first: firstMachine, tracker: tracker, targets: targets) }
            }
        }
    }

    /// Starts timing who sees `digest`, from `since` (``monotonicNanoseconds()``,
    /// which every process on the machine reads alike).
    func watch(_ digest: String, since: UInt64 = monotonicNanoseconds()) {
        shared.withLock { state in
            state.watched = (digest, since)
            state.seen = Array(repeating: nil, count: state.seen.count)
        }
    }

    /// Stops every thread and closes every socket.
    func close() {
        stop.stop()
        for thread in threads { thread.shutdown() }
        context.shutdown()
    }

    private func run(_ indices: [Int], of count: Int, first: Int, tracker: String, targets: [String]) {
        let start = ContinuousClock.now
        var agents: [(index: Int, agent: Agent)] = []
        do {
            for index in indices {
                let dealer = try ZMQSocket(context: context, type: .dealer)
                try dealer.set(.linger(.zero))
                try dealer.connect(tracker)
                let sub = try ZMQSocket(context: context, type: .sub)
                try sub.set(.linger(.zero))
                try sub.set(.subscribe(Array("target.\(service)".utf8)))
                for endpoint in targets { try sub.connect(endpoint) }
                // First heartbeats spread over one interval, as agents started at random times would be.
                let phase = interval * (Double(index) / Double(count))
                agents.append((index, Agent(machine: "sim-\(first + index)", dealer: dealer, targets: sub, nextBeat: start + phase)))
            }
        } catch {
            say("simulated agents could not open their sockets: \(error)")
            return
        }
        var poller: (ZMQPoller, digest: String)?
        while !stop.isStopped {
            let watched = shared.withLock { $0.watched?.digest }
            if let watched {
                if poller?.digest != watched {
                    let fresh = ZMQPoller()
                    for entry in agents { _ = try? fresh.add(entry.agent.targets) }
                    poller = (fresh, watched)
                }
                let ready = (try? poller!.0.poll(wait: .timeout(.milliseconds(5)))) ?? []
                for (position, events) in ready.enumerated() where events.contains(.readable) {
                    drainTargets(&agents[position])
                }
            } else {
                poller = nil
                Thread.sleep(forTimeInterval: 0.005)
            }
            let now = ContinuousClock.now
            for position in agents.indices where agents[position].agent.nextBeat <= now {
                drainTargets(&agents[position])
                drainReplies(&agents[position])
                beat(&agents[position].agent)
                agents[position].agent.nextBeat = now + interval
            }
        }
        for entry in agents {
            entry.agent.dealer.close()
            entry.agent.targets.close()
        }
    }

    private func drainTargets(_ entry: inout (index: Int, agent: Agent)) {
        while let frames = try? entry.agent.targets.receive(wait: .never, maxFrames: 4) {
            guard let change = try? codec.decode(frames).body(as: Slipway_V1_TargetChange.self) else { continue }
            apply(change, to: &entry)
        }
    }

    private func drainReplies(_ entry: inout (index: Int, agent: Agent)) {
        var replies = 0, refusals = 0
        while let frames = try? entry.agent.dealer.receive(wait: .never, maxFrames: 4) {
            guard let message = try? codec.decode(frames) else { continue }
            replies += 1
            if message.type == .errorReply { refusals += 1 }
            guard message.type == .agentTargets, let reply = try? message.body(as: Slipway_V1_AgentTargets.self) else { continue }
            for change in reply.targets { apply(change, to: &entry) }
        }
        shared.withLock { state in
            state.replies += replies
            state.refusals += refusals
        }
    }

    private func apply(_ change: Slipway_V1_TargetChange, to entry: inout (index: Int, agent: Agent)) {
        if change.region == Self.baselineRegion { return saw(change.artifactDigest, entry.index) }
        guard change.service == service, change.region == region, change.version >= entry.agent.version else { return }
        let run = WaveMembership.assignment(for: entry.agent.machine, in: change).run
        guard !run.isEmpty, run != entry.agent.running else { return }
        saw(run, entry.index)
        entry.agent.running = run
        entry.agent.version = change.version
        beat(&entry.agent)  // a change of state is reported at once
    }

    /// The region of the messages a bench's own PUB sends: timed, never acted on.
    static let baselineRegion = "bench-baseline"

    private func saw(_ digest: String, _ index: Int) {
        let at = monotonicNanoseconds()
        shared.withLock { state in
            guard let watched = state.watched, watched.digest == digest, state.seen[index] == nil else { return }
            state.seen[index] = Double(Int64(bitPattern: at &- watched.since)) / 1e9
        }
    }

    private func beat(_ agent: inout Agent) {
        var register = Slipway_V1_AgentRegister()
        register.machineID = agent.machine
        register.region = region
        register.services = [service]
        if !agent.running.isEmpty {
            var status = Slipway_V1_AgentStatus()
            status.machineID = agent.machine
            status.region = region
            status.service = service
            status.artifactDigest = agent.running
            status.state = .running
            status.targetVersion = agent.version
            register.statuses = [status]
            register.completeDigests = [agent.running]
        }
        _ = try? agent.dealer.send(codec.encode(WireMessage(register, sender: agent.machine)), wait: .never)
        shared.withLock { $0.heartbeats += 1 }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
