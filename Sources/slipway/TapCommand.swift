import ArgumentParser
import Foundation
import SlipwayTap
import SlipwayThreads
import SlipwayWire

struct TapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tap",
        abstract: "Print every message crossing a PUB endpoint, decoded (or a recording of them).",
        discussion: """
            Connects a SUB socket to each --connect endpoint (the coordinator's events by default) and \
            prints one line per message. Undecodable frames are shown, never dropped (--raw adds hex).
            """)

    @Option(name: .customLong("connect"), help: "PUB endpoint to watch (repeatable).")
    var endpoints: [String] = ["tcp://127.0.0.1:7702"]
    @Option(help: "Only topics starting with this prefix (SUB filtering).") var topic = ""
    @Option(name: .customLong("type"), help: "Only this message or event type, e.g. event, job_succeeded (repeatable).")
    var types: [String] = []
    @Flag(help: "One JSON object per line.") var json = false
    @Flag(help: "Show undecodable frames as hex.") var raw = false
    @Option(help: "Also save every message to this file.") var record: String?
    @Option(help: "Print a recording instead of connecting.") var replay: String?
    @Option(help: "Stop after this many printed messages.") var count: Int?
    @Option(help: "Stop after this long (e.g. 30s).") var duration: DurationArgument?

    func run() async throws {
        let formatter = TapFormatter(json: json, raw: raw)
        let wanted = Set(types)
        let matches: @Sendable ([[UInt8]]) -> Bool = { frames in wanted.isEmpty || !wanted.isDisjoint(with: formatter.typeNames(frames)) }
        if let replay {
            do {
                var printed = 0
                for entry in try TapRecording.read(URL(fileURLWithPath: replay)) where matches(entry.frames) {
                    print(formatter.line(entry.frames, at: entry.time))
                    printed += 1
                    if let count, printed >= count { break }
                }
            } catch {
                throw CommandFailure("slipway tap: \(error)")
            }
            return
        }
        let writer = try record.map { try TapRecording.Writer(url: URL(fileURLWithPath: $0)) }
        let thread = OwnedThread(name: "tap")
        defer { thread.shutdown() }
        let (endpoints, topic, count) = (self.endpoints, self.topic, self.count)
        let deadline = duration.map { ContinuousClock.now + $0.duration }
        nonisolated(unsafe) let recorder = writer  // used only on the tap thread below
        try await thread.run {
            let context = try ZMQContext()
            let socket = try ZMQSocket(context: context, type: .sub)
            defer { socket.close() }
            try socket.set(.subscribe(Array(topic.utf8)))
            for endpoint in endpoints { try socket.connect(endpoint) }
            var printed = 0
            while deadline.map({ ContinuousClock.now < $0 }) ?? true {
                let received = try socket.receive(wait: .timeout(.milliseconds(200)), maxFrames: 64) {
                    print("! dropped a message with more than 64 frames")
                }
                guard let frames = received else { continue }
                let now = Date()
                try recorder?.append(TapRecording.Entry(time: now, frames: frames))
                guard matches(frames) else { continue }
                FileHandle.standardOutput.write(Data((formatter.line(frames, at: now) + "\n").utf8))
                printed += 1
                if let count, printed >= count { break }
            }
            try recorder?.close()
        }
    }
}
