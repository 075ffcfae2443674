import SlipwayCore
import SlipwayWire

/// The leader's four sockets, bound together and closed together.
struct CoordinatorSockets {
    /// ROUTER for CI, the CLI and region controllers.
    let intake: ZMQSocket
    /// ROUTER for workers.
    let dispatch: ZMQSocket
    /// PUB for the event stream.
    let events: ZMQSocket
    /// ROUTER where subscribers catch up.
    let snapshots: ZMQSocket

    /// Binds every endpoint; the error names the one that failed and its flag.
    init(context: ZMQContext, config: CoordinatorConfig) throws {
        intake = try ZMQSocket(context: context, type: .router)
        try intake.set(.routerMandatory(true))
        dispatch = try ZMQSocket(context: context, type: .router)
        try dispatch.set(.routerMandatory(true))
        // A worker that reconnects keeps its routing id (its worker id) and takes over.
        try dispatch.set(.routerHandover(true))
        events = try ZMQSocket(context: context, type: .pub)
        snapshots = try ZMQSocket(context: context, type: .router)
        // A catch-up reply is many messages at once; do not drop them at the HWM.
        try snapshots.set(.sendHighWaterMark(Snapshots.pageLimit * 2))
        do {
            try intake.bind(config.intakeEndpoint)
            try dispatch.bind(config.dispatchEndpoint)
            try events.bind(config.eventsEndpoint)
            try snapshots.bind(config.snapshotEndpoint)
        } catch {
            close()
            throw error
        }
    }

    func close() {
        intake.close()
        dispatch.close()
        events.close()
        snapshots.close()
    }
}
