import SlipwayCore
import Foundation
import SlipwayProto
import SlipwayThreads
import SlipwayWire
import Testing
import Synchronization

@Suite("Reliable event stream")
struct EventStreamTests {
    @Test("the sequencer applies in order, drops duplicates and reports gaps")
    func sequencer() {
        var sequencer = EventSequencer()
        #expect(sequencer.offer(1) == .apply)
        #expect(sequencer.offer(1) == .duplicate)
        #expect(sequencer.offer(3) == .gap)
        #expect(sequencer.lastApplied == 1)
        #expect(sequencer.offer(2) == .apply)
        #expect(sequencer.offer(3) == .apply)
        #expect(sequencer.isBehind(4) && !sequencer.isBehind(3))
        var late = EventSequencer(after: 40)
        #expect(late.offer(12) == .duplicate)
        #expect(late.offer(41) == .apply)
    }

    @Test("a late subscriber that also loses live events, the last one included, still gets every event in order")
    func lossyStream() async throws {
        let context = try ZMQContext()
        let publisher = FakePublisher(context)
        let (pubEndpoint, snapshotEndpoint) = try await publisher.open()
        // Published before anyone listens: only a snapshot can deliver these.
        for sequence in 1...5 { try await publisher.publish(sequence, live: false) }

        let serving = Task {
            while !Task.isCancelled {
                try await publisher.serveSnapshots()
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let subscriberThread = OwnedThread(name: "subscriber")
        let finished = Mutex(false)
        async let received: ([UInt64], Int) = subscriberThread.run {
            defer { finished.withLock { $0 = true } }
            let subscriber = try EventSubscriber(context: context, publisher: Endpoint(parsing: pubEndpoint), snapshot: Endpoint(parsing: snapshotEndpoint), sender: "test", security: .plain)
            defer { subscriber.close() }
            var sequences: [UInt64] = []
            // Generous: on a loaded machine the publisher's tasks wait for a cooperative thread.
            let deadline = ContinuousClock.now + .seconds(40)
            while sequences.count < 20, ContinuousClock.now < deadline {
                if let event = try subscriber.next(wait: .timeout(.milliseconds(100))) { sequences.append(event.sequence) }
            }
            return (sequences, subscriber.snapshotRequests)
        }
        // Publish the rest only once the late start was answered from the snapshot.
        while await publisher.snapshotsServed < 1 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        let lost: Set<Int> = [9, 10, 15]
        for sequence in 6...19 { try await publisher.publish(sequence, live: !lost.contains(sequence)) }
        try await Task.sleep(for: .milliseconds(500))
        // The last event is lost too: no later event reveals the gap, only the heartbeat does.
        try await publisher.publish(20, live: false)
        // Heartbeats until the subscriber is done (a loaded machine may need more than a few).
        for _ in 0..<400 where !finished.withLock({ $0 }) {
            try await publisher.heartbeat(last: 20)
            try await Task.sleep(for: .milliseconds(100))
        }
        let (sequences, requests) = try await received
        serving.cancel()
        subscriberThread.shutdown()
        #expect(sequences == Array(1...20))
        // At least: the late start, and the lost last event (published after the
        // first catch-up was served, so only the heartbeat can reveal it).
        #expect(requests >= 2)
        await publisher.close()
    }
}

extension EventStreamTests {
    @Test("a subscriber far behind follows capped snapshot replies, each asked for again on a new socket, and gets every event")
    func cappedSnapshots() async throws {
        let context = try ZMQContext()
        let publisher = FakePublisher(context, snapshotCap: 3)
        let (pubEndpoint, snapshotEndpoint) = try await publisher.open()
        for sequence in 1...10 { try await publisher.publish(sequence, live: false) }
        let serving = Task {
            while !Task.isCancelled {
                try await publisher.serveSnapshots()
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let subscriberThread = OwnedThread(name: "subscriber")
        let (sequences, requests) = try await subscriberThread.run {
            let subscriber = try EventSubscriber(context: context, publisher: Endpoint(parsing: pubEndpoint), snapshot: Endpoint(parsing: snapshotEndpoint),
                                                 sender: "test", security: .plain)
            defer { subscriber.close() }
            // Counted here are the requests capped replies make. On a loaded machine a reply can
            // take longer than the usual 3 s, and the request made again then would count too (seen in CI).
            subscriber.snapshotTimeout = .seconds(60)
            var sequences: [UInt64] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while sequences.count < 10, ContinuousClock.now < deadline {
                if let event = try subscriber.next(wait: .timeout(.milliseconds(100))) { sequences.append(event.sequence) }
            }
            return (sequences, subscriber.snapshotRequests)
        }
        serving.cancel()
        subscriberThread.shutdown()
        #expect(sequences == Array(1...10))
        // 1–3, 4–6, 7–9, 10: each reply ends behind the stream, so the next is asked for.
        #expect(requests == 4)
        await publisher.close()
    }
}

/// A publisher under the test's control: PUB for live events (some "lost" on
/// purpose), ROUTER answering snapshot requests from its full log.
actor FakePublisher {
    nonisolated let thread = OwnedThread(name: "fake-publisher")
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
    private let context: ZMQContext
    private var pub: ZMQSocket?
    private var router: ZMQSocket?
    private var log: [Slipway_V1_Event] = []
    private(set) var snapshotsServed = 0
    private let codec = WireCodec()
    /// Events per snapshot reply at most, as the coordinator pages them.
    private let snapshotCap: Int

    init(_ context: ZMQContext, snapshotCap: Int = .max) {
        self.context = context
        self.snapshotCap = snapshotCap
    }

    func open() throws -> (String, String) {
        let pub = try ZMQSocket(context: context, type: .pub)
        try pub.bind("tcp://127.0.0.1:*")
        let router = try ZMQSocket(context: context, type: .router)
        try router.bind("tcp://127.0.0.1:*")
        self.pub = pub
        self.router = router
        return (try pub.lastEndpoint(), try router.lastEndpoint())
    }

    func publish(_ sequence: Int, live: Bool) throws {
        var event = Slipway_V1_Event()
        event.sequence = UInt64(sequence)
        event.type = .jobQueued
        event.jobID = "job-\(sequence)"
        log.append(event)
        if live { try pub?.send(codec.encode(WireMessage(event, sender: "fake", topic: "job.queued")), wait: .never) }
    }

    func heartbeat(last: UInt64) throws {
        var beat = Slipway_V1_CoordinatorHeartbeat()
        beat.lastEventSeq = last
        try pub?.send(codec.encode(WireMessage(beat, sender: "fake", topic: "hb")), wait: .never)
    }

    func serveSnapshots() throws {
        guard let router else { return }
        while let frames = try router.receive(wait: .never) {
            let (peer, message) = try codec.decodeRouted(frames)
            let request = try message.body(as: Slipway_V1_SnapshotRequest.self)
            for event in log.filter({ $0.sequence > request.afterSequence }).prefix(snapshotCap) {
                try router.send(codec.encode(WireMessage(event, sender: "fake", inReplyTo: message.envelope.messageID), to: peer), wait: .never)
            }
            var end = Slipway_V1_SnapshotEnd()
            end.lastSequence = log.last?.sequence ?? 0
            try router.send(codec.encode(WireMessage(end, sender: "fake", inReplyTo: message.envelope.messageID), to: peer), wait: .never)
            snapshotsServed += 1
        }
    }

    private func closeSockets() {
        pub?.close()
        router?.close()
    }

    nonisolated func close() async {
        await closeSockets()
        thread.shutdown()
    }
}
