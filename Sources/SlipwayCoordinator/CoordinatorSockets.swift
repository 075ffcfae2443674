#if canImport(Glibc)
import Glibc
#endif
import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayWire

/// The leader's four sockets, bound together and closed together, each with
/// the limits on what one peer can make it hold (see ``ServerLimits``).
struct CoordinatorSockets {
    /// Intake: requests up to 1 MiB; replies (log pages) up to 1 MiB, 64 waiting per peer.
    static let intakeLimits = ServerLimits.control
    /// Dispatch: log chunks of 1 MiB and their envelope; assignments and acknowledgements out.
    static let dispatchLimits = ServerLimits(largestMessage: (2 << 20) + (64 << 10), receiveQueue: 64, sendQueue: 256)
    /// Snapshots: tiny requests; a catch-up reply is many messages at once, all sent.
    static let snapshotLimits = ServerLimits(largestMessage: 64 << 10, receiveQueue: 16, sendQueue: Snapshots.pageLimit * 2)

    /// Watches each ROUTER's connections.
    let guards: [ConnectionGuard]
    /// Every endpoint bound, per socket, to release at close.
    private let bound: [(socket: ZMQSocket, endpoints: [Endpoint])]
    /// ROUTER for CI, the CLI and region controllers.
    let intake: ZMQSocket
    /// ROUTER for workers.
    let dispatch: ZMQSocket
    /// PUB for the event stream.
    let events: ZMQSocket
    /// ROUTER where subscribers catch up.
    let snapshots: ZMQSocket

    /// A port was still in use when the wait for it ran out.
    struct PortHeld: Error, CustomStringConvertible {
        let failure: EndpointFailure
        var description: String { failure.description }
    }

    /// How long a coordinator taking over waits for a port still in use. A leader that
    /// loses its lock learns it within about a second of reaching the database again
    /// (``DatabaseHealth`` retries at least every second), and then releases its ports at once.
    static let takeOverWait: Duration = .seconds(5)

    /// Binds the leader's sockets. Right after leadership changes hands the previous leader may
    /// still hold the ports for a moment: another process that has not yet seen it lost the lock
    /// (it can no longer commit), or this process's own sockets, closed a moment ago when it
    /// stepped down. A port in use is tried again for ``takeOverWait``.
    /// (Chaos found both coordinators exiting after a PostgreSQL restart: each found the other's ports.)
    /// - Parameter sleep: waits between tries; true when the daemon is stopping.
    /// - Throws: ``PortHeld`` when a port is still in use after the wait; any other failure as it came.
    static func takingOver(context: ZMQContext, config: CoordinatorConfig, logger: Logger,
                           sleep: (Duration) -> Bool) throws -> CoordinatorSockets {
        let deadline = ContinuousClock.now + takeOverWait
        let inUse = String(cString: strerror(EADDRINUSE))
        while true {
            do {
                return try CoordinatorSockets(context: context, config: config, logger: logger)
            } catch let failure as EndpointFailure where failure.reason.contains(inUse) {
                guard ContinuousClock.now < deadline else { throw PortHeld(failure: failure) }
                logger.warning("taking over: a port is still held by the previous leader; trying again",
                               metadata: ["endpoint": "\(failure.endpoint.labelled)", "reason": "\(failure.reason)"])
                if sleep(.milliseconds(250)) { throw CancellationError() }
            }
        }
    }

    /// Binds every endpoint; the error names the one that failed and its flag.
    init(context: ZMQContext, config: CoordinatorConfig, logger: Logger) throws {
        // What is bound so far, released on failure: a socket merely closed keeps its listener until
        // libzmq reaps it, so the next try (and the other coordinator) would find this process's own ports taken.
        var opened: [(socket: ZMQSocket, endpoints: [Endpoint])] = []
        var watches: [ConnectionGuard] = []
        do {
            let (intake, intakeGuard) = try ZMQSocket.boundedRouter(context: context, endpoint: config.intakeEndpoint, limits: Self.intakeLimits,
                                                                     security: config.security.server, daemon: "coordinator", name: "intake", logger: logger)
            opened.append((intake, [config.intakeEndpoint]))
            watches.append(intakeGuard)
            // A worker that reconnects keeps its routing id (its worker id) and takes over.
            let (dispatch, dispatchGuard) = try ZMQSocket.boundedRouter(context: context, endpoint: config.dispatchEndpoint,
                                                                         limits: Self.dispatchLimits, security: config.security.server,
                                                                         daemon: "coordinator", name: "dispatch",
                                                                         logger: logger) { try $0.set(.routerHandover(true)) }
            opened.append((dispatch, [config.dispatchEndpoint]))
            watches.append(dispatchGuard)
            let events = try ZMQSocket(context: context, type: .pub)
            opened.append((events, []))
            try events.set(.maxMessageSize(64 << 10))
            for option in config.security.server.options { try events.set(option) }
            try events.bind(config.eventsEndpoint)
            opened[opened.count - 1].endpoints.append(config.eventsEndpoint)
            let (snapshots, snapshotGuard) = try ZMQSocket.boundedRouter(context: context, endpoint: config.snapshotEndpoint,
                                                                          limits: Self.snapshotLimits, security: config.security.server,
                                                                          daemon: "coordinator", name: "snapshot",
                                                                          logger: logger)
            opened.append((snapshots, [config.snapshotEndpoint]))
            watches.append(snapshotGuard)
            if let next = config.next {
                for (index, endpoint) in [next.intake, next.dispatch, next.events, next.snapshot].enumerated() {
                    for option in next.options { try opened[index].socket.set(option) }
                    try opened[index].socket.bind(endpoint)
                    opened[index].endpoints.append(endpoint)
                }
            }
            (self.intake, self.dispatch, self.events, self.snapshots) = (intake, dispatch, events, snapshots)
            bound = opened
            guards = watches
        } catch {
            Self.release(opened, watches)
            throw error
        }
    }

    /// Takes in new and closed connections for the guards.
    func pollGuards() {
        for watch in guards { watch.poll() }
    }

    /// Releases the ports at once, then closes. (Chaos saw a leader that stepped down
    /// keep its events port past the 5 s a standby taking over waits for it: a closed
    /// socket's listener lives until libzmq reaps the socket.)
    func close() { Self.release(bound, guards) }

    /// Stops the watches first (see ``ConnectionGuard/stop()``), then unbinds and closes
    /// with no linger: a coordinator that stops leading has nothing left to deliver.
    private static func release(_ sockets: [(socket: ZMQSocket, endpoints: [Endpoint])], _ watches: [ConnectionGuard]) {
        for watch in watches { watch.stop() }
        for (socket, endpoints) in sockets {
            try? socket.set(.linger(.zero))
            for endpoint in endpoints { try? socket.unbind(endpoint.description) }
            socket.close()
        }
    }
}
