public import Logging
public import SlipwayThreads

/// The coordinator daemon: its loop owns the database connection and its sockets
/// on a thread of its own; graceful shutdown stops it after the batch in hand,
/// with every write committed.
public enum Coordinator {
    /// A service that checks its settings and connects to the database, then
    /// waits to become leader (standby until then) and serves until shutdown.
    public static func service(config: CoordinatorConfig, logger: Logger) -> LoopService {
        LoopService(name: "coordinator") { stop in
            try CoordinatorLoop(config: config, logger: logger, stop: stop)
        }
    }
}
