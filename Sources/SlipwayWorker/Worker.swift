public import Logging
public import SlipwayThreads

/// The build worker daemon. Graceful shutdown stops taking work and hands
/// running builds back to the queue (reported retryable).
public enum Worker {
    /// A service that serves until graceful shutdown.
    public static func service(config: WorkerConfig, logger: Logger) -> LoopService {
        LoopService(name: "worker") { stop in
            try WorkerLoop(config: config, logger: logger, stop: stop)
        }
    }
}
