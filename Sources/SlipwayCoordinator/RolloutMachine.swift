import SlipwayProto

/// One rollout as the coordinator drives it: a service moving from one build to
/// another through its plan's waves. Pure: the coordinator feeds it the time,
/// the regions' reports and operator commands, carries out the ``Effect``s it
/// returns (target changes, events) and stores it in `rollouts` after every step.
///
/// ```
///             start
///               │
///               ▼        pause / inconclusive gate
///         progressing ───────────────────────────► paused
///          │  │  │  ◄─────────────────────────────  │ │
///          │  │  │           resume                 │ │
///   last   │  │  │ failed gate                      │ │ promote: next wave
///   wave   │  │  ├──────────────► halted ──promote──┘ │ (as from progressing)
///  passed  │  │  │ (pause-on-failure)  │              │
///          ▼  │  ▼                     │ abort        │ abort
///   succeeded │ rolled_back            ▼              ▼
///             └───── abort ───────► aborted ◄─────────┘
/// ```
/// A newer deploy of the service aborts the rollout in any non-final state.
struct RolloutMachine: Equatable, Sendable {
    enum State: String, Codable, Sendable, CaseIterable {
        case progressing, paused, halted
        case rolledBack = "rolled_back"
        case succeeded, aborted

        /// Whether nothing more will happen to the rollout.
        var isFinal: Bool { self == .rolledBack || self == .succeeded || self == .aborted }

        var wire: Slipway_V1_RolloutState {
            switch self {
            case .progressing: .progressing
            case .paused: .paused
            case .halted: .halted
            case .rolledBack: .rolledBack
            case .succeeded: .succeeded
            case .aborted: .aborted
            }
        }
    }

    /// What the coordinator must do.
    enum Effect: Equatable, Sendable {
        /// Point the service's global target at `to` for the waves' shares so far (the rest keep `from`).
        case applyWaves(shares: [RolloutPlan.Share])
        /// The rollout is done: `to` for every machine, no rollout left on the target.
        case finish
        /// Back to `from` for every machine.
        case revert
        /// Record and publish this step.
        case event(Slipway_V1_EventType)
    }

    /// How one wave went.
    struct WaveRecord: Codable, Equatable, Sendable {
        var startedAt: Int64?
        var endedAt: Int64?
        /// "", "passed", "promoted", "failed", "paused", "aborted".
        var result = ""
        var detail = ""
    }

    /// A refused operator command, and why.
    struct Refusal: Error, Equatable {
        let message: String
    }

    /// Operator commands.
    enum Command: Equatable, Sendable {
        case pause, resume, promote, abort
    }

    let id: UInt64
    let service: String
    /// Nil for the service's first rollout.
    let from: String?
    let to: String
    let plan: RolloutPlan
    private(set) var state: State = .progressing
    /// The wave in progress (the last one, once ended).
    private(set) var wave = 0
    private(set) var waves: [WaveRecord]
    /// Why it is paused, halted, rolled back or aborted.
    private(set) var reason = ""
    /// When the current wave's gate started holding without a break.
    private(set) var holdingSince: Int64?
    /// The global target version carrying the current wave, set by the
    /// coordinator once it applied ``Effect/applyWaves(shares:)``.
    var waveVersion: UInt64 = 0

    /// A new rollout; ``start(now:)`` gives its first effects.
    init(id: UInt64, service: String, from: String?, to: String, plan: RolloutPlan) {
        self.id = id
        self.service = service
        self.from = from
        self.to = to
        self.plan = plan
        waves = Array(repeating: WaveRecord(), count: plan.waves.count)
    }

    /// A rollout as stored.
    init(id: UInt64, service: String, from: String?, to: String, plan: RolloutPlan, state: State, wave: Int, waves: [WaveRecord],
         reason: String, holdingSince: Int64?, waveVersion: UInt64) {
        self.init(id: id, service: service, from: from, to: to, plan: plan)
        self.state = state
        self.wave = min(max(wave, 0), plan.waves.count - 1)
        if waves.count == plan.waves.count { self.waves = waves }
        self.reason = reason
        self.holdingSince = holdingSince
        self.waveVersion = waveVersion
    }

    /// Starts the first wave.
    mutating func start(now: Int64) -> [Effect] {
        [.event(.rolloutStarted)] + beginWave(0, now: now)
    }

    /// Judges the current wave on the regions' latest reports; passes it after
    /// its bake time, halts on failures, pauses when the gate cannot see enough
    /// or the wave is not healthy by its deadline. Only a progressing rollout moves.
    /// `regions` are those a `*` share covers; `pinned` regions keep an override
    /// of their own, so the rollout does not reach them and they are not judged.
    mutating func tick(now: Int64, views: [String: RegionView], regions: [String], pinned: Set<String> = [],
                       staleAfterMicros: Int64) -> [Effect] {
        guard state == .progressing else { return [] }
        let gate = RolloutGate(rolloutID: id, waveVersion: waveVersion, wave: plan.waves[wave],
                               regions: coveredRegions(known: regions).filter { !pinned.contains($0) }, staleAfterMicros: staleAfterMicros)
        switch gate.judge(views, now: now) {
        case .holding:
            let since = holdingSince ?? now
            holdingSince = since
            guard now - since >= Int64(plan.waves[wave].bakeSeconds) * 1_000_000 else { return [] }
            return endWave("passed", detail: "healthy for \(plan.waves[wave].bakeSeconds)s", now: now)
        case .waiting(let detail):
            holdingSince = nil
            let started = waves[wave].startedAt ?? now
            guard now - started > Int64(plan.waveDeadlineSeconds) * 1_000_000 else { return [] }
            return pause("wave \(wave + 1) not healthy within \(plan.waveDeadlineSeconds)s: \(detail)", now: now)
        case .inconclusive(let detail):
            holdingSince = nil
            return pause("the gate cannot see enough: \(detail)", now: now)
        case .failed(let detail):
            holdingSince = nil
            waves[wave].result = "failed"
            waves[wave].endedAt = now
            waves[wave].detail = detail
            reason = "wave \(wave + 1) failed: \(detail)"
            if plan.pauseOnFailure {
                state = .halted
                return [.event(.rolloutHalted)]
            }
            state = .rolledBack
            return [.event(.rolloutHalted), .revert, .event(.rolloutRolledBack)]
        }
    }

    /// An operator's command; refused (with why) where it makes no sense.
    mutating func command(_ command: Command, by who: String, now: Int64) throws(Refusal) -> [Effect] {
        guard !state.isFinal else { throw Refusal(message: "rollout \(id) of \(service) already ended: \(state.rawValue)") }
        switch (command, state) {
        case (.pause, .progressing):
            state = .paused
            reason = "paused by \(who)"
            holdingSince = nil
            return [.event(.rolloutPaused)]
        case (.pause, _):
            throw Refusal(message: "rollout \(id) of \(service) is \(state.rawValue), not progressing")
        case (.resume, .paused):
            state = .progressing
            reason = ""
            holdingSince = nil
            // The deadline counts from now: the pause was not the wave's fault.
            waves[wave].startedAt = now
            waves[wave].result = ""
            return [.event(.rolloutResumed)]
        case (.resume, .halted):
            throw Refusal(message: "rollout \(id) of \(service) halted on a failed wave; promote it past the wave or abort it")
        case (.resume, _):
            throw Refusal(message: "rollout \(id) of \(service) is \(state.rawValue), not paused")
        case (.promote, _):
            state = .progressing
            reason = ""
            return endWave("promoted", detail: "promoted by \(who)", now: now)
        case (.abort, _):
            state = .aborted
            reason = "aborted by \(who)"
            waves[wave].result = "aborted"
            waves[wave].endedAt = now
            return [.revert, .event(.rolloutAborted)]
        }
    }

    /// A newer deploy of the service takes over: this one ends where it is; the
    /// new rollout sets the target.
    mutating func supersede(by newer: UInt64, now: Int64) -> [Effect] {
        guard !state.isFinal else { return [] }
        state = .aborted
        reason = "superseded by rollout \(newer)"
        if waves[wave].endedAt == nil {
            waves[wave].result = "aborted"
            waves[wave].endedAt = now
        }
        return [.event(.rolloutAborted)]
    }

    /// The regions the gate judges: those the waves so far name, and with `*`,
    /// every other region the coordinator knows.
    func coveredRegions(known: [String]) -> [String] {
        let shares = plan.shares(throughWave: wave)
        let named = shares.map(\.region).filter { $0 != "*" }
        guard shares.contains(where: { $0.region == "*" }) else { return named }
        return named + known.filter { !named.contains($0) }
    }

    private mutating func endWave(_ result: String, detail: String, now: Int64) -> [Effect] {
        waves[wave].result = result
        waves[wave].endedAt = now
        waves[wave].detail = detail
        holdingSince = nil
        guard wave + 1 < plan.waves.count else {
            state = .succeeded
            return [.event(.wavePassed), .finish, .event(.rolloutSucceeded)]
        }
        return [.event(.wavePassed)] + beginWave(wave + 1, now: now)
    }

    private mutating func beginWave(_ index: Int, now: Int64) -> [Effect] {
        wave = index
        waves[index].startedAt = now
        holdingSince = nil
        return [.applyWaves(shares: plan.shares(throughWave: index)), .event(.waveStarted)]
    }

    private mutating func pause(_ why: String, now: Int64) -> [Effect] {
        state = .paused
        reason = why
        waves[wave].result = "paused"
        waves[wave].detail = why
        return [.event(.rolloutPaused)]
    }
}
