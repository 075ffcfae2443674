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
