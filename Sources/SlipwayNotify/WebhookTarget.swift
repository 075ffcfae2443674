import Foundation
public import SlipwayCore

/// One configured webhook: where events go, which ones, and the secret that signs them.
public struct WebhookTarget: Sendable, Hashable {
    /// The events posted when a webhook names none: every terminal state people act on.
    public static let defaultEvents: [String] = [
        "job_succeeded", "job_failed", "artifact_deployable", "rollout_halted", "rollout_rolled_back", "rollout_succeeded",
    ]
    /// Every event type a webhook may ask for (the names stored in the outbox).
    public static let knownEvents: Set<String> = Set(defaultEvents + [
        "job_queued", "job_started", "job_cancelled", "job_requeued", "artifact_published", "artifact_deleted", "target_changed",
        "rollout_started", "wave_started", "wave_passed", "rollout_paused", "rollout_resumed", "rollout_aborted",
    ])

    /// The URL posted to (http or https).
    public let url: String
    /// Outbox type names delivered; others are skipped.
    public let events: [String]
    /// HMAC-SHA256 key for `X-Slipway-Signature`, if any.
    public let secret: [UInt8]?

    /// A webhook for `url` (http:// or https://, a host, no fragment); a clear reason otherwise.
    public init(url: String, events: [String] = WebhookTarget.defaultEvents, secret: [UInt8]? = nil) throws(InvalidValue) {
        guard url.utf8.count <= 2_048, let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty, parsed.fragment == nil else {
            throw InvalidValue(kind: "webhook URL", text: SafeText.printable(url), rule: "an http:// or https:// URL with a host")
        }
        for event in events where !Self.knownEvents.contains(event) {
            throw InvalidValue(kind: "webhook event", text: SafeText.printable(event),
                               rule: "one of \(Self.knownEvents.sorted().joined(separator: ", "))")
        }
        guard !events.isEmpty else { throw InvalidValue(kind: "webhook event list", text: "", rule: "name at least one event") }
        self.url = url
        self.events = events
        self.secret = secret
    }

    /// The URL without user, password or query, for logs and metrics (a token in a query stays out of them).
    public var redacted: String {
        guard var components = URLComponents(string: url) else { return "(webhook)" }
        components.user = nil
        components.password = nil
        let hadQuery = components.query != nil
        components.query = nil
        return (components.string ?? "(webhook)") + (hadQuery ? "?…" : "")
    }
}
