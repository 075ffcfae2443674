public import Logging
public import SlipwayThreads

/// The agent daemon, one per machine: registers with its region's tracker,
/// follows the targets of the services it runs, fetches builds peer-to-peer,
/// serves its pieces to other machines, installs atomically, supervises the
/// services and rolls back a build that fails its health check.
public enum Agent {
    /// The service to run until graceful shutdown (which stops the supervised services).
    public static func service(config: AgentConfig, logger: Logger) -> LoopService {
        LoopService(name: "agent") { stop in
            try AgentLoop(config: config, logger: logger, stop: stop)
        }
    }
}
