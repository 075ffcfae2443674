import Foundation
import SlipwayAuth
import SlipwayProto

/// The keys of a benchmark's region (`bench`), its agents (`a1`…) and a
/// coordinator whose only job is to sign the target, with one trust folder
/// holding the region's and the agents' certificates, and an empty one for
/// agents that admit each other on the tracker's word, as production runs them.
struct BenchKeys {
    let folder: URL
    let trust: URL
    let emptyTrust: URL
    private let coordinator: Certificate

    /// Writes every key pair into `folder` and the public halves the daemons admit into `folder/trust`.
    init(in folder: URL, agents: Int) throws {
        self.folder = folder
        trust = folder.appendingPathComponent("trust")
        emptyTrust = folder.appendingPathComponent("agent-trust")
        for directory in [trust, emptyTrust] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        coordinator = try Certificate.generate(for: Identity(role: .coordinator, name: "main"))
        _ = try coordinator.write(to: folder.path)
        let identities = try [Identity(role: .region, name: "bench")] + (1...agents).map { try Identity(role: .agent, name: "a\($0)") }
        for identity in identities {
            let made = try Certificate.generate(for: identity)
            _ = try made.write(to: folder.path)
            _ = try made.publicPart.write(to: trust.path)
        }
    }

    private func path(_ stem: String) -> String { folder.appendingPathComponent(stem).path }

    /// The region controller's flags.
    var regionFlags: [String] {
        ["--key", path("region-bench.secret"), "--trust-dir", trust.path, "--coordinator-key", path("coordinator-main.cert")]
    }

    /// Agent `a<index>`'s flags; `vouched`: its own trust folder is empty.
    func agentFlags(_ index: Int, vouched: Bool = false) -> [String] {
        ["--key", path("agent-a\(index).secret"), "--trust-dir", (vouched ? emptyTrust : trust).path, "--region-key", path("region-bench.cert"),
         "--coordinator-key", path("coordinator-main.cert")]
    }

    /// The region's `targets.json`: service `bench` on `digest` everywhere, set now and
    /// signed by the coordinator's key (agents without keys do not check it).
    func writeSignedTarget(digest: String, into store: URL) throws {
        var change = Slipway_V1_TargetChange()
        change.service = "bench"
        change.artifactDigest = digest
        change.version = 1
        change.setBy = "bench"
        change.setAtUnixMicros = Int64(Date().timeIntervalSince1970 * 1e6)
        let signature = try TargetSignature.sign(change, with: coordinator.signing!.signer!)
        let target = #"{"digest":"\#(digest)","version":1,"setBy":"bench","setAtUnixMicros":\#(change.setAtUnixMicros),"signature":"\#(Data(signature).base64EncodedString())"}"#
        let targets = #"{"appliedThrough":0,"targets":{"global":{"bench":\#(target)},"regional":{}}}"#
        try targets.write(to: store.appendingPathComponent("targets.json"), atomically: true, encoding: .utf8)
    }
}
