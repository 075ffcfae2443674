import SlipwayCore
#if canImport(Glibc)
import Glibc
#endif

/// Who holds a TCP port of this machine, read from `/proc`, for a bind that
/// found it in use: an operator (or a chaos log) learns whether it is another
/// daemon, something else, or this very process.
enum PortHolder {
    /// `listening: this process`, `listening: pid 812 (postgres)`, or the states
    /// of the sockets on the port when none listens; nil when `/proc` says nothing.
    static func describe(port: Int) -> String? {
        let sockets = ["/proc/net/tcp", "/proc/net/tcp6"].flatMap { table(at: $0, port: port) }
        guard !sockets.isEmpty else { return nil }
        let listening = Set(sockets.filter { $0.state == listenState }.map(\.inode))
        guard !listening.isEmpty else {
            return "no listener; sockets on the port: " + sockets.map { stateName($0.state) }.joined(separator: ", ")
        }
        let holders = owners(of: listening)
        guard !holders.isEmpty else { return "listening: a process this one cannot see" }
        return "listening: " + holders.joined(separator: ", ")
    }

    private static let listenState = 0x0A

    /// The sockets of `/proc/net/tcp`-format table `path` whose local port is `port`.
    static func table(at path: String, port: Int) -> [(state: Int, inode: String)] {
        guard let (bytes, _) = try? SmallFile.read(path, limit: 4 << 20) else { return [] }  // about 27,000 sockets
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, let colon = fields[1].lastIndex(of: ":"),
                  Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port,
                  let state = Int(fields[3], radix: 16) else { return nil }
            return (state, String(fields[9]))
        }
    }

    /// Processes with one of `inodes` open, this one named as such.
    private static func owners(of inodes: Set<String>) -> [String] {
        let wanted = Set(inodes.map { "socket:[\($0)]" })
        func holds(_ pid: String) -> Bool {
            entries(of: "/proc/\(pid)/fd").contains { link("/proc/\(pid)/fd/\($0)").map(wanted.contains) ?? false }
        }
        if holds("self") { return ["this process"] }
        return entries(of: "/proc").filter { Int($0) != nil }.filter(holds).map { pid in
            let command = (try? SmallFile.read("/proc/\(pid)/comm", limit: 64)).map { String(decoding: $0.bytes, as: UTF8.self) }
            return "pid \(pid) (\(command?.split(separator: "\n").first.map(String.init) ?? "?"))"
        }
    }

    /// The names in folder `path`, without `.` and `..`; none when it cannot be read.
    private static func entries(of path: String) -> [String] {
        guard let folder = opendir(path) else { return [] }
        defer { closedir(folder) }
        var names: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Where symbolic link `path` points.
    private static func link(_ path: String) -> String? {
        var target = [CChar](repeating: 0, count: 256)
        let count = readlink(path, &target, target.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: target[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func stateName(_ state: Int) -> String {
        let names = [1: "established", 2: "syn-sent", 3: "syn-received", 4: "fin-wait-1", 5: "fin-wait-2", 6: "time-wait",
                     7: "closed", 8: "close-wait", 9: "last-ack", 10: "listen", 11: "closing"]
        return names[state] ?? "state \(state)"
    }
}
