public import SlipwayCore
public import SlipwayProto

/// Receives the coordinator's event stream without losing anything: live events
/// come over SUB; a late start, a gap, or a heartbeat announcing newer events
/// triggers a snapshot request over DEALER for everything after the last applied
/// number, and live events that arrive meanwhile wait until it is done.
///
/// Events come out strictly in sequence order, each once. Blocking: use it on
/// the thread that created it (an `OwnedThread`).
public final class EventSubscriber {
    private let codec = WireCodec()
    private let publisher: Endpoint
    private let snapshotEndpoint: Endpoint
    private let sender: String
    private let security: ClientSecurity
    private let context: ZMQContext
    private var live: ZMQSocket
    private var snapshot: ZMQSocket?
    private var sequencer: EventSequencer
    private var catchingUp = false
    /// Started `fromNewest` and not yet told where the stream is: history is skipped.
    private var skippingHistory: Bool
    private var pendingLive: [Slipway_V1_Event] = []
    private var ready: [Slipway_V1_Event] = []
    private var requestID = ""
    private var requestedAt = ContinuousClock.now
    /// How long to wait for a snapshot reply before asking again.
    public var snapshotTimeout: Duration = .seconds(3)
    /// Snapshot requests sent so far (each gap or late start is one).
    public private(set) var snapshotRequests = 0

    /// The newest sequence number delivered.
    public var lastSequence: UInt64 { sequencer.lastApplied }

    /// Connects to a publisher's PUB and snapshot ROUTER with `security`, and asks for every event after `after`;
    /// `fromNewest` skips the history instead: the first event delivered is the first one published after the start.
    public init(context: ZMQContext, publisher: Endpoint, snapshot: Endpoint, after: UInt64 = 0, fromNewest: Bool = false,
                sender: String, security: ClientSecurity, receiveHighWaterMark: Int32 = 1_000) throws {
        self.skippingHistory = fromNewest
        self.context = context
        self.security = security
        self.publisher = publisher
        self.snapshotEndpoint = snapshot
        self.sender = sender
        self.sequencer = EventSequencer(after: after)
        live = try ZMQSocket(context: context, type: .sub)
        try live.set(.receiveHighWaterMark(receiveHighWaterMark))
        try live.set(.subscribe([]))
        for option in security.options { try live.set(option) }
        try live.connect(publisher)
        try requestSnapshot()
    }

    /// The next event in sequence order, or nil if none arrived within `wait`.
    public func next(wait: ZMQWait) throws -> Slipway_V1_Event? {
        let deadline = ContinuousClock.now + (wait.pollTimeout ?? .seconds(0))
        while true {
            if !ready.isEmpty { return ready.removeFirst() }
            if catchingUp, ContinuousClock.now - requestedAt > snapshotTimeout { try requestSnapshot() }
            let poller = ZMQPoller()
            try poller.add(live)
            if let snapshot { try poller.add(snapshot) }
            let remaining = deadline - ContinuousClock.now
            let slice: ZMQWait = wait == .forever ? .timeout(.milliseconds(200)) : .timeout(max(.zero, min(remaining, .milliseconds(200))))
            let readiness = try poller.poll(wait: slice)
            if readiness.count > 1, readiness[1].contains(.readable) { try drainSnapshot() }
            if readiness[0].contains(.readable) { try drainLive() }
            if !ready.isEmpty { return ready.removeFirst() }
            if wait != .forever, ContinuousClock.now >= deadline { return nil }
        }
    }

    /// Closes both sockets.
    public func close() {
        live.close()
        snapshot?.close()
    }

    private func requestSnapshot() throws {
        snapshot?.close()
        let socket = try ZMQSocket.requestDealer(context: context, connectedTo: snapshotEndpoint, options: security.options)
        snapshot = socket
        var request = Slipway_V1_SnapshotRequest()
        // Asking for what follows the largest number returns no events, only where the stream is.
        request.afterSequence = skippingHistory ? .max : sequencer.lastApplied
        let message = WireMessage(request, sender: sender)
        requestID = message.envelope.messageID
        _ = try socket.send(codec.encode(message), wait: .never)
        catchingUp = true
        requestedAt = .now
        snapshotRequests += 1
    }

    private func drainSnapshot() throws {
        guard let socket = snapshot else { return }
        // A held event that shows a gap, or a capped reply, asks again on a new socket and
        // closes this one: what is left on it answers the old request, so draining stops there.
        while snapshot === socket, let frames = try socket.receive(wait: .never) {
            guard let message = try? codec.decode(frames), message.envelope.inReplyTo == requestID else { continue }
            switch message.type {
            case .event:
                if let event = try? message.body(as: Slipway_V1_Event.self), sequencer.offer(event.sequence) == .apply {
                    ready.append(event)
                }
            case .snapshotEnd:
                if skippingHistory {
                    guard let end = try? message.body(as: Slipway_V1_SnapshotEnd.self) else { continue }
                    sequencer = EventSequencer(after: end.lastSequence)
                    skippingHistory = false
                }
                catchingUp = false
                let held = pendingLive
                pendingLive = []
                for event in held { try accept(event) }
                if let end = try? message.body(as: Slipway_V1_SnapshotEnd.self), sequencer.isBehind(end.lastSequence) {
                    try requestSnapshot()  // the reply was capped; ask for the rest
                }
            default: continue
            }
        }
    }

    private func drainLive() throws {
        while let frames = try live.receive(wait: .never) {
            guard let message = try? codec.decode(frames) else { continue }
            switch message.type {
            case .event:
                guard let event = try? message.body(as: Slipway_V1_Event.self) else { continue }
                if catchingUp { pendingLive.append(event) } else { try accept(event) }
            case .coordinatorHeartbeat:
                // A lost *last* event shows no gap until the next one; the heartbeat tells.
                if !catchingUp, let beat = try? message.body(as: Slipway_V1_CoordinatorHeartbeat.self),
                   sequencer.isBehind(beat.lastEventSeq) {
                    try requestSnapshot()
                }
            default: continue
            }
        }
    }

    private func accept(_ event: Slipway_V1_Event) throws {
        switch sequencer.offer(event.sequence) {
        case .apply: ready.append(event)
        case .duplicate: break
        case .gap:
            pendingLive.append(event)
            try requestSnapshot()
        }
    }
}

extension ZMQWait {
    var pollTimeout: Duration? {
        switch self {
        case .forever: nil
        case .never: .zero
        case .timeout(let duration): duration
        }
    }
}
