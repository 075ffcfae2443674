import ArgumentParser
import Foundation

/// Namespaces on one bridge: index 0 is the store, 1…N the agents, each with
/// its egress capped by a token bucket.
struct Network {
    let agents: Int
    let rateMbit: Int

    func namespace(_ index: Int) -> String { index == 0 ? "sw-st" : "sw-a\(index)" }
    func address(of index: Int) -> String { "10.77.0.\(index + 2)" }

    func setUp() throws {
        tearDown()
        try sh("ip link add swbr0 type bridge && ip addr add 10.77.0.1/24 dev swbr0 && ip link set swbr0 up")
        for index in 0...agents {
            let ns = namespace(index), veth = "swv\(index)"
            try sh("""
                ip netns add \(ns) && ip link add \(veth) type veth peer name eth0 netns \(ns) && \
                ip link set \(veth) master swbr0 up && ip netns exec \(ns) ip link set lo up && \
                ip netns exec \(ns) ip addr add \(address(of: index))/24 dev eth0 && ip netns exec \(ns) ip link set eth0 up && \
                ip netns exec \(ns) tc qdisc add dev eth0 root tbf rate \(rateMbit)mbit burst 64kb latency 400ms
                """)
        }
    }

    func tearDown() {
        for index in 0...agents { try? sh("ip netns del \(namespace(index)) 2>/dev/null; ip link del swv\(index) 2>/dev/null; true") }
        try? sh("ip link del swbr0 2>/dev/null; true")
    }

    private func sh(_ command: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("network setup failed: \(command)") }
    }
}

extension Network {
    /// Bytes each namespace has sent so far (the bridge side's receive counter of its veth), index 0 the store.
    func sentBytes() -> [UInt64] {
        (0...agents).map { index in
            let counter = "/sys/class/net/swv\(index)/statistics/rx_bytes"
            return UInt64(((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "0").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
    }
}

/// CPU seconds a running process has used in user and in kernel mode, from `/proc/PID/stat`; nil once it is gone.
func cpuSeconds(of pid: Int32) -> (user: Double, system: Double)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let end = stat.lastIndex(of: ")") else { return nil }
    // After "pid (comm) ": state is field 3, utime 14 and stime 15.
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (user / ticks, system / ticks)
}

/// The CPU seconds `processes` have used together, in user and in kernel mode.
func cpuSeconds(of processes: some Sequence<Process>) -> (user: Double, system: Double) {
    processes.compactMap { cpuSeconds(of: $0.processIdentifier) }.reduce((0, 0)) { ($0.user + $1.user, $0.system + $1.system) }
}
