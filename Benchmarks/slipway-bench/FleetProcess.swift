import ArgumentParser
import Foundation

/// One process of simulated agents, driven over its standard input by the
/// tracker bench: a process may hold only so many sockets (this machine's hard
/// limit is 20,000 open files, and each agent needs five here), so thousands
/// of agents are spread over several.
///
/// Commands, one per line: `watch DIGEST SINCE_NS` (start timing who sees
/// DIGEST, from that CLOCK_MONOTONIC instant), `count` (answers `seen N`),
/// `values` (answers `values S1 S2 …`, seconds, for the agents that saw it),
/// `stats` (answers `stats HEARTBEATS REPLIES REFUSALS`). End of input stops it.
struct TrackerFleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker-fleet", abstract: "Simulated agents for the tracker bench (started by it).", shouldDisplay: false)

    @Option var first: Int
    @Option var count: Int
    @Option var tracker: String
    @Option var targets: [String]
    @Option var heartbeat: Double
    @Option var threads = 1

    func run() throws {
        let fleet = try SimulatedFleet(count: count, firstMachine: first, region: "bench", service: "bench", tracker: tracker,
                                       targets: targets, heartbeat: .milliseconds(Int64(heartbeat * 1_000)), threads: threads)
        defer { fleet.close() }
        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "watch" where words.count == 3:
                fleet.watch(words[1], since: UInt64(words[2]) ?? monotonicNanoseconds())
            case "count":
                say("seen \(fleet.shared.withLock { $0.seen.count { $0 != nil } })")
            case "values":
                say("values " + fleet.shared.withLock { $0.seen.compactMap { $0 } }.map { String(format: "%.6f", $0) }.joined(separator: " "))
            case "stats":
                say(fleet.shared.withLock { "stats \($0.heartbeats) \($0.replies) \($0.refusals)" })
            default:
                say("error unknown command")
            }
        }
    }
}

/// The bench's handle on one ``TrackerFleetCommand`` process.
final class FleetProcess {
    let count: Int
    private let process: Process
    private let input: FileHandle
    private let output: FileHandle
    private var buffered = Data()

    init(first: Int, count: Int, tracker: String, targets: [String], heartbeat: Double) throws {
        self.count = count
        let toChild = Pipe(), fromChild = Pipe()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["tracker-fleet", "--first", "\(first)", "--count", "\(count)", "--tracker", tracker,
                             "--heartbeat", "\(heartbeat)"] + targets.flatMap { ["--targets", $0] }
        process.standardInput = toChild
        process.standardOutput = fromChild
        try process.run()
        input = toChild.fileHandleForWriting
        output = fromChild.fileHandleForReading
    }

    func watch(_ digest: String, since: UInt64) throws {
        try input.write(contentsOf: Data("watch \(digest) \(since)\n".utf8))
    }

    /// How many of its agents saw the watched build.
    func seen() throws -> Int {
        Int(try ask("count").dropFirst("seen ".count)) ?? 0
    }

    /// Seconds to each agent that saw the watched build.
    func values() throws -> [Double] {
        try ask("values").split(separator: " ").dropFirst().compactMap { Double($0) }
    }

    /// Heartbeats sent, replies and refusals received.
    func stats() throws -> (heartbeats: Int, replies: Int, refusals: Int) {
        let words = try ask("stats").split(separator: " ").compactMap { Int($0) }
        guard words.count == 3 else { throw ValidationError("a fleet process answered stats badly") }
        return (words[0], words[1], words[2])
    }

    /// Closes its input (it stops) and waits for it.
    func stop() {
        try? input.close()
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private func ask(_ command: String) throws -> String {
        try input.write(contentsOf: Data("\(command)\n".utf8))
        while true {
            if let end = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[buffered.startIndex..<end], as: UTF8.self)
                buffered = Data(buffered[(end + 1)...])
                return line
            }
            let more = output.availableData
            guard !more.isEmpty else { throw ValidationError("a fleet process ended") }
            buffered.append(more)
        }
    }
}
