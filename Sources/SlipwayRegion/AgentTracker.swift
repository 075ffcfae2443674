import SlipwayAuth
import SlipwayCore
package import SlipwayProto
import Foundation

/// What a region controller knows about its machines: who is alive, where each
/// service stands on each machine, and which artifact pieces each one can serve.
/// It answers peer-list requests and folds every machine into the counts the
/// coordinator gets (``report(region:)``); per-machine state never leaves the region.
///
/// Pure: no sockets, no clock; the tracker loop feeds it messages and the time
/// (the distribution simulator feeds it virtual time).
package struct AgentTracker {
    /// One machine, as it last reported.
    struct Machine {
        var endpoint: String
        var statuses: [String: Slipway_V1_AgentStatus]
        var complete: Set<String>
        /// Pieces of artifacts still downloading, from its last peer-list request.
        var partial: [String: Set<Int>]
        var lastSeen: ContinuousClock.Instant
        /// The services it runs, as it registered them.
        var services: [String] = []
        /// Unheard of for longer than the timeout: reported missing, never handed out as a peer.
        var silent = false
        /// Its piece server's CURVE public key, from its authenticated registration (nil: it serves without CURVE).
        var curveKey: [UInt8]?
        /// The last of its refusals passed on: the agent's epoch, number, and count of those it did not keep.
        var refusalsPassed: (epoch: UInt64, through: UInt64, notListed: UInt64) = (0, 0, 0)
        /// Refusals passed on in the minute-long window that began at `since`.
        var refusalWindow: (since: ContinuousClock.Instant, passed: Int)?
    }

    /// A machine unheard of for this long is silent: not counted as running
    /// anything, not handed out as a peer, reported as missing.
    let timeout: Duration
    /// A machine silent for this long is forgotten (decommissioned, renamed).
    let forgetAfter: Duration
    /// Most peers in one peer list.
    let peerLimit: Int
    /// Most failing machines named in one report.
    let failureLimit: Int
    private(set) var machines: [String: Machine] = [:]
    /// Per artifact, the machines that hold it or are fetching it: a peer list
    /// samples these instead of visiting every machine of the region, since
    /// every downloading machine asks for one each second.
    private var holders: [String: SampledSet<String>] = [:]
    /// Artifacts in progress remembered per machine.
    static let maxPartialDigests = 8
    /// Piece indices remembered per artifact per machine (a 256 GiB artifact of 4 MiB pieces).
    package static let maxHave = 65_536

    /// A tracker that forgets silent machines after `timeout`.
    package init(timeout: Duration, forgetAfter: Duration = .seconds(900), peerLimit: Int = 20, failureLimit: Int = 100) {
        self.timeout = timeout
        self.forgetAfter = max(forgetAfter, timeout)
        self.peerLimit = peerLimit
        self.failureLimit = failureLimit
    }

    /// Records a registration or heartbeat (already validated).
    /// - Parameter curveKey: the key the registration was authenticated with, when the
    ///   agent says its piece server runs CURVE with it (peers pin it); nil otherwise.
    package mutating func register(_ message: Slipway_V1_AgentRegister, curveKey: [UInt8]? = nil, now: ContinuousClock.Instant) {
        var machine = machines[message.machineID]
            ?? Machine(endpoint: message.peerEndpoint, statuses: [:], complete: [], partial: [:], lastSeen: now)
        machine.endpoint = message.peerEndpoint
        machine.curveKey = curveKey
        machine.services = message.services
        machine.silent = false
        // Statuses speak for the registering machine only, whatever they say.
        machine.statuses = Dictionary(message.statuses.map { status in
            var status = status
            status.machineID = message.machineID
            status.region = message.region
            return (status.service, status)
        }, uniquingKeysWith: { _, last in last })
        machine.complete = Set(message.completeDigests)
        for digest in machine.complete { machine.partial[digest] = nil }
        machine.lastSeen = now
        store(machine, as: message.machineID)
    }

    /// Refusals one machine passes on in a minute at most: what an agent reports is its
    /// word, and one agent must not crowd out its region's other refusals.
    package static let refusalsPerMachinePerMinute = 100

    /// The refusals a registration (already recorded with ``register(_:curveKey:now:)``)
    /// carries that were not passed on before, at most `RefusalJournal.perRegistration`
    /// and ``refusalsPerMachinePerMinute``, and how many more to count as not listed:
    /// those past either limit, and those its agent counted without keeping since the
    /// last registration.
    package mutating func newRefusals(_ message: Slipway_V1_AgentRegister,
                                      now: ContinuousClock.Instant) -> (fresh: [Slipway_V1_AuditEntry], unlisted: UInt64) {
        guard var machine = machines[message.machineID], !message.refusals.isEmpty || message.refusalsNotListed > 0,
              message.refusalsThrough >= UInt64(message.refusals.count) else { return ([], 0) }
        let sameEpoch = machine.refusalsPassed.epoch == message.refusalsEpoch
        let passed = sameEpoch ? machine.refusalsPassed.through : 0
        let counted = sameEpoch ? machine.refusalsPassed.notListed : 0
        let first = message.refusalsThrough - UInt64(message.refusals.count) + 1
        let fresh = message.refusals.enumerated().filter { first + UInt64($0.offset) > passed }.map(\.element)
        var window = machine.refusalWindow.flatMap { now - $0.since < .seconds(60) ? $0 : nil } ?? (since: now, passed: 0)
        let kept = Array(fresh.prefix(min(RefusalJournal.perRegistration, max(0, Self.refusalsPerMachinePerMinute - window.passed))))
        window.passed += kept.count
        machine.refusalWindow = window
        machine.refusalsPassed = (message.refusalsEpoch, max(passed, message.refusalsThrough), max(counted, message.refusalsNotListed))
        machines[message.machineID] = machine
        // Counts an agent sends may be anything: they saturate rather than trap.
        let grown = message.refusalsNotListed > counted ? message.refusalsNotListed - counted : 0
        return (kept, grown.addingSaturated(UInt64(fresh.count - kept.count)))
    }

    /// Records which pieces of `digest` a downloading machine holds. Unknown
    /// machines are ignored: they register first.
    package mutating func noteHave(_ request: Slipway_V1_PeerListRequest, now: ContinuousClock.Instant) {
        guard var machine = machines[request.machineID], !machine.silent else { return }
        // Bounded per machine: a few downloads at a time is all an agent does.
        if machine.partial[request.digest] == nil, machine.partial.count >= Self.maxPartialDigests {
            // The least digest, not the dictionary's first: its order is seeded per process.
            machine.partial[machine.partial.keys.min()!] = nil
        }
        machine.partial[request.digest] = Set(request.have.prefix(Self.maxHave).map(Int.init))
        machine.lastSeen = now
        store(machine, as: request.machineID)
    }

    /// Saves `machine` (nil: forgets it) and keeps ``holders`` in step.
    private mutating func store(_ machine: Machine?, as id: String) {
        let before = machines[id].map { $0.complete.union($0.partial.keys) } ?? []
        let after = machine.map { $0.complete.union($0.partial.keys) } ?? []
        machines[id] = machine
        for digest in before.subtracting(after) {
            holders[digest]?.remove(id)
            if holders[digest]?.isEmpty == true { holders[digest] = nil }
        }
        for digest in after.subtracting(before) { holders[digest, default: SampledSet()].insert(id) }
    }

    /// Up to ``peerLimit`` live machines other than `asking` that hold or are fetching `digest`, chosen at random.
    /// A machine whose piece server runs CURVE is named only to askers that run it too: one
    /// that registered without (an agent older than that) could not reach it.
    package func peers(for digest: String, asking: String, using random: inout some RandomNumberGenerator) -> [Slipway_V1_Peer] {
        guard let holders = holders[digest] else { return [] }
        let askerHasKey = machines[asking]?.curveKey != nil
        let chosen = holders.sample(peerLimit, where: { id in
            id != asking && machines[id].map { !$0.endpoint.isEmpty && !$0.silent && (askerHasKey || $0.curveKey == nil) } ?? false
        }, using: &random)
        return chosen.map { id in
            let machine = machines[id]!
            var peer = Slipway_V1_Peer()
            peer.machineID = id
            peer.endpoint = machine.endpoint
            if let key = machine.curveKey { peer.curveKey = Data(key) }
            if machine.complete.contains(digest) {
                peer.complete = true
            } else {
                // Also when it holds nothing yet: downloaders split the seed's pieces among themselves.
                peer.have = (machine.partial[digest] ?? []).sorted().map(UInt32.init)
            }
            return peer
        }
    }

    /// Marks machines not heard from within ``timeout`` silent, and forgets
    /// those silent for ``forgetAfter``.
    /// - Returns: the machines that went silent now, and those forgotten.
    package mutating func expire(now: ContinuousClock.Instant) -> (silenced: [String], forgotten: [String]) {
        let forgotten = machines.filter { now - $0.value.lastSeen > forgetAfter }.map(\.key).sorted()
        for id in forgotten { store(nil, as: id) }
        let silenced = machines.filter { !$0.value.silent && now - $0.value.lastSeen > timeout }.map(\.key).sorted()
        for id in silenced { machines[id]?.silent = true }
        return (silenced, forgotten)
    }

    /// The tracker could not listen for `gap` (a frozen process, a paused VM, a
    /// starved host): nobody's silence during it counts. Machines that gave up
    /// on it reconnect only once it runs again; without this, a tracker waking
    /// from a gap longer than ``timeout`` would report every machine missing and
    /// pause every rollout judging its region.
    package mutating func stalled(for gap: Duration, now: ContinuousClock.Instant) {
        for id in machines.keys { machines[id]!.lastSeen = min(now, machines[id]!.lastSeen + gap) }
    }

    /// For a rollout's target of `service`: the cutoff that puts this region's
    /// share of its machines (silent ones included: they keep their place) in
    /// the waves, and how those machines stand on the new build.
    func wave(_ target: Slipway_V1_TargetChange, region: String) -> (cutoff: UInt64, progress: Slipway_V1_WaveProgress) {
        let ids = machines.filter { $0.value.services.contains(target.service) }.map(\.key)
        let scores = Dictionary(uniqueKeysWithValues: ids.map { ($0, WaveMembership.score(rollout: target.rolloutID, machine: $0)) })
        let share = WaveMembership.share(of: region, in: target)
        let count = WaveMembership.count(of: share, total: ids.count)
        let cutoff = WaveMembership.cutoff(selecting: count, of: Array(scores.values), all: WaveMembership.coversAll(share))
        var progress = Slipway_V1_WaveProgress()
        progress.service = target.service
        progress.rolloutID = target.rolloutID
        progress.targetVersion = target.version
        progress.artifactDigest = target.artifactDigest
        progress.machines = UInt32(ids.count)
        for id in ids where scores[id]! <= cutoff {
            let machine = machines[id]!
            progress.selected += 1
            if machine.silent {
                progress.missing += 1
                continue
            }
            guard let status = machine.statuses[target.service] else { continue }
            if status.state == .running, status.artifactDigest == target.artifactDigest { progress.healthy += 1 }
            if (status.state == .failed && status.artifactDigest == target.artifactDigest)
                || (status.state == .rolledBack && status.failedDigest == target.artifactDigest) {
                progress.failed += 1
            }
        }
        return (cutoff, progress)
    }

    /// The region's counts: machines per (service, build, state), and the failing machines.
    func report(region: String) -> Slipway_V1_RegionReport {
        struct Key: Hashable { let service: String, digest: String, state: Slipway_V1_AgentState }
        var counts: [Key: UInt32] = [:]
        var failures: [Slipway_V1_AgentStatus] = []
        var missing: [Slipway_V1_AgentStatus] = []
        for id in machines.keys.sorted() {
            let machine = machines[id]!
            if machine.silent {
                for service in machine.services.sorted() where missing.count < failureLimit {
                    var status = machine.statuses[service] ?? Slipway_V1_AgentStatus()
                    status.machineID = id
                    status.service = service
                    status.reason = "no report since the agent timeout; last state \(status.state)"
                    missing.append(status)
                }
                continue
            }
            // A service the machine runs but has no build of yet counts as idle: the service exists.
            for service in machine.services where machine.statuses[service] == nil {
                counts[Key(service: service, digest: "", state: .idle), default: 0] += 1
            }
            for status in machine.statuses.values.sorted(by: { $0.service < $1.service }) {
                counts[Key(service: status.service, digest: status.artifactDigest, state: status.state), default: 0] += 1
                if [.failed, .rolledBack, .downloadFailed].contains(status.state), failures.count < failureLimit {
                    failures.append(status)
                }
            }
        }
        var report = Slipway_V1_RegionReport()
        report.region = region
        report.machines = UInt32(machines.values.filter { !$0.silent }.count)
        report.failures = failures
        report.missing = missing
        report.counts = counts.map { key, machines in
            var count = Slipway_V1_BuildCount()
            count.service = key.service
            count.artifactDigest = key.digest
            count.state = key.state
            count.machines = machines
            return count
        }.sorted { ($0.service, $0.artifactDigest, $0.state.rawValue) < ($1.service, $1.artifactDigest, $1.state.rawValue) }
        return report
    }
}
