public import CoreMetrics

/// Every metric a Slipway daemon records, named in one place, through the
/// swift-metrics facade. Libraries only record; the executable chooses the
/// backend (Prometheus, when `--metrics-listen` is given) and bootstraps it.
/// Without a backend every call is a no-op.
public enum SlipwayMetrics {
    /// Messages dropped before they were handled, by daemon, socket and reason
    /// (`malformed_envelope`, `too_many_frames`, `oversize`, …).
    public static func rejected(daemon: String, socket: String, reason: String, count: Int = 1) {
        Counter(label: "slipway_messages_rejected_total", dimensions: [("daemon", daemon), ("socket", socket), ("reason", reason)])
            .increment(by: count)
    }

    /// Connections a daemon cut because their peer made it hold too much (an
    /// unfinished or unread message past the socket's bound), by daemon and socket.
    public static func connectionCut(daemon: String, socket: String) {
        Counter(label: "slipway_connections_cut_total", dimensions: [("daemon", daemon), ("socket", socket)]).increment()
    }

    /// Messages refused because their sender's authenticated identity may not
    /// send them, by daemon, the sender's role (`none` without one) and message type.
    public static func permissionDenied(daemon: String, role: String, type: String) {
        Counter(label: "slipway_permission_denied_total", dimensions: [("daemon", daemon), ("role", role), ("type", type)]).increment()
    }

    /// Target changes an agent refused because the coordinator's signature was missing or wrong, by service.
    public static func targetRefused(service: String) {
        Counter(label: "slipway_targets_refused_total", dimensions: [("service", service)]).increment()
    }

    /// A region's vouches from the coordinator: how many targets it holds one for,
    /// and when its last round of them ended (alert when that is more than two
    /// `--vouch-interval`s ago: new machines will soon refuse older targets).
    public static func vouches(targets: Int, roundEndedAt seconds: Double) {
        Gauge(label: "slipway_region_vouched_targets").record(targets)
        Gauge(label: "slipway_region_vouches_renewed_timestamp_seconds").record(seconds)
    }

    /// An agent: the latest time the coordinator set or vouched for the target
    /// `service` follows (alert when it is more than two of its region's
    /// `--vouch-interval`s old: the region may be holding back newer targets).
    public static func targetCurrentAsOf(service: String, seconds: Double) {
        Gauge(label: "slipway_target_current_as_of_timestamp_seconds", dimensions: [("service", service)]).record(seconds)
    }

    /// An agent's piece server: the peer keys its region's tracker vouched for, refused, or is being asked about.
    public static func peerKeys(trusted: Int, refused: Int, asking: Int) {
        for (verdict, keys) in [("trusted", trusted), ("refused", refused), ("asking", asking)] {
            Gauge(label: "slipway_agent_peer_keys", dimensions: [("verdict", verdict)]).record(keys)
        }
    }

    /// 1 when the daemon runs `--insecure` (no CURVE, nobody authenticated), 0 otherwise.
    public static func insecure(daemon: String, _ on: Bool) {
        Gauge(label: "slipway_insecure", dimensions: [("daemon", daemon)]).record(on ? 1 : 0)
    }

    /// Jobs by state (coordinator; refreshed from the database every few seconds).
    public static func jobs(state: String) -> Gauge {
        Gauge(label: "slipway_jobs", dimensions: [("state", state)])
    }

    /// Rollouts by state (progressing, paused, halted, rolled_back, succeeded, aborted), from the database.
    public static func rollouts(state: String) -> Gauge {
        Gauge(label: "slipway_rollouts", dimensions: [("state", state)])
    }

    /// The label of the claim-latency histogram, for backends that set its buckets.
    public static let claimLatencyLabel = "slipway_claim_duration_seconds"

    /// How long the claim statement took (coordinator).
    public static var claimLatency: Timer { Timer(label: claimLatencyLabel) }

    /// Workers declared lost after missing their heartbeats (coordinator).
    public static var workersLost: Counter { Counter(label: "slipway_workers_lost_total") }

    /// Piece bytes copied into this region from others (region controller).
    public static var bytesReplicated: Counter { Counter(label: "slipway_replicated_bytes_total") }

    /// Pieces served, by who serves (`store` or `agent`).
    public static func pieceServed(by server: String) {
        Counter(label: "slipway_pieces_served_total", dimensions: [("server", server)]).increment()
    }

    /// The agent's upload slots: downloaders it uploads to now, and those waiting for a slot.
    public static func uploadSlots(inUse: Int, waiting: Int) {
        Gauge(label: "slipway_agent_uploading_to").record(inUse)
        Gauge(label: "slipway_agent_waiting_for_upload").record(waiting)
    }

    /// `PieceChoke`s this agent sent (`direction="sent"`) or was sent by its peers (`"received"`).
    public static func choke(_ direction: String) {
        Counter(label: "slipway_agent_chokes_total", dimensions: [("direction", direction)]).increment()
    }

    /// Piece requests a server answered `busy` (the asker's queue was full, or, at an agent, it uploads to others or the piece stopped arriving), by server.
    public static func busy(server: String) {
        Counter(label: "slipway_busy_replies_total", dimensions: [("server", server)]).increment()
    }

    /// Pieces an agent downloaded and verified, by source (`peer` or `seed`).
    public static func pieceDownloaded(from source: String) {
        Counter(label: "slipway_pieces_downloaded_total", dimensions: [("source", source)]).increment()
    }

    /// Pieces, and their bytes, that a transfer took from earlier builds held in the
    /// same store instead of receiving them, by daemon (`agent` or `store`).
    public static func piecesReused(by daemon: String, pieces: Int, bytes: UInt64) {
        Counter(label: "slipway_pieces_reused_total", dimensions: [("daemon", daemon)]).increment(by: pieces)
        Counter(label: "slipway_reused_bytes_total", dimensions: [("daemon", daemon)]).increment(by: Int(bytes))
    }

    /// Machines in this region per service, build and state (region controller's tracker).
    /// Call `destroy()` on a series that no longer exists.
    public static func agents(service: String, build: String, state: String) -> Gauge {
        Gauge(label: "slipway_agents", dimensions: [("service", service), ("build", build), ("state", state)])
    }
}
