import ArgumentParser
import Foundation

/// How a namespace's capped uplink is shared among its connections.
enum EgressQueue: String, ExpressibleByArgument, CaseIterable {
    /// One drop-tail queue (`tbf`, 400 ms deep). Measured here (`ss -ti` in the namespaces,
    /// BBR, this VM's setting): one connection of sixteen got 9 KB/s for 19 s while the
    /// others got 40–270 KB/s; its piece request timed out.
    case dropTail = "drop-tail"
    /// A queue per destination, served in turn (`htb`, one class per address, a `bfifo` each
    /// of up to 400 ms at the whole rate, as `drop-tail`'s): the shares a host's flow-fair
    /// qdisc (`fq`, `fq_codel`, the usual defaults; this VM's kernel has neither) gives its
    /// connections, though deeper than those keep them.
    case perPeer = "per-peer"
}

/// Namespaces on one bridge: index 0 is the store, 1…N the agents, each with
/// its egress capped (``EgressQueue``).
struct Network {
    let agents: Int
    let rateMbit: Int
    var egress: EgressQueue = .perPeer

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
                ip netns exec \(ns) ip addr add \(address(of: index))/24 dev eth0 && ip netns exec \(ns) ip link set eth0 up
                """)
            try sh("ip netns exec \(ns) tc -batch -", input: shaping(from: index))
        }
    }

    /// `tc` commands capping namespace `index`'s egress at the rate.
    private func shaping(from index: Int) -> String {
        switch egress {
        case .dropTail:
            return "qdisc add dev eth0 root tbf rate \(rateMbit)mbit burst 64kb latency 400ms\n"
        case .perPeer:
            // Every other namespace gets an equal guaranteed share and may borrow the rest;
            // anything else (the bridge's own address) falls into the last class.
            let peers = (0...agents + 1).filter { $0 != index }
            let share = max(8, rateMbit * 1_000 / peers.count)
            let depth = max(64 << 10, rateMbit * 1_000_000 / 8 * 2 / 5)
            var commands = [
                "qdisc add dev eth0 root handle 1: htb default \(String(0x10 + agents + 1, radix: 16))",
                "class add dev eth0 parent 1: classid 1:1 htb rate \(rateMbit)mbit burst 64kb cburst 64kb quantum 60000",
            ]
            for peer in peers {
                let id = String(0x10 + peer, radix: 16)
                commands.append("class add dev eth0 parent 1:1 classid 1:\(id) htb rate \(share)kbit ceil \(rateMbit)mbit quantum 1514")
                commands.append("qdisc add dev eth0 parent 1:\(id) bfifo limit \(depth)")
                if peer <= agents {
                    commands.append("filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst \(address(of: peer))/32 flowid 1:\(id)")
                }
            }
            return commands.joined(separator: "\n") + "\n"
        }
    }

    func tearDown() {
        for index in 0...agents { try? sh("ip netns del \(namespace(index)) 2>/dev/null; ip link del swv\(index) 2>/dev/null; true") }
        try? sh("ip link del swbr0 2>/dev/null; true")
    }

    private func sh(_ command: String, input: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let stdin = Pipe()
        if input != nil { process.standardInput = stdin }
        try process.run()
        if let input {
            try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
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
