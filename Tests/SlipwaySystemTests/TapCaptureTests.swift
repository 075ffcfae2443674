import Foundation
import SlipwayProto
import SlipwayTestSupport
import SlipwayThreads
import SlipwayWire
import Testing

/// `slipway tap` in capture mode: a real XSUB/XPUB proxy process between a
/// publisher and a subscriber that know nothing about the tap.
@Suite("Tap capture mode", .enabled(if: Cluster.isConfigured))
struct TapCaptureTests {
    @Test("traffic between a publisher and a subscriber flows through the proxy and is printed, subscriptions included")
    func capture() async throws {
        _ = try await Cluster.with { cluster in
            let (frontend, backend) = ("tcp://127.0.0.1:\(freeLoopbackPort())", "tcp://127.0.0.1:\(freeLoopbackPort())")
            let tap = try cluster.start("tap", ["tap", "--proxy-frontend", frontend, "--proxy-backend", backend, "--duration", "20s"])
            let context = try ZMQContext()
            let thread = OwnedThread(name: "capture-test")
            defer { thread.shutdown() }
            let delivered: Int = try await thread.run {
                let publisher = try ZMQSocket(context: context, type: .pub)
                let subscriber = try ZMQSocket(context: context, type: .sub)
                defer { publisher.close(); subscriber.close() }
                try publisher.connect(frontend)
                try subscriber.set(.subscribe(Array("job.".utf8)))
                try subscriber.connect(backend)
                var event = Slipway_V1_Event()
                event.type = .jobQueued
                event.jobID = "captured-job"
                let codec = WireCodec()
                var received = 0
                let deadline = ContinuousClock.now + .seconds(15)
                // PUB/SUB joins slowly: publish until the subscriber has seen three.
                while received < 3, ContinuousClock.now < deadline {
                    event.sequence += 1
                    _ = try publisher.send(codec.encode(WireMessage(event, sender: "publisher", topic: "job.queued")), wait: .never)
                    _ = try publisher.send([Array("other.topic".utf8), [0xFF, 0x00]], wait: .never)
                    while let frames = try subscriber.receive(wait: .timeout(.milliseconds(50))) {
                        #expect(try codec.decode(frames).body(as: Slipway_V1_Event.self).jobID == "captured-job")
                        received += 1
                    }
                }
                return received
            }
            #expect(delivered >= 3, "the proxy forwards publisher → subscriber")
            try await cluster.waitForLog("tap", "job_queued job=captured-job")
            let log = cluster.logText("tap")
            #expect(log.contains("subscribe \"job.\""), "the subscription crossing the proxy is shown: \(log)")
            #expect(!log.contains("other.topic"), "XPUB forwards only subscribed topics upstream, so nothing else is captured")
            tap.signal(SIGTERM)
            _ = await tap.exited()
        }
    }
}
