// Benchmarks that print a ratio against a baseline measured in the same run.
//
//   slipway-bench wire [--messages N] [--size BYTES] [--rounds R]
//   slipway-bench pipeline --database-url URL [--jobs N] [--workers W] [--producers P]
//   slipway-bench replication [--size-mib N] [--rounds R] [--window W]
//
// wire: 1 KiB PUSH/PULL messages per second through SlipwayWire vs the
// zmq-baseline C program (libzmq used directly, same socket layout), run
// alternately, R rounds each; prints the medians and their ratio.
import ArgumentParser
import Dispatch
import Foundation
import SlipwayThreads
import SlipwayWire
import Synchronization

@main
struct SlipwayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway-bench",
        abstract: "Slipway benchmarks; each prints a ratio against a baseline from the same run.",
        subcommands: [WireBench.self, PipelineBench.self, ReplicationBench.self, DistributionBench.self])
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
        var swiftRates: [Double] = [], cRates: [Double] = []
        for round in 1...rounds {
            let c = try runBaseline(baseline)
            let swift = try await runSwift()
            cRates.append(c); swiftRates.append(swift)
            print("round \(round): C \(Int(c)) msg/s, Swift \(Int(swift)) msg/s")
        }
        let c = median(cRates), swift = median(swiftRates)
        print("wire push/pull \(size) B x \(messages): C (libzmq direct) \(Int(c)) msg/s, Swift (SlipwayWire) \(Int(swift)) msg/s")
        print(String(format: "ratio Swift/C = %.3f (goal >= 0.9)", swift / c))
    }

    private func runSwift() async throws -> Double {
        let context = try ZMQContext()
        let receiverThread = OwnedThread(name: "bench-pull"), senderThread = OwnedThread(name: "bench-push")
        defer { receiverThread.shutdown(); senderThread.shutdown() }
        let endpoint = Mutex<String?>(nil)
        let bound = DispatchSemaphore(value: 0)
        let (messages, size) = (self.messages, self.size)

        async let rate: Double = receiverThread.run {
            let pull = try ZMQSocket(context: context, type: .pull)
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
