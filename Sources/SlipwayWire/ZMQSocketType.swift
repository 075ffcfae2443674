import CZeroMQ

/// The socket patterns Slipway uses.
public enum ZMQSocketType: Sendable, Hashable, CaseIterable {
    case push, pull, pub, sub, xpub, xsub, router, dealer, pair
    /// Only for answering libzmq's ZAP requests, which arrive REQ-style.
    case rep

    var rawValue: Int32 {
        switch self {
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pair: ZMQ_PAIR
        case .rep: ZMQ_REP
        }
    }
}

/// How long a send or receive may wait.
public enum ZMQWait: Sendable, Hashable {
    /// Block until the call can complete (only on an `OwnedThread`).
    case forever
    /// Never block: return at once if the call cannot complete.
    case never
    /// Block at most this long (only on an `OwnedThread`).
    case timeout(Duration)

    var blocks: Bool { self != .never }

    /// The wait in whole milliseconds as `zmq_poll` takes it (-1 = forever).
    var pollMilliseconds: Int {
        switch self {
        case .forever: -1
        case .never: 0
        case .timeout(let duration): duration.wholeMilliseconds
        }
    }
}

extension Duration {
    /// Rounded up, so a 0.5 ms wait still waits rather than spinning.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        let millis = seconds * 1_000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(clamping: max(0, millis))
    }
}
