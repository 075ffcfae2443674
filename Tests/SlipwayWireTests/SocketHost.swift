import SlipwayThreads
import SlipwayWire

/// Test harness: named sockets owned by one OwnedThread; every call runs there,
/// the way a daemon's I/O actor owns its sockets.
actor SocketHost {
    nonisolated let thread: OwnedThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
    private let context: ZMQContext
    private var sockets: [String: ZMQSocket] = [:]

    init(_ context: ZMQContext, name: String) {
        self.context = context
        self.thread = OwnedThread(name: name)
    }

    func open(_ name: String, _ type: ZMQSocketType, _ options: [ZMQOption] = []) throws {
        let socket = try ZMQSocket(context: context, type: type)
        for option in options { try socket.set(option) }
        sockets[name] = socket
    }

    /// Binds and returns the resolved endpoint (wildcard ports filled in).
    func bind(_ name: String, _ endpoint: String) throws -> String {
        try sockets[name]!.bind(endpoint)
        return endpoint.hasPrefix("tcp://") ? try sockets[name]!.lastEndpoint() : endpoint
    }

    func connect(_ name: String, _ endpoint: String) throws {
        try sockets[name]!.connect(endpoint)
    }

    @discardableResult
    func send(_ name: String, _ frames: [[UInt8]], wait: ZMQWait = .timeout(.seconds(10))) throws -> Bool {
        try sockets[name]!.send(frames, wait: wait)
    }

    func receive(_ name: String, wait: ZMQWait = .timeout(.seconds(10)), maxFrames: Int = 16) throws -> [[UInt8]]? {
        try sockets[name]!.receive(wait: wait, maxFrames: maxFrames)
    }

    func with<T: Sendable>(_ name: String, _ body: @Sendable (ZMQSocket) throws -> T) throws -> T {
        try body(sockets[name]!)
    }

    func poll(_ names: [String], wait: ZMQWait) throws -> [Bool] {
        let poller = ZMQPoller()
        for name in names { try poller.add(sockets[name]!, .readable) }
        return try poller.poll(wait: wait).map { $0.contains(.readable) }
    }

    private func closeAll() {
        for socket in sockets.values { socket.close() }
        sockets = [:]
    }

    nonisolated func shutdown() async {
        await closeAll()
        thread.shutdown()
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A unique inproc endpoint, or a wildcard TCP port on loopback.
func endpoint(_ transport: String) -> String {
    transport == "inproc" ? "inproc://test-\(WireMessageID.next())" : "tcp://127.0.0.1:*"
}

enum WireMessageID {
    static func next() -> String { SlipwayWire.WireMessage.newMessageID() }
}

extension ZMQSocket {
    /// For inproc binds `lastEndpoint` is the bound name itself.
    func lastEndpointOrInproc() throws -> String { try lastEndpoint() }
}
