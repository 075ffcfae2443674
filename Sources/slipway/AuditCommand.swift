import ArgumentParser
import Foundation
import SlipwayJSON
import SlipwayProto

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The audit log: every cancel, deploy and rollback, and every refused request, newest first (operator keys only).")

    @Option(help: "Only entries from this long ago on (e.g. 30m, 24h, 7d).", transform: parseDuration) var since: DurationArgument?
    @Option(help: "How many (at most 1000).") var limit: UInt32 = 100
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be 1…1000") }
    }

    func run() async throws {
        var query = Slipway_V1_AuditQuery()
        query.limit = limit
        if let since {
            let micros = Int64(Date().timeIntervalSince1970 * 1_000_000) - Int64(since.duration.components.seconds) * 1_000_000
            query.sinceUnixMicros = max(0, micros)
        }
        let entries = try await withClient(options) { try await $0.audit(query) }
        JSONReport.shared["entries"] = .array(entries.map(\.json))
        if options.format != .json {
            for entry in entries {
                let at = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(entry.atUnixMicros) / 1_000_000))
                let who = entry.identity.isEmpty ? "(unauthenticated)" : entry.identity
                let detail = entry.detail.isEmpty ? "" : " — \(entry.detail)"
                print("\(at) \(who) \(entry.action) \(entry.object.isEmpty ? "-" : entry.object) \(entry.outcome)\(detail)")
            }
        }
    }
}

extension AuditCommand: JSONOutputCommand {
    static let jsonKeys = ["entries"]
    var output: OutputFormat { options.format }
}
