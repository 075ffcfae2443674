@testable import SlipwayWorker
import Testing

@Suite("Deliveries: results and logs are resent until acknowledged")
struct DeliveriesTests {
    let start = ContinuousClock.now
    let job = Deliveries.Attempt(jobID: "j", attempt: 1)

    func frames(_ tag: UInt8, size: Int = 1) -> [[UInt8]] { [[tag], [UInt8](repeating: tag, count: size)] }

    @Test("a result waits for its log, then is resent until acknowledged")
    func resultAfterLog() {
        var deliveries = Deliveries(resendAfter: .seconds(3), logWait: .seconds(10))
        let kept = [deliveries.log(job, sequence: 0, frames: frames(1)), deliveries.log(job, sequence: 1, frames: frames(2))]
        #expect(kept == [true, true])
        deliveries.result(job, frames: frames(9), now: start)
        #expect(deliveries.due(now: start) == [frames(1), frames(2)], "chunks first; the result waits for them")
        #expect(deliveries.due(now: start + .seconds(1)).isEmpty)
        deliveries.logAcknowledged(job, sequences: [0])
        #expect(deliveries.due(now: start + .seconds(3)) == [frames(2)], "the unacknowledged chunk again, the result still waits")
        deliveries.logAcknowledged(job, sequences: [1])
        #expect(deliveries.due(now: start + .seconds(3)) == [frames(9)])
        #expect(deliveries.unacknowledgedResults == [job])
        #expect(deliveries.due(now: start + .seconds(5)).isEmpty)
        #expect(deliveries.due(now: start + .seconds(6)) == [frames(9)], "no ack within 3 s: sent again")
        deliveries.resultAcknowledged(job)
        #expect(deliveries.isEmpty)
        #expect(deliveries.due(now: start + .seconds(60)).isEmpty)
    }

    @Test("a result goes anyway once its log has had long enough; a reconnect resends everything at once")
    func logWaitAndReconnect() {
        var deliveries = Deliveries(resendAfter: .seconds(3), logWait: .seconds(10))
        _ = deliveries.log(job, sequence: 0, frames: frames(1))
        deliveries.result(job, frames: frames(9), now: start)
        _ = deliveries.due(now: start)
        #expect(deliveries.due(now: start + .seconds(10)) == [frames(1), frames(9)])
        deliveries.resendAll()
        #expect(deliveries.due(now: start + .seconds(11)) == [frames(1), frames(9)])
    }

    @Test("a result recorded before its log (after an outage) leaves the log owed: resent until acknowledged")
    func resultBeforeLog() {
        var deliveries = Deliveries(resendAfter: .seconds(3), logWait: .seconds(10))
        _ = deliveries.log(job, sequence: 0, frames: frames(1))
        deliveries.result(job, frames: frames(9), now: start)
        _ = deliveries.due(now: start)
        #expect(deliveries.due(now: start + .seconds(10)) == [frames(1), frames(9)], "the log had long enough: the result goes too")
        // The database comes back: the result's copy is recorded, the chunk's was lost with the outage.
        deliveries.resultAcknowledged(job)
        #expect(!deliveries.isEmpty, "the chunk is still owed")
        #expect(deliveries.due(now: start + .seconds(13)) == [frames(1)])
        deliveries.logAcknowledged(job, sequences: [0])
        #expect(deliveries.isEmpty)
    }

    @Test("unacknowledged log bytes are capped per attempt; the rest is sent once and not kept")
    func budget() {
        var deliveries = Deliveries(logBudget: 100)
        let first = deliveries.log(job, sequence: 0, frames: frames(1, size: 60))
        let second = deliveries.log(job, sequence: 1, frames: frames(2, size: 60))
        #expect(first && !second)
        #expect(deliveries.logChunksNotKept == 1)
        deliveries.logAcknowledged(job, sequences: [0])
        let third = deliveries.log(job, sequence: 2, frames: frames(3, size: 60))
        #expect(third, "acknowledged bytes free the budget")
    }
}
