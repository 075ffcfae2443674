import SlipwayCore
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

            Capture mode (--proxy-frontend and --proxy-backend): runs an XSUB/XPUB proxy (zmq_proxy) \
            between publishers that connect to the frontend and subscribers that connect to the \
            backend, and prints every message that crosses it, subscriptions included.
            """)

    @Option(name: .customLong("connect"), help: "PUB endpoint to watch (repeatable; default: the coordinator's events).")
    var endpoints: [String] = []
    @Option(help: ArgumentHelp("The coordinator whose events to watch when no --connect is given: HOST[:PORT] (events on PORT+2; env: SLIPWAY_COORDINATOR).",
                               valueName: "address"))
    var coordinator: String?
    @Option(help: "Only topics starting with this prefix (SUB filtering).") var topic = ""
    @Option(name: .customLong("type"), help: "Only this message or event type, e.g. event, job_succeeded (repeatable).")
    var types: [String] = []
    @Flag(help: "One JSON object per line.") var json = false
    @Flag(help: "Show undecodable frames as hex.") var raw = false
    @Option(help: "Also save every message to this file.") var record: String?
    @Option(help: "Print a recording instead of connecting.") var replay: String?
    @Option(help: "Stop after this many printed messages.") var count: Int?
    @Option(help: "Stop after this long (e.g. 30s).", transform: parseDuration) var duration: DurationArgument?
    @OptionGroup var keys: UserKeyOptions
    @Option(help: "Capture mode: XSUB endpoint to bind, where publishers connect.") var proxyFrontend: String?
    @Option(help: "Capture mode: XPUB endpoint to bind, where subscribers connect.") var proxyBackend: String?

    func validate() throws {
        guard (proxyFrontend == nil) == (proxyBackend == nil) else {
            throw ValidationError("--proxy-frontend and --proxy-backend go together")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if endpoints.isEmpty { _ = try coordinatorAddress(coordinator) }
    }

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
        if let proxyFrontend, let proxyBackend {
            return try await capture(frontend: proxyFrontend, backend: proxyBackend, formatter: formatter, matches: matches, writer: writer)
        }
        let thread = OwnedThread(name: "tap")
        defer { thread.shutdown() }
        let endpoints = try self.endpoints.isEmpty ? ["\(coordinatorAddress(coordinator).events)"] : self.endpoints
        let (topic, count) = (self.topic, self.count)
        let security = try keys.security()
        let deadline = duration.map { ContinuousClock.now + $0.duration }
        nonisolated(unsafe) let recorder = writer  // used only on the tap thread below
        try await thread.run {
            let context = try ZMQContext()
            let socket = try ZMQSocket(context: context, type: .sub)
            defer { socket.close() }
            try socket.set(.subscribe(Array(topic.utf8)))
            for option in security.options { try socket.set(option) }
            for endpoint in endpoints { try socket.connect(endpoint) }
            try Self.printMessages(from: socket, until: deadline, count: count, recorder: recorder) { frames, now in
                matches(frames) ? formatter.line(frames, at: now) : nil
            }
        }
    }
    /// Runs the proxy on one thread and prints its capture stream on another.
    private func capture(frontend: String, backend: String, formatter: TapFormatter,
                         matches: @escaping @Sendable ([[UInt8]]) -> Bool, writer: TapRecording.Writer?) async throws {
        let context = try ZMQContext()
        let proxyThread = OwnedThread(name: "tap-proxy"), printThread = OwnedThread(name: "tap")
        defer { proxyThread.shutdown(); printThread.shutdown() }
        let (count, deadline) = (self.count, duration.map { ContinuousClock.now + $0.duration })
        let (captureEndpoint, controlEndpoint) = ("inproc://tap-capture", "inproc://tap-control")
        nonisolated(unsafe) let recorder = writer  // used only on the print thread below
        async let proxy: Void = proxyThread.run {
            let front = try ZMQSocket(context: context, type: .xsub)
            let back = try ZMQSocket(context: context, type: .xpub)
            let copy = try ZMQSocket(context: context, type: .push)
            let control = try ZMQSocket(context: context, type: .pair)
            defer { for socket in [front, back, copy, control] { socket.close() } }
            try front.bind(frontend)
            try back.bind(backend)
            try copy.bind(captureEndpoint)
            try control.bind(controlEndpoint)
            try ZMQProxy.run(frontend: front, backend: back, capture: copy, control: control)
        }
        try await printThread.run {
            // Connecting to inproc before the bind is fine in libzmq 4.
            let captured = try ZMQSocket(context: context, type: .pull)
            let control = try ZMQSocket(context: context, type: .pair)
            defer { captured.close(); control.close() }
            try captured.connect(captureEndpoint)
            try control.connect(controlEndpoint)
            defer { _ = try? control.send([Array("TERMINATE".utf8)], wait: .timeout(.seconds(1))) }
            try Self.printMessages(from: captured, until: deadline, count: count, recorder: recorder) { frames, now in
                guard frames.count == 1, let first = frames[0].first, first <= 1 else {
                    return matches(frames) ? formatter.line(frames, at: now) : nil
                }
                // XPUB -> XSUB traffic: a subscriber subscribing (1) or unsubscribing (0).
                let topic = SafeText.printable(String(decoding: frames[0].dropFirst(), as: UTF8.self), limit: 200)
                return "\(ISO8601DateFormatter().string(from: now)) \(first == 1 ? "subscribe" : "unsubscribe") \"\(topic)\""
            }
        }
        try await proxy
    }

    /// Prints what arrives on `socket` until the deadline or `count` lines, recording
    /// every message; `line` gives the text to print, or nil to skip one.
    private static func printMessages(from socket: ZMQSocket, until deadline: ContinuousClock.Instant?, count: Int?,
                                      recorder: TapRecording.Writer?, line: ([[UInt8]], Date) -> String?) throws {
        var printed = 0
        while deadline.map({ ContinuousClock.now < $0 }) ?? true {
            let received = try socket.receive(wait: .timeout(.milliseconds(200)), maxFrames: 64) {
                print("! dropped a message with more than 64 frames")
            }
            guard let frames = received else { continue }
            let now = Date()
            try recorder?.append(TapRecording.Entry(time: now, frames: frames))
            guard let text = line(frames, now) else { continue }
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
            printed += 1
            if let count, printed >= count { break }
        }
        try recorder?.close()
    }
}
