public import Prometheus

/// Every metric a Slipway daemon exports, in one Prometheus registry per process.
///
/// The registry hands back the same series for the same name and labels, so
/// call sites ask for what they record when they record it; the names and
/// their labels live here, in one place.
public enum SlipwayMetrics {
    /// The process's registry, rendered by ``MetricsEndpoint``.
    public static let registry = PrometheusCollectorRegistry()

    /// Messages dropped as malformed or over-long, by daemon and socket.
    public static func badFrame(daemon: String, socket: String) {
        registry.makeCounter(name: "slipway_bad_frames_dropped_total", labels: [("daemon", daemon), ("socket", socket)]).increment()
    }

    /// Jobs by state (coordinator; refreshed from the database every few seconds).
    public static func jobs(state: String) -> Gauge {
        registry.makeGauge(name: "slipway_jobs", labels: [("state", state)])
    }

    /// How long the claim statement took (coordinator).
    public static let claimLatency = registry.makeDurationHistogram(
        name: "slipway_claim_duration_seconds",
        buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                  .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(1000)])

    /// Workers declared lost after missing their heartbeats (coordinator).
    public static let heartbeatsMissed = registry.makeCounter(name: "slipway_workers_lost_total")

    /// Piece bytes copied into this region from others (region controller).
    public static let bytesReplicated = registry.makeCounter(name: "slipway_replicated_bytes_total")

    /// Pieces served, by who serves (`store` or `agent`).
    public static func pieceServed(by server: String) {
        registry.makeCounter(name: "slipway_pieces_served_total", labels: [("server", server)]).increment()
    }

    /// Pieces an agent downloaded and verified, by source (`peer` or `seed`).
    public static func pieceDownloaded(from source: String) {
        registry.makeCounter(name: "slipway_pieces_downloaded_total", labels: [("source", source)]).increment()
    }

    /// Machines in this region per service, build and state (region controller's tracker).
    public static func agents(service: String, build: String, state: String) -> Gauge {
        registry.makeGauge(name: "slipway_agents", labels: [("service", service), ("build", build), ("state", state)])
    }
}
