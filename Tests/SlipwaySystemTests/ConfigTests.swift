import Foundation
import SlipwayTestSupport
import Testing

/// Configuration files through the real binary: `config check`, and a daemon
/// taking its settings from a file, the environment and flags, in that order of strength.
@Suite("Configuration files", .serialized, .enabled(if: Cluster.binary != nil))
struct ConfigTests {
    @Test("config check accepts the shipped example and names the line and reason of every problem")
    func check() throws {
        let example = OpsFilesTests.root.appendingPathComponent("ops/examples/slipway.toml").path
        #expect(try shellOutput("'\(Cluster.binary!)' config check '\(example)'").hasSuffix("slipway.toml: valid"))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-config-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("bad.toml")
        try "[region]\nname = \"eu\"\nreplication-window = 9999\n\n[worker]\nslots = \"many\"\n\n[mars]\nx = 1\n".write(to: bad, atomically: true, encoding: .utf8)
        let output = try shellOutput("'\(Cluster.binary!)' config check '\(bad.path)' 2>&1; echo \"exit $?\"")
        #expect(output.contains("[region] line 3: --replication-window must be 1…256"), "\(output)")
        #expect(output.contains("[worker] line 6:") && output.contains("'many'"), "\(output)")
        #expect(output.contains("[mars]: not a daemon"), "\(output)")
        #expect(output.hasSuffix("exit 1"), "\(output)")

        let broken = directory.appendingPathComponent("broken.toml")
        try "[region]\nname = eu\n".write(to: broken, atomically: true, encoding: .utf8)
        let syntax = try shellOutput("'\(Cluster.binary!)' config check '\(broken.path)' 2>&1; echo \"exit $?\"")
        #expect(syntax.contains("line 2: not a value (strings need quotes)") && !syntax.hasSuffix("exit 0"), "\(syntax)")
    }

    @Test("a region controller takes its settings from the file; the environment beats the file, a flag beats both")
    func precedence() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-config-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
        let metrics = freeLoopbackPort()
        let file = directory.appendingPathComponent("slipway.toml")
        try """
            [region]
            name = "fromfile"
            store-dir = "\(directory.appendingPathComponent("store").path)"
            store = "\(port())"
            tracker = "\(port())"
            targets = "\(port())"
            coordinator-intake = "\(port())"
            coordinator-events = "\(port())"
            coordinator-snapshot = "\(port())"
            metrics-listen = "127.0.0.1:\(metrics)"
            insecure = true
            """.write(to: file, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("region.log")
        // SLIPWAY_REGION_EU_SERVICE_HOST is what a Kubernetes service link looks like: not a flag, so not a setting.
        let region = try SpawnedProcess(["/usr/bin/env", "SLIPWAY_REGION_NAME=fromenv", "SLIPWAY_REGION_LOG_LEVEL=debug",
                                         "SLIPWAY_REGION_EU_SERVICE_HOST=10.0.0.1", "SLIPWAY_REGION_PORT=tcp://10.0.0.1:7710",
                                         Cluster.binary!, "region", "--config", file.path, "--log-level", "info"], log: log)
        defer { _ = region.stop() }
        let text = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        try await ReplicationTests.waitFor("the region to start", timeout: .seconds(20)) { text().contains("] serving") }
        #expect(text().contains("region=fromenv") && !text().contains("region=fromfile"), "the environment beats the file: \(text())")
        #expect(!text().contains(" debug "), "the --log-level flag beats SLIPWAY_REGION_LOG_LEVEL")
        // The file's metrics address is in use.
        let scraped = try AgentTests.scrape(metrics)
        #expect(AgentTests.status(of: scraped) == 200, "\(scraped.prefix(200))")
        // insecure = true in the file: /metrics says so.
        #expect(scraped.contains("slipway_insecure{daemon=\"region\"} 1"), "\(scraped)")
        #expect(await region.stopped() == 0)
    }
}
