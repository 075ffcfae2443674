import Testing
@testable import SlipwayNotify

@Suite struct WebhookDeliveryTests {
    let t0 = ContinuousClock.now

    func event(_ sequence: Int64) -> WebhookEvent { WebhookEvent(sequence: sequence, type: "job_failed", body: Array("{}".utf8)) }

    @Test func deliversInOrderAndAdvancesTheCursorOnlyOnAcknowledgement() {
        var delivery = WebhookDelivery(cursor: 10)
        #expect(delivery.next(now: t0) == .fetch(after: 10))
        delivery.fetched([event(14), event(12), event(9)], through: 20, now: t0)
        #expect(delivery.next(now: t0) == .send(event(12), attempt: 1), "oldest first; what is at or before the cursor is dropped")
        #expect(delivery.delivered(12) == 12)
        #expect(delivery.next(now: t0) == .send(event(14), attempt: 1))
        #expect(delivery.delivered(99) == 12, "an acknowledgement of something else changes nothing")
        delivery.delivered(14)
        #expect(delivery.cursor == 14 && delivery.next(now: t0) == .fetch(after: 20), "events it does not want (15…20) are not read again")
    }

    @Test func aFailingReceiverGetsTheSameEventAgainWithGrowingWaits() {
        var delivery = WebhookDelivery(cursor: 0, firstRetry: .seconds(1), maxRetry: .seconds(4))
        delivery.fetched([event(1), event(2)], through: 2, now: t0)
        #expect(delivery.failed(now: t0) == .seconds(1))
        #expect(delivery.next(now: t0 + .milliseconds(400)) == .wait(.milliseconds(600)))
        #expect(delivery.next(now: t0 + .seconds(1)) == .send(event(1), attempt: 2))
        #expect(delivery.failed(now: t0 + .seconds(1)) == .seconds(2))
        #expect(delivery.failed(now: t0 + .seconds(3)) == .seconds(4))
        #expect(delivery.failed(now: t0 + .seconds(7)) == .seconds(4), "capped")
        #expect(delivery.next(now: t0 + .seconds(11)) == .send(event(1), attempt: 5), "never skipped, however often it fails")
        delivery.delivered(1)
        #expect(delivery.cursor == 1 && delivery.failures == 0)
        #expect(delivery.next(now: t0 + .seconds(11)) == .send(event(2), attempt: 1), "the next event starts afresh")
    }

    @Test func anIdleOutboxIsReadAgainAfterThePollOrWhenWoken() {
        var delivery = WebhookDelivery(cursor: 5, idlePoll: .seconds(2))
        delivery.fetched([], through: 8, now: t0)
        #expect(delivery.next(now: t0 + .milliseconds(500)) == .wait(.milliseconds(1_500)))
        #expect(delivery.next(now: t0 + .seconds(2)) == .fetch(after: 8))
        delivery.woken()
        #expect(delivery.next(now: t0 + .milliseconds(600)) == .fetch(after: 8))
        #expect(delivery.cursor == 5, "the cursor moves only with an acknowledgement")
    }

    @Test func targetsRefuseWhatIsNotAWebhook() throws {
        #expect(throws: (any Error).self) { try WebhookTarget(url: "ftp://example.com/hook") }
        #expect(throws: (any Error).self) { try WebhookTarget(url: "not a url") }
        #expect(throws: (any Error).self) { try WebhookTarget(url: "http:///nohost") }
        #expect(throws: (any Error).self) { try WebhookTarget(url: "https://example.com/hook", events: ["job_exploded"]) }
        let target = try WebhookTarget(url: "https://user:pw@hooks.example.com/x?token=secret")
        #expect(target.redacted == "https://hooks.example.com/x?…", "credentials and query stay out of logs and metrics")
        #expect(target.events == WebhookTarget.defaultEvents)
    }
}
