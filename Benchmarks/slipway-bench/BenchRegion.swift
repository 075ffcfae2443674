import ArgumentParser
import Foundation
import Logging
import SlipwayArtifact
import SlipwayCore
import SlipwayProto
import SlipwayRegion
import SlipwayRegionStore
import SlipwayThreads
import SlipwayWire

/// Starts a real `slipway region` that serves the store at `store` on `endpoint`
/// (no coordinator: its replication side waits harmlessly).
func startStoreRegion(store: URL, endpoint: String) throws -> Process {
    let binary = try siblingExecutable("slipway")
    let unused = { "tcp://127.0.0.1:\(freeLoopbackPort())" }
    let process = try launch(binary, ["region", "--name", "a", "--store-dir", store.path, "--store", endpoint,
                                      "--coordinator-intake", unused(), "--coordinator-events", unused(),
                                      "--coordinator-snapshot", unused(), "--tracker", unused(), "--targets", unused(),
                                      "--log-level", "warning", "--insecure"])
    usleep(500_000)
    return process
}

/// What one replication took.
struct ReplicationRun {
    /// From the first request to the commit.
    let seconds: Double
    /// Pieces (and bytes) the destination already held in earlier builds and did not fetch.
    let reused: ReusedPieces
}

/// Copies, verifies and commits `manifest` into the store at `root` (created if
/// need be; what it holds stays) through a region's store socket, written as a
/// region controller writes it: through the destination store's owner thread.
func replicate(_ manifest: Slipway_V1_ArtifactManifest, from endpoint: String, into root: URL, window: Int,
               maxBytesPerSecond: Int = 0) async throws -> ReplicationRun {
    let mailbox = try BlobStoreMailbox()
    let stop = StopSignal()
    let owner = OwnedThread(name: "bench-store-owner"), copier = OwnedThread(name: "bench-replicate")
    defer {
        owner.shutdown()
        copier.shutdown()
    }
    let settings = StoreServer.Settings(region: "b", id: "bench-store", endpoint: try Endpoint(parsing: "tcp://127.0.0.1:\(freeLoopbackPort())"),
                                        path: root.path, security: .insecure)
    async let serving: Void = owner.run {
        try StoreServer(config: settings, mailbox: mailbox, logger: Logger(label: "bench"), stop: stop).serve()
    }
    let copied: Result<ReplicationRun, any Error>
    do {
        copied = .success(try await copier.run {
            let context = try ZMQContext()
            let start = ContinuousClock.now
            let reused = try mailbox.perform { store in
                _ = try store.begin(manifest)
                return store.takeReused(manifest.digest)
            }
            let fetcher = try PieceFetcher(manifest: manifest, sources: [("a", try Endpoint(parsing: endpoint), .plain)], store: mailbox,
                                           context: context, sender: "bench", logger: Logger(label: "bench"), window: window,
                                           batch: min(8, window), maxBytesPerSecond: UInt64(maxBytesPerSecond))
            try fetcher.run(timeout: .seconds(600))
            guard try mailbox.perform({ $0.has(manifest.digest) }) else { throw ValidationError("the copy was not committed") }
            return ReplicationRun(seconds: elapsed(since: start), reused: reused)
        })
    } catch {
        copied = .failure(error)
    }
    stop.stop()
    try await serving
    return try copied.get()
}
