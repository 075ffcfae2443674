import Dispatch
public import Logging
public import SlipwayWire
import SlipwayThreads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Answers libzmq's ZAP requests (RFC 27) for every CURVE server socket of one
/// ``ZMQContext``, on a thread of its own: a client is admitted only if its
/// public key is in the ``TrustDirectory`` of the socket's ZAP domain, and the
/// reply's user id (`role/name`) then travels with every message from it.
///
/// CURVE without a ZAP handler authenticates nobody (libzmq admits every client
/// that knows the server key when no handler is bound), so a daemon starts this
/// before it binds any CURVE socket, and fails to start if it cannot. Anything
/// but CURVE, an unknown domain and an unknown key are refused.
public final class ZAPHandler: Sendable {
    /// Where libzmq sends ZAP requests, per context.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let thread: OwnedThread
    private let stopped = StopSignal()
    private let stopping = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Binds the ZAP endpoint in `context` and starts answering.
    /// - Parameters:
    ///   - domains: the trust folder for each ZAP domain (a socket's `ZMQ_ZAP_DOMAIN`).
    ///   - daemon: the daemon's name, for metrics and logs.
    /// - Throws: ``AuthError`` if the endpoint cannot be bound (another handler has it).
    ///   - summaryInterval: how often refusals are summarised in the log (each is counted in metrics at once).
    public init(context: ZMQContext, domains: [String: TrustDirectory], daemon: String, summaryInterval: Duration = .seconds(60),
                logger: Logger) throws(AuthError) {
        thread = OwnedThread(name: "zap")
        let bound = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        let (stopped, finished) = (self.stopped, self.finished)
        _ = thread.execute {
            let socket: ZMQSocket
            do {
                // A ROUTER, not a REP: a reply that cannot be sent must not wedge a state machine.
                socket = try ZMQSocket(context: context, type: .router)
                try socket.set(.linger(.zero))
                try socket.bind(Self.endpoint)
            } catch {
                failure.withLock { $0 = "the ZAP handler could not bind \(Self.endpoint): \(error)" }
                stopped.stop()
                bound.signal()
                finished.signal()
                return
            }
            bound.signal()
            Self.serve(socket, domains: domains, log: RejectionLog(daemon: daemon, socket: "zap", interval: summaryInterval), logger: logger, stopped: stopped)
            socket.close()
            finished.signal()
        }
        bound.wait()
        if let message = failure.withLock({ $0 }) {
            stopping.withLock { $0 = true }
            thread.shutdown()
            throw AuthError(message)
        }
    }

    /// Stops answering and unbinds; handshakes after this wait for a handler that is gone (and fail).
    public func stop() {
        let first = stopping.withLock { already in
            defer { already = true }
            return !already
        }
        guard first else { return }
        stopped.stop()
        finished.wait()
        thread.shutdown()
    }

    deinit { stop() }

    /// Handshakes waiting for the region tracker's word on their key, at most.
    public static let maxWaiting = 1_000
    /// How long a handshake waits for that word before it is refused.
    public static let waitLimit: Duration = .seconds(5)

    /// A handshake whose key the tracker has not vouched for or refused yet.
    private struct Waiting {
        let routingID: [UInt8]
        let request: ZAPRequest
        let since: ContinuousClock.Instant
    }

    private static func serve(_ socket: ZMQSocket, domains: [String: TrustDirectory], log: RejectionLog, logger: Logger,
                              stopped: StopSignal) {
        var log = log
        var waiting: [Waiting] = []
        var lookedAt = (generation: 0, time: ContinuousClock.now)
        let poller = ZMQPoller()
        _ = try? poller.add(socket)
        while !stopped.isStopped {
            let frames: [[UInt8]]?
            do {
                // While handshakes wait, look at the answers often: each costs a peer its first request's time.
                let ready = try poller.poll(wait: .timeout(waiting.isEmpty ? .milliseconds(100) : .milliseconds(5)))
                frames = ready[0].contains(.readable) ? try socket.receive(wait: .never, maxFrames: 18) : nil
            } catch {
                // The context is ending: nothing more will come, and the socket must close for it to end.
                if error.code == .contextTerminated { return }
                logger.warning("ZAP handler: \(error)")
                usleep(100_000)
                continue
            }
            let now = ContinuousClock.now
            // Waiting handshakes are looked at again when an answer came, and every 100 ms (timeouts, questions to ask again).
            let generation = domains.values.reduce(0) { $0 + ($1.vouches?.generation ?? 0) }
            if !waiting.isEmpty, generation != lookedAt.generation || now - lookedAt.time >= .milliseconds(100) {
                lookedAt = (generation, now)
                waiting = waiting.filter { entry in
                    if let decision = entry.request.decideWaiting(domains) {
                        answer(socket, entry.routingID, decision, log: &log, logger: logger)
                        return false
                    }
                    guard now - entry.since >= waitLimit else { return true }
                    answer(socket, entry.routingID, entry.request.refused("vouch_timeout", "the region's tracker did not answer for the key"),
                           log: &log, logger: logger)
                    return false
                }
            }
            guard let frames else {
                log.flush(logger: logger)
                continue
            }
            // Routing id, the empty delimiter libzmq's ZAP client sends, then the request.
            guard frames.count >= 2, frames[1].isEmpty else { continue }
            guard let request = ZAPRequest(frames: Array(frames.dropFirst(2))) else {
                answer(socket, frames[0], .refused(requestID: frames.count > 3 ? frames[3] : [], reason: "malformed_request", detail: "not a ZAP 1.0 request"),
                       log: &log, logger: logger)
                continue
            }
            if let decision = request.decide(domains) {
                answer(socket, frames[0], decision, log: &log, logger: logger)
            } else if waiting.count < maxWaiting {
                waiting.append(Waiting(routingID: frames[0], request: request, since: now))
            } else {
                answer(socket, frames[0], request.refused("busy", "\(maxWaiting) handshakes already wait for the region's tracker"), log: &log, logger: logger)
            }
        }
    }

    private static func answer(_ socket: ZMQSocket, _ routingID: [UInt8], _ decision: ZAPDecision, log: inout RejectionLog, logger: Logger) {
        if case .refused(_, let reason, let detail) = decision {
            log.record(reason: reason, detail: detail, logger: logger)
        }
        // The context ending is seen by the next poll.
        _ = try? socket.send([routingID, []] + decision.replyFrames, wait: .timeout(.seconds(1)))
    }
}

/// One ZAP request as libzmq sends it: version, request id, domain, address,
/// routing id, mechanism, credentials.
struct ZAPRequest: Equatable {
    let requestID: [UInt8]
    let domain: String
    let address: String
    let mechanism: String
    let credentials: [[UInt8]]

    init?(frames: [[UInt8]]) {
        guard frames.count >= 6, frames[0] == Array("1.0".utf8) else { return nil }
        requestID = frames[1]
        domain = String(decoding: frames[2], as: UTF8.self)
        address = String(decoding: frames[3], as: UTF8.self)
        mechanism = String(decoding: frames[5], as: UTF8.self)
        credentials = Array(frames.dropFirst(6))
    }

    /// Admits a CURVE client whose key the domain's trust folder holds, or that the
    /// region's tracker vouched for where the folder takes its word; refuses
    /// anything else. - Returns: nil while the tracker has not answered for the key.
    func decide(_ domains: [String: TrustDirectory]) -> ZAPDecision? {
        decision(domains) { trust, key in trust.admission(of: key) }
    }

    /// ``decide(_:)`` for a handshake that waits for the tracker: the folder already
    /// missed, so only the tracker's answer is looked at (no `stat` of the folder per look).
    func decideWaiting(_ domains: [String: TrustDirectory]) -> ZAPDecision? {
        decision(domains) { trust, key in trust.vouches?.verdict(key) ?? .refused }
    }

    private func decision(_ domains: [String: TrustDirectory], verdict: (TrustDirectory, CurveKey) -> VouchedKeys.Verdict) -> ZAPDecision? {
        guard let trust = domains[domain] else {
            return refused("unknown_domain", "ZAP domain \"\(domain)\" from \(address)")
        }
        guard mechanism == "CURVE", credentials.count == 1, let key = CurveKey(bytes: credentials[0]) else {
            return refused("not_curve", "mechanism \(mechanism) from \(address)")
        }
        switch verdict(trust, key) {
        case .trusted(let identity): return .admitted(requestID: requestID, identity, key: key)
        case .asking: return nil
        case .busy: return refused("busy", "key \(key.z85) from \(address): too many keys wait for the region's tracker")
        case .refused:
            let place = trust.vouches == nil ? trust.path : "\(trust.path), nor vouched for by the region's tracker"
            return refused("untrusted_key", "key \(key.z85) from \(address) is not in \(place)")
        }
    }

    func refused(_ reason: String, _ detail: String) -> ZAPDecision {
        .refused(requestID: requestID, reason: reason, detail: detail)
    }
}

/// What the handler answers.
enum ZAPDecision: Equatable {
    case admitted(requestID: [UInt8], Identity, key: CurveKey)
    case refused(requestID: [UInt8], reason: String, detail: String)

    /// Version, request id, status code, status text, user id, metadata: for an
    /// admitted client its public key, which libzmq attaches to every message
    /// from it (``ZMQSocket/peerCurveKey``), ZAP's properties winning over any the
    /// client sent about itself.
    var replyFrames: [[UInt8]] {
        switch self {
        case .admitted(let requestID, let identity, let key):
            [Array("1.0".utf8), requestID, Array("200".utf8), Array("OK".utf8), Array(identity.userID.utf8),
             Self.property(ZMQSocket.curveKeyProperty, Array(key.z85.utf8))]
        case .refused(let requestID, let reason, _):
            [Array("1.0".utf8), requestID, Array("400".utf8), Array(reason.utf8), [], []]
        }
    }

    /// One ZMTP metadata property: name length (1 byte), name, value length (4 bytes, big-endian), value.
    static func property(_ name: String, _ value: [UInt8]) -> [UInt8] {
        let nameBytes = Array(name.utf8)
        return [UInt8(nameBytes.count)] + nameBytes + withUnsafeBytes(of: UInt32(value.count).bigEndian) { Array($0) } + value
    }
}
