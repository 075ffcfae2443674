import SlipwayProto
import SlipwayWire

/// Turns build output into ordered `LogChunk` messages for the worker loop,
/// with the worker's secrets masked out of the recipe's output.
struct LogWriter {
    let assignment: Slipway_V1_WorkAssignment
    let push: ZMQSocket
    let sender: String
    private var sequence: UInt64 = 0
    private var offset: UInt64 = 0
    private var masks: [Slipway_V1_LogStream: SecretMask] = [:]
    private let secrets: [String]

    init(assignment: Slipway_V1_WorkAssignment, push: ZMQSocket, sender: String, secrets: [String] = []) {
        self.assignment = assignment
        self.push = push
        self.sender = sender
        self.secrets = secrets
    }

    mutating func system(_ text: String) {
        flush()
        send(Array(("[slipway] " + text).utf8), stream: .system)
    }

    /// The recipe's output, secrets masked (one mask per stream: stdout and stderr interleave).
    mutating func write(_ bytes: [UInt8], stream: Slipway_V1_LogStream) {
        guard !secrets.isEmpty else { return send(bytes, stream: stream) }
        var mask = masks[stream] ?? SecretMask(secrets)
        let shown = mask.feed(bytes)
        masks[stream] = mask
        send(shown, stream: stream)
    }

    /// Writes out what the masks held back: the streams have ended.
    mutating func flush() {
        for stream in masks.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            var mask = masks[stream]!
            send(mask.feed([], final: true), stream: stream)
            masks[stream] = mask
        }
    }

    private mutating func send(_ bytes: [UInt8], stream: Slipway_V1_LogStream) {
        guard !bytes.isEmpty else { return }
        var chunk = Slipway_V1_LogChunk()
        chunk.jobID = assignment.jobID
        chunk.attempt = assignment.attempt
        chunk.sequence = sequence
        chunk.stream = stream
        chunk.offset = offset
        chunk.length = UInt32(bytes.count)
        sequence += 1
        offset += UInt64(bytes.count)
        _ = try? push.send(WireCodec().encode(WireMessage(chunk, sender: sender, payload: bytes)))
    }
}
