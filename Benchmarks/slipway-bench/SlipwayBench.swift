// Benchmarks that print a ratio against a baseline measured in the same run.
//
//   slipway-bench wire [--messages N] [--size BYTES] [--rounds R]
//   slipway-bench pipeline --database-url URL [--jobs N] [--workers W] [--producers P]
//   slipway-bench replication [--size-mib N] [--rounds R] [--window W]
//
// wire: 1 KiB PUSH/PULL messages per second through SlipwayWire vs the
// zmq-baseline C program (libzmq used directly, same socket layout), run
// alternately, R rounds each; prints the medians and their ratio; then the
// Swift side again with CURVE (a ZAP handler and a trust folder, as the
// daemons run), and the ratio CURVE/plain.
import ArgumentParser
import Dispatch
import Foundation
import Logging
import SlipwayAuth
import SlipwayThreads
import SlipwayWire
import Synchronization

@main
struct SlipwayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway-bench",
        abstract: "Slipway benchmarks; each prints a ratio against a baseline from the same run.",
        subcommands: [WireBench.self, PipelineBench.self, ReplicationBench.self, DistributionBench.self, RolloutBench.self, DeltaBench.self, TrackerBench.self, TrackerFleetCommand.self, PickerBench.self, SimulateBench.self])
}

struct WireBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "PUSH/PULL messages/s through the Swift wrapper vs libzmq from C.")

    @Option(help: "Messages per round.") var messages = 1_000_000
    @Option(help: "Message size in bytes.") var size = 1_024
    @Option(help: "Rounds of each side, alternating.") var rounds = 3

    func validate() throws {
        guard messages >= 2, size >= 1, rounds >= 1 else {
            throw ValidationError("--messages must be at least 2, --size and --rounds at least 1")
        }
    }

    func run() async throws {
        let baseline = try siblingExecutable("zmq-baseline")
        let keys = try CurveBenchKeys()
        defer { keys.remove() }
        var swiftRates: [Double] = [], cRates: [Double] = [], curveRates: [Double] = []
        for round in 1...rounds {
            let c = try runBaseline(baseline)
            let swift = try await runSwift(curve: nil)
            let curve = try await runSwift(curve: keys)
            cRates.append(c); swiftRates.append(swift); curveRates.append(curve)
            print("round \(round): C \(Int(c)) msg/s, Swift \(Int(swift)) msg/s, Swift with CURVE \(Int(curve)) msg/s")
        }
        let c = median(cRates), swift = median(swiftRates), curve = median(curveRates)
        print("wire push/pull \(size) B x \(messages): C (libzmq direct) \(Int(c)) msg/s, Swift (SlipwayWire) \(Int(swift)) msg/s, "
              + "Swift with CURVE \(Int(curve)) msg/s")
        print(String(format: "ratio Swift/C = %.3f (goal >= 0.9)", swift / c))
        print(String(format: "ratio CURVE/plain = %.3f (the cost of encryption per message)", curve / swift))
    }

    /// Messages/s from PUSH to PULL; with `curve`, the PULL is a CURVE server whose ZAP handler admits the PUSH's key.
    private func runSwift(curve: CurveBenchKeys?) async throws -> Double {
        let context = try ZMQContext()
        let zap = try curve.map { try ZAPHandler(context: context, domains: [DaemonSecurity.zapDomain: $0.trust], daemon: "bench",
                                                 logger: Logger(label: "bench")) }
        defer { zap?.stop() }
        let receiverThread = OwnedThread(name: "bench-pull"), senderThread = OwnedThread(name: "bench-push")
        defer { receiverThread.shutdown(); senderThread.shutdown() }
        let endpoint = Mutex<String?>(nil)
        let bound = DispatchSemaphore(value: 0)
        let (messages, size) = (self.messages, self.size)

        async let rate: Double = receiverThread.run {
            let pull = try ZMQSocket(context: context, type: .pull)
            for option in curve.map({ ServerSecurity.curve($0.server.keyPair, zapDomain: DaemonSecurity.zapDomain).options }) ?? [] {
                try pull.set(option)
            }
            try pull.bind("tcp://127.0.0.1:*")
            let address = try pull.lastEndpoint()
            endpoint.withLock { $0 = address }
            bound.signal()
            var start = ContinuousClock.now
            for index in 0..<messages {
                guard let frame = try pull.receiveFrame(), frame.bytes.count == size else {
                    throw ValidationError("short or missing message")
                }
                if index == 0 { start = .now }
            }
            let elapsed = ContinuousClock.now - start
            return Double(messages - 1) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        try await senderThread.run {
            bound.wait()
            let push = try ZMQSocket(context: context, type: .push)
            for option in curve.map({ ClientSecurity.curve($0.client.keyPair, server: $0.server.publicKey).options }) ?? [] {
                try push.set(option)
            }
            try push.connect(endpoint.withLock { $0! })
            let payload = [UInt8](repeating: 0, count: size)
            for _ in 0..<messages { try push.send(frame: payload) }
        }
        return try await rate
    }

    private func runBaseline(_ path: String) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [String(messages), String(size)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
              let value = text.split(separator: "=").last.flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            throw ValidationError("zmq-baseline failed: \(text)")
        }
        return value
    }


}

/// Keys for a benchmark with CURVE on: a server key, a client key, and a trust
/// folder (in a temporary folder) that admits the client, as the daemons run.
final class CurveBenchKeys: @unchecked Sendable {
    // @unchecked: immutable after init.
    let folder: URL
    let server: Certificate
    let client: Certificate
    let trust: TrustDirectory

    init(clientRole: Role = .worker, clientName: String = "bench") throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-bench-keys-\(UUID().uuidString.prefix(8))")
        let trusted = folder.appendingPathComponent("trust")
        try FileManager.default.createDirectory(at: trusted, withIntermediateDirectories: true)
        server = try Certificate.generate(for: try Identity(role: .coordinator, name: "bench"))
        client = try Certificate.generate(for: try Identity(role: clientRole, name: clientName))
        try server.write(to: folder.path)
        try client.write(to: folder.path)
        try client.publicPart.write(to: trusted.path)
        trust = try TrustDirectory(path: trusted.path, logger: Logger(label: "bench"))
    }

    /// Admits another client key too.
    func trust(_ certificate: Certificate) throws { try certificate.publicPart.write(to: folder.appendingPathComponent("trust").path) }

    /// The secret file of `certificate`, written by init.
    func secretFile(_ certificate: Certificate) -> String { folder.appendingPathComponent(certificate.fileStem + ".secret").path }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}

