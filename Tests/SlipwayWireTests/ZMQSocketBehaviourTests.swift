#if canImport(Glibc)
import Glibc
#endif
import SlipwayThreads
import SlipwayWire
import Testing

@Suite("ZeroMQ wrapper behaviour")
struct ZMQSocketBehaviourTests {
    @Test("a 100 MiB frame round-trips intact over TCP")
    func hundredMebibyteFrame() async throws {
        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await a.open("push", .push)
        try await b.open("pull", .pull, [.maxMessageSize(-1)])
        let address = try await b.bind("pull", "tcp://127.0.0.1:*")
        try await a.connect("push", address)
        let size = 100 << 20
        var big = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4_093) { big[i] = UInt8(truncatingIfNeeded: i / 4_093) }
        big[size - 1] = 0xAB
        let payload = big
        async let sent = a.send("push", [bytes("header"), payload], wait: .timeout(.seconds(60)))
        let frames = try #require(try await b.receive("pull", wait: .timeout(.seconds(60))))
        #expect(try await sent)
        #expect(frames.count == 2)
        #expect(frames[1].count == size)
        #expect(frames[1] == payload)
        await a.shutdown(); await b.shutdown()
    }

    @Test("non-blocking and timed calls report EAGAIN as nil/false")
    func wouldBlock() async throws {
        let context = try ZMQContext()
        let host = SocketHost(context, name: "host")
        try await host.open("pull", .pull)
        _ = try await host.bind("pull", "tcp://127.0.0.1:*")
        #expect(try await host.receive("pull", wait: .never) == nil)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try await host.receive("pull", wait: .timeout(.milliseconds(50))) == nil)
        #expect(clock.now - start >= .milliseconds(45))

        // A PUSH socket with no peer cannot queue anything.
        try await host.open("push", .push, [.immediate(true)])
        try await host.connect("push", "tcp://127.0.0.1:1")
        #expect(try await host.send("push", [bytes("x")], wait: .never) == false)
        #expect(try await host.send("push", [bytes("x")], wait: .timeout(.milliseconds(20))) == false)
        await host.shutdown()
    }

    @Test("errors carry errno, operation and a safe description")
    func errors() async throws {
        let context = try ZMQContext()
        let host = SocketHost(context, name: "host")
        try await host.open("a", .pull)
        try await host.open("b", .pull)
        let address = try await host.bind("a", "tcp://127.0.0.1:*")
        let inUse = await #expect(throws: ZMQError.self) { _ = try await host.bind("b", address) }
        #expect(inUse?.code == .addressInUse)
        #expect(inUse?.operation == "zmq_bind")
        #expect(inUse?.description == "zmq_bind failed: Address already in use")
        let bad = await #expect(throws: ZMQError.self) { try await host.connect("b", "bogus://nowhere") }
        #expect(bad?.code == .invalidArgument || bad?.code == .other)
        await host.shutdown()
    }

    @Test("a message with too many frames is dropped whole; the next one arrives")
    func frameLimit() async throws {
        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await a.open("push", .push)
        try await b.open("pull", .pull)
        try await a.connect("push", try await b.bind("pull", "inproc://frames"))
        try await a.send("push", Array(repeating: bytes("f"), count: 20))
        try await a.send("push", [bytes("next")])
        let error = await #expect(throws: ZMQError.self) { _ = try await b.receive("pull", maxFrames: 16) }
        #expect(error?.context.contains("more than 16 frames") == true)
        #expect(try await b.receive("pull") == [bytes("next")])
        await a.shutdown(); await b.shutdown()
    }

    @Test("MAXMSGSIZE drops a peer that sends an oversize frame")
    func maxMessageSize() async throws {
        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await b.open("pull", .pull, [.maxMessageSize(1_024)])
        try await a.open("push", .push)
        try await a.connect("push", try await b.bind("pull", "tcp://127.0.0.1:*"))
        try await a.send("push", [[UInt8](repeating: 7, count: 4_096)])
        #expect(try await b.receive("pull", wait: .timeout(.milliseconds(300))) == nil)
        await a.shutdown(); await b.shutdown()
    }

    @Test("poll reports which of several sockets is readable")
    func pollSeveral() async throws {
        let context = try ZMQContext()
        let host = SocketHost(context, name: "host"), peer = SocketHost(context, name: "peer")
        try await host.open("one", .pull)
        try await host.open("two", .pull)
        let one = try await host.bind("one", "tcp://127.0.0.1:*")
        let two = try await host.bind("two", "tcp://127.0.0.1:*")
        try await peer.open("to-one", .push); try await peer.connect("to-one", one)
        try await peer.open("to-two", .push); try await peer.connect("to-two", two)
        #expect(try await host.poll(["one", "two"], wait: .timeout(.milliseconds(20))) == [false, false])
        try await peer.send("to-two", [bytes("x")])
        #expect(try await host.poll(["one", "two"], wait: .timeout(.seconds(5))) == [false, true])
        await host.shutdown(); await peer.shutdown()
    }

    @Test("CURVE: an encrypted pair talks; a client with the wrong server key gets nothing")
    func curve() async throws {
        #expect(ZMQContext.has("curve"))
        let server = try CurveKey.generatePair(), client = try CurveKey.generatePair(), wrong = try CurveKey.generatePair()
        #expect(CurveKey(z85: server.publicKey.z85) == server.publicKey)
        #expect(CurveKey(z85: "not a key") == nil)

        let context = try ZMQContext()
        let a = SocketHost(context, name: "a"), b = SocketHost(context, name: "b")
        try await b.open("pull", .pull, [.curveServer(true), .curveSecretKey(server.secretKey)])
        let address = try await b.bind("pull", "tcp://127.0.0.1:*")
        try await a.open("good", .push, [.curveServerKey(server.publicKey), .curvePublicKey(client.publicKey), .curveSecretKey(client.secretKey)])
        try await a.open("bad", .push, [.curveServerKey(wrong.publicKey), .curvePublicKey(client.publicKey), .curveSecretKey(client.secretKey)])
        try await a.connect("bad", address)
        try await a.send("bad", [bytes("intruder")], wait: .never)
        try await a.connect("good", address)
        try await a.send("good", [bytes("secret")])
        #expect(try await b.receive("pull") == [bytes("secret")])
        #expect(try await b.receive("pull", wait: .timeout(.milliseconds(200))) == nil)
        await a.shutdown(); await b.shutdown()
    }

    @Test("options read back as set")
    func options() async throws {
        let context = try ZMQContext()
        let host = SocketHost(context, name: "host")
        try await host.open("d", .dealer, [.sendHighWaterMark(7), .receiveHighWaterMark(9), .routingID(bytes("me")),
                                         .heartbeatInterval(.seconds(1)), .heartbeatTimeout(.seconds(3)), .heartbeatTTL(.seconds(6)),
                                         .linger(.zero), .reconnectInterval(.milliseconds(100)), .reconnectIntervalMax(.seconds(2))])
        let values = try await host.with("d") { socket in
            [try socket.intOption(23 /* ZMQ_SNDHWM */), try socket.intOption(24 /* ZMQ_RCVHWM */), try socket.intOption(17 /* ZMQ_LINGER */)]
        }
        #expect(values == [7, 9, 0])
        #expect(try await host.with("d") { try $0.routingID() } == bytes("me"))
        await host.shutdown()
    }

    @Test("non-blocking multipart send and receive work off an OwnedThread")
    func nonBlockingOffOwnedThread() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        let push = try ZMQSocket(context: context, type: .push)
        try pull.bind("inproc://never-\(WireMessageID.next())")
        try push.connect(try pull.lastEndpointOrInproc())
        #expect(try push.send([bytes("a"), bytes("b"), bytes("c")], wait: .never))
        #expect(try pull.receive(wait: .never) == [bytes("a"), bytes("b"), bytes("c")])
    }

    @Test("the poller reports a message that arrives while it waits, keeps reporting one not read, and times out when nothing comes")
    func pollerWakesAndTimesOut() async throws {
        let context = try ZMQContext()
        let thread = OwnedThread(name: "poller-test")
        defer { thread.shutdown() }
        try await thread.run {
            let pull = try ZMQSocket(context: context, type: .pull), quiet = try ZMQSocket(context: context, type: .pull)
            let push = try ZMQSocket(context: context, type: .push)
            try pull.bind("tcp://127.0.0.1:*")
            try quiet.bind("tcp://127.0.0.1:*")
            try push.connect(try pull.lastEndpointOrInproc())
            var pipe: [Int32] = [0, 0]
            #expect(Glibc.pipe(&pipe) == 0)
            defer { close(pipe[0]); close(pipe[1]) }
            let poller = ZMQPoller()
            try poller.add(pull)
            try poller.add(quiet)
            poller.add(fileDescriptor: pipe[0])

            let started = ContinuousClock.now
            #expect(try poller.poll(wait: .timeout(.milliseconds(100))).allSatisfy(\.isEmpty))
            #expect(ContinuousClock.now - started >= .milliseconds(95))

            // Arrives while the poller waits, on a socket whose events it already knows are empty.
            for round in 0..<200 {
                #expect(try push.send([bytes("\(round)")], wait: .never))
                let ready = try poller.poll(wait: .timeout(.seconds(5)))
                #expect(ready == [.readable, [], []], "round \(round)")
                if round == 0 {
                    // Not read: still ready, at once.
                    #expect(try poller.poll(wait: .never) == [.readable, [], []])
                }
                #expect(try pull.receive(wait: .never) == [bytes("\(round)")])
                #expect(try pull.receive(wait: .never) == nil)
            }
            #expect(try poller.poll(wait: .timeout(.milliseconds(20))).allSatisfy(\.isEmpty))
            #expect(Glibc.write(pipe[1], "x", 1) == 1)
            #expect(try poller.poll(wait: .timeout(.seconds(5))) == [[], [], .readable])
        }
    }

    @Test("polling a socket closed after it was added fails cleanly")
    func pollClosedSocket() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .pull)
        let poller = ZMQPoller()
        try poller.add(socket)
        socket.close()
        let error = #expect(throws: ZMQError.self) { _ = try poller.poll(wait: .never) }
        #expect(error?.code == .socketClosed)
    }

    @Test("a socket used from a thread that does not own it traps")
    func ownershipIsEnforced() async {
        await #expect(processExitsWith: .failure) {
            let context = try ZMQContext()
            nonisolated(unsafe) let socket = try ZMQSocket(context: context, type: .pull)
            let intruder = OwnedThread(name: "intruder")
            _ = try await intruder.run { try socket.receive(wait: .never) }
        }
    }

    @Test("a blocking receive off an OwnedThread traps")
    func blockingOffOwnedThreadTraps() async {
        await #expect(processExitsWith: .failure) {
            let context = try ZMQContext()
            let socket = try ZMQSocket(context: context, type: .pull)
            _ = try socket.receive(wait: .timeout(.milliseconds(1)))
        }
    }
}
