public import Foundation

/// The file format of `slipway tap --record`: a magic line, then for each
/// message its capture time (µs since the epoch), frame count and frames, all
/// lengths little-endian. Replaying prints exactly what the live tap printed.
public enum TapRecording {
    static let magic = Array("SLIPWAY-TAP-1\n".utf8)

    /// One captured message.
    public struct Entry: Sendable, Equatable {
        /// When it was captured.
        public let time: Date
        /// Its frames as received.
        public let frames: [[UInt8]]

        /// Creates an entry.
        public init(time: Date, frames: [[UInt8]]) {
            self.time = time
            self.frames = frames
        }
    }

    /// A malformed or truncated recording.
    public struct Corrupt: Error, CustomStringConvertible {
        /// What is wrong, with the byte offset.
        public let description: String
    }

    /// Appends to a recording file (created with its header if new).
    public final class Writer {
        private let handle: FileHandle

        /// Opens `url` for appending.
        public init(url: URL) throws {
            if !FileManager.default.fileExists(atPath: url.path) {
                guard FileManager.default.createFile(atPath: url.path, contents: Data(TapRecording.magic)) else {
                    throw Corrupt(description: "cannot create \(url.path)")
                }
            }
            handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
        }

        /// Writes one entry.
        public func append(_ entry: Entry) throws {
            var bytes: [UInt8] = []
            append(UInt64(max(0, entry.time.timeIntervalSince1970 * 1_000_000)), to: &bytes)
            append(UInt32(entry.frames.count), to: &bytes)
            for frame in entry.frames {
                append(UInt32(frame.count), to: &bytes)
                bytes += frame
            }
            try handle.write(contentsOf: bytes)
        }

        /// Flushes and closes the file.
        public func close() throws {
            try handle.synchronize()
            try handle.close()
        }

        private func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
    }

    /// Reads every entry of a recording.
    public static func read(_ url: URL) throws -> [Entry] {
        let data = [UInt8](try Data(contentsOf: url))
        guard data.starts(with: magic) else { throw Corrupt(description: "\(url.lastPathComponent) is not a slipway tap recording") }
        var offset = magic.count
        var entries: [Entry] = []
        func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= data.count else { throw Corrupt(description: "truncated at byte \(offset)") }
            var value: T = 0
            for index in 0..<size { value |= T(data[offset + index]) << (8 * index) }
            offset += size
            return value
        }
        while offset < data.count {
            let micros = try integer(UInt64.self)
            let count = try integer(UInt32.self)
            guard count <= 1_024 else { throw Corrupt(description: "implausible frame count \(count) at byte \(offset)") }
            var frames: [[UInt8]] = []
            for _ in 0..<count {
                let length = Int(try integer(UInt32.self))
                guard offset + length <= data.count else { throw Corrupt(description: "truncated frame at byte \(offset)") }
                frames.append(Array(data[offset..<(offset + length)]))
                offset += length
            }
            entries.append(Entry(time: Date(timeIntervalSince1970: Double(micros) / 1_000_000), frames: frames))
        }
        return entries
    }
}
