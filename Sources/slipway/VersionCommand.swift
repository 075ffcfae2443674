import ArgumentParser
import SlipwayWire

enum SlipwayVersion {
    static let string = "0.1.0"
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print Slipway's version, its wire protocol version and the libzmq it runs against.")

    func run() {
        let zmq = ZMQContext.libraryVersion
        print("slipway \(SlipwayVersion.string)")
        print("protocol v\(WireCodec.protocolVersion)")
        print("libzmq \(zmq.major).\(zmq.minor).\(zmq.patch) (curve: \(ZMQContext.has("curve") ? "yes" : "no"))")
    }
}
