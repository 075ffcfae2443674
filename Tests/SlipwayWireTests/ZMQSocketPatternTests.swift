import SlipwayWire
import Testing

@Suite("ZeroMQ socket patterns over tcp://127.0.0.1 and inproc")
struct ZMQSocketPatternTests {
    @Test("PUSH/PULL round-trips a multipart message", arguments: ["tcp", "inproc"])
    func pushPull(transport: String) async throws {
        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await a.open("push", .push)
        try await b.open("pull", .pull)
        let address = try await b.bind("pull", endpoint(transport))
        try await a.connect("push", address)
        #expect(try await a.send("push", [bytes("hello"), [], [0, 1, 2, 255]]))
        let frames = try #require(try await b.receive("pull"))
        #expect(frames == [bytes("hello"), [], [0, 1, 2, 255]])
        await a.shutdown(); await b.shutdown()
    }

    @Test("ROUTER/DEALER: request and reply to the right peer", arguments: ["tcp", "inproc"])
    func routerDealer(transport: String) async throws {
        let context = try ZMQContext()
        let server = SocketHost(context, name: "server"), client = SocketHost(context, name: "client")
        try await server.open("router", .router, [.routerMandatory(true)])
        try await client.open("dealer", .dealer, [.routingID(bytes("client-1"))])
        let address = try await server.bind("router", endpoint(transport))
        try await client.connect("dealer", address)
        try await client.send("dealer", [[], bytes("ping")])
        let request = try #require(try await server.receive("router"))
        #expect(request == [bytes("client-1"), [], bytes("ping")])
        try await server.send("router", [request[0], [], bytes("pong")])
        #expect(try await client.receive("dealer") == [[], bytes("pong")])
        await server.shutdown(); await client.shutdown()
    }

    @Test("PUB/SUB and XPUB/XSUB deliver published messages", arguments: ["tcp", "inproc"])
    func publishSubscribe(transport: String) async throws {
        let context = try ZMQContext()
        let pub = SocketHost(context, name: "pub"), sub = SocketHost(context, name: "sub")
        try await pub.open("pub", .pub)
        try await sub.open("sub", .sub, [.subscribe([])])
        let address = try await pub.bind("pub", endpoint(transport))
        try await sub.connect("sub", address)
        let first = try await receiveAfterWarmup(pub: pub, sub: sub, topic: "t")
        #expect(first.first == bytes("t"))

        // XPUB sees the subscription as a message; XSUB subscribes by sending one.
        try await pub.open("xpub", .xpub)
        try await sub.open("xsub", .xsub)
        let xaddress = try await pub.bind("xpub", endpoint(transport))
        try await sub.connect("xsub", xaddress)
        try await sub.send("xsub", [[1] + bytes("news")])
        #expect(try await pub.receive("xpub") == [[1] + bytes("news")])
        try await pub.send("xpub", [bytes("news"), bytes("body")])
        #expect(try await sub.receive("xsub") == [bytes("news"), bytes("body")])
        await pub.shutdown(); await sub.shutdown()
    }

    @Test("PAIR over inproc links two threads")
    func pair() async throws {
        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await a.open("pair", .pair)
        try await b.open("pair", .pair)
        let address = try await a.bind("pair", endpoint("inproc"))
        try await b.connect("pair", address)
        try await b.send("pair", [bytes("wake")])
        #expect(try await a.receive("pair") == [bytes("wake")])
        await a.shutdown(); await b.shutdown()
    }

    @Test("SUB receives only the topics it subscribed to")
    func topicFiltering() async throws {
        let context = try ZMQContext()
        let pub = SocketHost(context, name: "pub"), sub = SocketHost(context, name: "sub")
        try await pub.open("pub", .pub)
        try await sub.open("sub", .sub, [.subscribe(bytes("job."))])
        let address = try await pub.bind("pub", "tcp://127.0.0.1:*")
        try await sub.connect("sub", address)
        _ = try await receiveAfterWarmup(pub: pub, sub: sub, topic: "job.warm")

        for topic in ["artifact.1", "job.2", "jo", "deploy.3", "job.end"] {
            try await pub.send("pub", [bytes(topic), bytes("x")])
        }
        var seen: [String] = []
        while let frames = try await sub.receive("sub", wait: .timeout(.seconds(5))) {
            let topic = text(frames[0])
            if topic == "job.warm" { continue }
            seen.append(topic)
            if topic == "job.end" { break }
        }
        #expect(seen == ["job.2", "job.end"])
        await pub.shutdown(); await sub.shutdown()
    }

    @Test("ROUTER addresses one specific DEALER among several")
    func routerAddressesOneDealer() async throws {
        let context = try ZMQContext()
        let server = SocketHost(context, name: "server"), clients = SocketHost(context, name: "clients")
        try await server.open("router", .router, [.routerMandatory(true)])
        let address = try await server.bind("router", "tcp://127.0.0.1:*")
        for name in ["w1", "w2", "w3"] {
            try await clients.open(name, .dealer, [.routingID(bytes(name))])
            try await clients.connect(name, address)
            try await clients.send(name, [[], bytes("ready")])
        }
        var joined = Set<String>()
        while joined.count < 3, let frames = try await server.receive("router") { joined.insert(text(frames[0])) }
        #expect(joined == ["w1", "w2", "w3"])

        try await server.send("router", [bytes("w2"), [], bytes("job-42")])
        #expect(try await clients.receive("w2") == [[], bytes("job-42")])
        #expect(try await clients.receive("w1", wait: .timeout(.milliseconds(100))) == nil)
        #expect(try await clients.receive("w3", wait: .timeout(.milliseconds(100))) == nil)

        // With ROUTER_MANDATORY an unknown peer is an error, not a silent drop.
        let error = await #expect(throws: ZMQError.self) {
            try await server.send("router", [bytes("nobody"), [], bytes("lost")], wait: .never)
        }
        #expect(error?.code == .hostUnreachable)
        await server.shutdown(); await clients.shutdown()
    }

    /// Publishes `topic` until the subscriber receives one: PUB drops messages
    /// until a subscription has propagated (the "slow joiner").
    private func receiveAfterWarmup(pub: SocketHost, sub: SocketHost, topic: String) async throws -> [[UInt8]] {
        for _ in 0..<500 {
            try await pub.send("pub", [bytes(topic), bytes("warm")])
            if let frames = try await sub.receive("sub", wait: .timeout(.milliseconds(10))) { return frames }
        }
        Issue.record("subscriber never received a message")
        return []
    }
}
