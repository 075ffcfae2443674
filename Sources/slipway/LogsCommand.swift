import ArgumentParser
import Foundation
import SlipwayJSON
import SlipwayProto

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's build log.",
        discussion: """
            With -f the exit code is the job's outcome: 0 succeeded, 1 failed, 2 cancelled, 3 --timeout passed. \
            With --json the output is JSON Lines: one {"type":"log","text":…} per log line, then one {"type":"result","job":…,"error":…}.
            """)

    @Argument(help: "The job id.") var id: String
    @Flag(name: .shortAndLong, help: "Keep streaming until the job ends.") var follow = false
    @Option(help: "With -f: how long to follow.", transform: parseDuration) var timeout = DurationArgument(argument: "60m")!
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (id, follow, timeout, format) = (self.id, self.follow, self.timeout.duration, options.format)
        let report = JSONReport.shared
        report["type"] = "result"
        let sink = LogSink(json: format == .json)
        defer { sink.flush() }
        let final = try await withClient(options) { client -> Slipway_V1_JobInfo in
            if follow {
                return try await awaitJob(client, id, follow: true, timeout: timeout, format: format, log: sink.write)
            }
            var offset: UInt64 = 0
            var attempt: UInt32?
            while true {
                let (header, bytes) = try await client.log(id, from: offset)
                if let seen = attempt, header.attempt != seen {
                    // Retried while we read: the new attempt's log starts from its beginning.
                    attempt = header.attempt
                    offset = 0
                    sink.write(Array("[slipway] --- attempt \(header.attempt) ---\n".utf8))
                    continue
                }
                attempt = header.attempt
                if bytes.isEmpty { break }
                sink.write(bytes)
                offset += UInt64(bytes.count)
            }
            return try await client.job(id)
        }
        sink.flush()
        report["job"] = final.json
        if follow, let failure = CLIFailure(job: final) { throw failure }
    }
}

extension LogsCommand: JSONOutputCommand {
    static let jsonKeys = ["type", "job"]
    var output: OutputFormat { options.format }
}

/// Where `logs` writes the log: stdout as it is, or under --json as one
/// `{"type":"log","text":…}` line per log line (invalid UTF-8 replaced).
final class LogSink: @unchecked Sendable {
    private let json: Bool
    private let lock = NSLock()
    private var pending: [UInt8] = []

    init(json: Bool) { self.json = json }

    func write(_ bytes: [UInt8]) {
        guard json else { return FileHandle.standardOutput.write(Data(bytes)) }
        lock.withLock {
            pending += bytes
            while let newline = pending.firstIndex(of: 0x0A) {
                emit(pending[..<newline])
                pending.removeSubrange(...newline)
            }
        }
    }

    /// Writes out a last line that has no newline.
    func flush() {
        guard json else { return }
        lock.withLock {
            if !pending.isEmpty { emit(pending[...]) }
            pending = []
        }
    }

    private func emit(_ line: ArraySlice<UInt8>) {
        print(JSONValue.object(["type": "log", "text": .string(String(decoding: line, as: UTF8.self))]).rendered)
    }
}
