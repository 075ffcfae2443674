import Foundation
import SlipwayTestSupport
import Testing

/// The console in Debian's headless Chromium, driven by Selenium
/// (Tests/browser/console_browser.py), against a fleet of two regions with two
/// machines each: sign in, a build turning green live, its log, "Deploy build
/// globally", convergence per region, rollback, a halted rollout's reason, and
/// a viewer's page. Screenshots of each page land in `.local/console-screenshots`.
@Suite("Console in a browser", .serialized, .enabled(if: Cluster.isConfigured))
struct ConsoleBrowserTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func operatorDeploysRollsBackAndSeesAHaltInChromium() async throws {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: ops/test installs chromium and chromium-driver")
        }
        try #require(try await runShell("python3 -c 'import selenium' 2>/dev/null") == 0, "Selenium is missing: ops/test installs it from PyPI")
        let screenshots = ProcessInfo.processInfo.environment["SLIPWAY_SCREENSHOTS"]
            ?? Self.repositoryRoot.appendingPathComponent(".local/console-screenshots").path
        try? FileManager.default.removeItem(atPath: screenshots)
        try FileManager.default.createDirectory(atPath: screenshots, withIntermediateDirectories: true)

        let (_, statuses) = try await Cluster.with { cluster in
            let regions = ["a", "b"]
            let stores = ReplicationTests.stores(regions)
            try cluster.startCoordinator(extra: ["--regions", "a,b", "--report-stale-after", "16s",
                                                 "--rollout-plan", "careful=a:1 bake=1s;*:100%;pause-on-failure"])
            for region in regions {
                try cluster.startRegion("region-\(region)", region: region, store: stores[region]!, peers: stores.filter { $0.key != region })
            }
            try cluster.startWorker("w1", region: "a", store: stores["a"]!)
            for region in regions {
                for index in 1...2 { try cluster.startAgent("\(region)\(index)", region: region, regionProcess: "region-\(region)") }
            }
            let console = try await ConsoleHarness.start(cluster)

            var submit: [String: [String]] = [:]
            for (version, body) in [("v1", "echo hello v1; exec sleep 600"), ("v2", "echo hello v2; exec sleep 600"), ("v3", "echo hello v3; exit 3")] {
                let (repo, commit) = try TestRepository.make(in: cluster.directory, content: version)
                submit[version] = [Cluster.binary!, "submit", "--coordinator", cluster.intake, "--repo", repo.path, "--commit", commit,
                                   "--artifact", "hello", "--artifact-path", "out/hello", "--json",
                                   "--recipe", "echo building \(version); mkdir -p out && printf '#!/bin/sh\\n\(body)\\n' > out/hello"]
                    + (try cluster.clientKeyFlags(.ci, "pipeline"))
            }
            let config: [String: Any] = [
                "base": console.base, "screenshots": screenshots, "service": "hello", "regions": regions, "machines_per_region": 2,
                "operator": ["alice", ConsoleHarness.operatorPassword], "viewer": ["victor", ConsoleHarness.viewerPassword],
                "operator_token": console.operatorToken, "submit": submit, "halting_plan": "careful",
            ]
            let configFile = cluster.directory.appendingPathComponent("browser.json")
            try JSONSerialization.data(withJSONObject: config).write(to: configFile)
            let script = Self.repositoryRoot.appendingPathComponent("Tests/browser/console_browser.py").path
            let browser = try SpawnedProcess(["/usr/bin/env", "python3", script, configFile.path], log: cluster.log("browser"))
            let status = await browser.exited(killAfter: .seconds(420))
            #expect(status == 0, "the browser test failed (screenshots and failure.html in \(screenshots)):\n\(cluster.logText("browser"))\n--- console log:\n\(cluster.logText("console").suffix(3000))")
            let taken = (try? FileManager.default.contentsOfDirectory(atPath: screenshots).filter { $0.hasSuffix(".png") }) ?? []
            #expect(taken.count >= 10, "screenshots: \(taken.sorted())")
        }
        #expect(statuses["console"] == 0)
    }
}
