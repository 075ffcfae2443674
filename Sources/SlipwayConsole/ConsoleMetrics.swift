import Metrics

/// The console's own metrics (next to the process metrics every daemon has).
enum ConsoleMetrics {
    static func request(status: Int) {
        Counter(label: "slipway_console_requests_total", dimensions: [("status", "\(status / 100)xx")]).increment()
    }

    static func action(_ word: String, outcome: String) {
        Counter(label: "slipway_console_actions_total", dimensions: [("action", word), ("outcome", outcome)]).increment()
    }

    /// Browsers following live events, recorded as they come and go.
    static func watchers(_ count: Int) {
        Gauge(label: "slipway_console_live_watchers").record(count)
    }

    static func signIn(_ outcome: String) {
        Counter(label: "slipway_console_sign_ins_total", dimensions: [("outcome", outcome)]).increment()
    }
}
