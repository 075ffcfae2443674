import Foundation
import SlipwayProducer
import SlipwayProto
import SlipwayTestSupport
import Testing

/// A worker's build environment as a build of another language meets it: the
/// toolchain found through --path, variables through --env and a file, a secret
/// that reaches the recipe and nothing else.
@Suite("Worker build environments", .serialized, .enabled(if: Cluster.isConfigured))
struct BuildEnvironmentSystemTests {
    @Test("a Swift package builds with `swift build` from the worker's --path; variables arrive; the secret is masked and never recorded")
    func swiftPackage() async throws {
        let swift = try await shellOutput("command -v swift")
        let toolchain = URL(fileURLWithPath: swift).resolvingSymlinksInPath().deletingLastPathComponent().path
        let (_, statuses) = try await Cluster.with { cluster in
            let file = cluster.directory.appendingPathComponent("worker.env")
            try "# from the file\nCACHE_NOTE=filled in by the file\n".write(to: file, atomically: true, encoding: .utf8)
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1", extra: ["--path", toolchain, "--env", "GREETING=hello from the worker", "--env-file", file.path,
                                                  "--secret-env", "API_TOKEN=s3cr3t-t0ken-42", "--label", "swift=6"])
            let (repo, commit) = try Self.swiftPackage(in: cluster.directory)
            let client = try SlipwayClient(endpoint: cluster.intake, security: cluster.security(.ci, "pipeline"))
            defer { Task { await client.close() } }
            var request = BuildPipelineTests.submission(repo, commit)
            request.labels = ["swift": "6"]
            let ack = try await client.submit(request)
            let done = try await client.wait(for: ack.jobID, timeout: .seconds(300))
            let log = String(decoding: try await client.log(ack.jobID, from: 0).bytes, as: UTF8.self)
            try #require(done.status == .succeeded, "\(done.error)\n\(log)")

            #expect(log.contains("greeting: hello from the worker") && log.contains("note: filled in by the file"), "\(log)")
            #expect(log.contains("token: ***") && log.contains("length 15"), "the recipe had the secret; the log shows ***: \(log)")
            #expect(!log.contains("s3cr3t"), "\(log)")
            #expect(done.labels == ["swift=6"] && done.submittedBy == "ci/pipeline", "what it needed, and who asked: \(done)")
            #expect(done.environment == ["PATH=\(toolchain):/usr/local/bin:/usr/bin:/bin", "CACHE_NOTE=filled in by the file",
                                         "GREETING=hello from the worker", "API_TOKEN=(secret)"], "\(done.environment)")
            // The binary swift built is the artifact, and it runs.
            let binary = cluster.directory.appendingPathComponent("built")
            try await runShell("cat \(cluster.storeDirectory("region").path)/artifacts/\(done.artifactDigest)/pieces/* > '\(binary.path)' && chmod +x '\(binary.path)'")
            #expect(try await shellOutput("'\(binary.path)'") == "hello from a Swift package")

            let shown = try await shellOutput("'\(Cluster.binary!)' job \(ack.jobID) --coordinator \(cluster.intake) "
                                              + (try cluster.clientKeyFlags(.ci, "pipeline").joined(separator: " ")))
            #expect(shown.contains("environment PATH=\(toolchain)") && shown.contains("API_TOKEN=(secret)") && !shown.contains("s3cr3t"), "\(shown)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    /// A git repository holding a one-file Swift executable package and its `.slipway` recipe.
    static func swiftPackage(in parent: URL) throws -> (URL, String) {
        let repo = parent.appendingPathComponent("swift-package")
        let sources = repo.appendingPathComponent("Sources/hello")
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent(".slipway"), withIntermediateDirectories: true)
        try """
            // swift-tools-version:5.9
            import PackageDescription
            let package = Package(name: "hello", targets: [.executableTarget(name: "hello")])
            """.write(to: repo.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        try "print(\"hello from a Swift package\")\n".write(to: sources.appendingPathComponent("main.swift"), atomically: true, encoding: .utf8)
        try """
            #!/bin/sh
            set -e
            echo "greeting: $GREETING"
            echo "note: $CACHE_NOTE"
            echo "token: $API_TOKEN (length ${#API_TOKEN})"
            swift build -c debug --product hello 2>&1 | tail -n 3
            mkdir -p out && cp "$(swift build -c debug --show-bin-path)/hello" out/hello
            """.write(to: repo.appendingPathComponent(".slipway/build"), atomically: true, encoding: .utf8)
        try "out/hello\n".write(to: repo.appendingPathComponent(".slipway/artifact"), atomically: true, encoding: .utf8)
        try runShell("cd '\(repo.path)' && printf '.build/\\nout/\\n' > .gitignore && git init -q && git -c user.email=t@t -c user.name=t add -A "
                     + "&& git -c user.email=t@t -c user.name=t commit -qm package")
        return (repo, try shellOutput("git -C '\(repo.path)' rev-parse HEAD"))
    }
}
