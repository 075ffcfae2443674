import SlipwayCore
import Foundation
import SlipwayStore
import SlipwayTestSupport
import Testing

@Suite("Job queue: claim, fencing, retries", .enabled(if: TestDatabase.isConfigured))
struct JobQueueTests {
    static func job(_ key: String, labels: [String: String] = [:], maxAttempts: Int = 3) -> NewJob {
        NewJob(idempotencyKey: key, repoURL: "file:///repo", commitSHA: String(repeating: "a", count: 40),
               artifactName: "svc", recipe: "make", artifactPath: "out/svc", labels: labels, maxAttempts: maxAttempts)
    }

    @Test("8 concurrent connections claiming from 1,000 queued jobs claim each exactly once")
    func concurrentClaims() async throws {
        let url = try await TestDatabase.create()
        let setup = PGClient(url: url, logger: TestDatabase.logger)
        try await setup.transaction { db in
            for index in 0..<1_000 { _ = try JobQueue.enqueue(db, Self.job("job-\(index)")) }
        }
        // Connected before anyone claims: one claimer alone could otherwise drain the queue while the rest connect.
        var clients: [PGClient] = []
        for claimer in 0..<8 {
            let client = PGClient(url: url, name: "claimer-\(claimer)", logger: TestDatabase.logger)
            _ = try await client.query("SELECT 1 AS one")
            clients.append(client)
        }
        let claims = try await withThrowingTaskGroup(of: [ClaimedJob].self) { group in
            for (claimer, client) in clients.enumerated() {
                group.addTask {
                    var mine: [ClaimedJob] = []
                    while true {
                        let batch = try await client.withConnection { db in
                            try JobQueue.claim(db, workerID: "worker-\(claimer)", workerLabels: [:], limit: Int.random(in: 1...8))
                        }
                        if batch.isEmpty { break }
                        mine += batch
                    }
                    await client.close()
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claims.count == 1_000)
        #expect(Set(claims.map(\.id)).count == 1_000)
        #expect(claims.allSatisfy { $0.attempt == 1 })
        let counts = try await setup.query("SELECT count(*) FILTER (WHERE status = 'running') AS running, count(DISTINCT worker_id) AS workers FROM jobs").first!
        #expect(try counts.int("running") == 1_000)
        #expect(try counts.int("workers") > 1)
        await setup.close()
        await TestDatabase.drop(url)
    }

    @Test("a fenced completion with a stale attempt updates nothing")
    func fencing() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let outcome = try await client.withConnection { db in
            let (job, _) = try JobQueue.enqueue(db, Self.job("fenced"))
            let first = try JobQueue.claim(db, workerID: "w1", workerLabels: [:], limit: 1)
            // The first worker is presumed lost: its attempt is requeued with no back-off.
            let requeued = try JobQueue.fail(db, jobID: job.id, attempt: 1, error: "worker lost", retryable: true)
            let second = try JobQueue.claim(db, workerID: "w2", workerLabels: [:], limit: 1)
            let staleComplete = try JobQueue.complete(db, jobID: job.id, attempt: 1, artifactDigest: String(repeating: "0", count: 64))
            let staleFail = try JobQueue.fail(db, jobID: job.id, attempt: 1, error: "late", retryable: false)
            let current = try JobQueue.complete(db, jobID: job.id, attempt: 2, artifactDigest: String(repeating: "1", count: 64))
            let again = try JobQueue.complete(db, jobID: job.id, attempt: 2, artifactDigest: String(repeating: "2", count: 64))
            return (first, requeued, second, staleComplete, staleFail, current, again, try JobQueue.job(db, id: job.id)!)
        }
        let (first, requeued, second, staleComplete, staleFail, current, again, final) = outcome
        #expect(first.map(\.attempt) == [1])
        #expect(requeued == .queued)
        #expect(second.map(\.attempt) == [2])
        #expect(staleComplete == false)
        #expect(staleFail == nil)
        #expect(current == true)
        #expect(again == false)
        #expect(final.status == .succeeded)
        #expect(final.workerID == "w2")
        #expect(final.artifactDigest == String(repeating: "1", count: 64))
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("retries stop at max_attempts; back-off delays the next claim")
    func retriesAndBackoff() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let (statuses, delayed) = try await client.withConnection { db in
            let (job, _) = try JobQueue.enqueue(db, Self.job("flaky", maxAttempts: 2))
            var statuses: [JobStatus?] = []
            for attempt in 1...2 {
                _ = try JobQueue.claim(db, workerID: "w", workerLabels: [:], limit: 1)
                statuses.append(try JobQueue.fail(db, jobID: job.id, attempt: attempt, error: "worker lost", retryable: true))
            }
            let (slow, _) = try JobQueue.enqueue(db, Self.job("slow"))
            _ = try JobQueue.claim(db, workerID: "w", workerLabels: [:], limit: 1)
            _ = try JobQueue.fail(db, jobID: slow.id, attempt: 1, error: "disk full", retryable: true, backoff: .seconds(60))
            return (statuses, try JobQueue.claim(db, workerID: "w", workerLabels: [:], limit: 10))
        }
        #expect(statuses == [.queued, .failed])
        #expect(delayed.isEmpty)
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("one claim for several workers gives the oldest jobs to the slots in order and records each job's worker")
    func claimForSeveralWorkers() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let (claimed, stored, empty) = try await client.withConnection { db in
            var ids: [String] = []
            for index in 0..<5 { ids.append(try JobQueue.enqueue(db, Self.job("multi-\(index)")).job.id) }
            let claimed = try JobQueue.claim(db, slots: ["a", "b", "a", "b", "c", "a"], workerLabels: [:])
            let stored = try ids.map { try db.query("SELECT worker_id FROM jobs WHERE id = $1::uuid", [.text($0)]).first!.string("worker_id") }
            let empty = try JobQueue.claim(db, slots: ["a", "b"], workerLabels: [:])
            return (claimed, stored, empty)
        }
        #expect(claimed.count == 5)
        #expect(stored == ["a", "b", "a", "b", "c"])
        #expect(Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0.workerID) }).values.sorted() == ["a", "a", "b", "b", "c"])
        #expect(claimed.allSatisfy { $0.attempt == 1 })
        #expect(empty.isEmpty)
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("a worker claims only jobs whose labels it carries")
    func labels() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let (plain, gpu) = try await client.withConnection { db in
            _ = try JobQueue.enqueue(db, Self.job("needs-gpu", labels: ["os": "linux", "gpu": "yes"]))
            let plain = try JobQueue.claim(db, workerID: "cpu", workerLabels: ["os": "linux", "arch": "x86_64"], limit: 5)
            let gpu = try JobQueue.claim(db, workerID: "gpu", workerLabels: ["os": "linux", "gpu": "yes", "arch": "x86_64"], limit: 5)
            return (plain, gpu)
        }
        #expect(plain.isEmpty)
        #expect(gpu.count == 1)
        await client.close()
        await TestDatabase.drop(url)
    }

    @Test("resubmitting an idempotency key returns the same job; cancel ends a queued job")
    func idempotencyAndCancel() async throws {
        let url = try await TestDatabase.create()
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let (a, b, cancelled, unknown) = try await client.withConnection { db in
            let a = try JobQueue.enqueue(db, Self.job("same-key"))
            let b = try JobQueue.enqueue(db, Self.job("same-key"))
            let cancelled = try JobQueue.cancel(db, jobID: a.job.id, reason: "user asked")
            let unknown = try JobQueue.cancel(db, jobID: UUID().uuidString, reason: "x")
            return (a, b, cancelled, unknown)
        }
        #expect(a.duplicate == false)
        #expect(b.duplicate == true)
        #expect(a.job.id == b.job.id)
        #expect(cancelled == .cancelled)
        #expect(unknown == nil)
        let garbage = try await client.withConnection { db in
            (try JobQueue.cancel(db, jobID: "not-a-uuid'; --", reason: "x"), try JobQueue.job(db, id: "nope"),
             try JobQueue.complete(db, jobID: "", attempt: 1, artifactDigest: "x"))
        }
        #expect(garbage.0 == nil && garbage.1 == nil && garbage.2 == false)
        let count = try await client.query("SELECT count(*) AS n FROM jobs").first!.int("n")
        #expect(count == 1)
        await client.close()
        await TestDatabase.drop(url)
    }
}

@Suite("Events outbox", .enabled(if: TestDatabase.isConfigured))
struct OutboxTests {
    @Test("concurrent writers with rollbacks leave a gap-free sequence; a batch is stored in order with its bytes intact")
    func gapFree() async throws {
        let url = try await TestDatabase.create()
        struct Rollback: Error {}
        // Writers 0 and 2 append three events per transaction with one statement, 1 and 3 one at a time.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    let client = PGClient(url: url, name: "writer-\(writer)", logger: TestDatabase.logger)
                    for index in 0..<40 {
                        do {
                            try await client.transaction { db in
                                if writer % 2 == 0 {
                                    _ = try Outbox.append(db, (0..<3).map { part in
                                        ("job_queued", "job.", [UInt8(writer), UInt8(index), UInt8(part), 0x00, 0xff])
                                    })
                                } else {
                                    _ = try Outbox.append(db, type: "job_queued", topic: "job.", payload: [UInt8(writer), UInt8(index)])
                                }
                                if index % 5 == 0 { throw Rollback() }
                            }
                        } catch is Rollback {}
                    }
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
        let client = PGClient(url: url, logger: TestDatabase.logger)
        let events = try await client.withConnection { try Outbox.events($0, after: 0, limit: 10_000) }
        let total = 2 * 32 * 3 + 2 * 32
        #expect(events.count == total)
        #expect(events.map(\.sequence) == Array(1...Int64(total)))
        #expect(try await client.withConnection { try Outbox.lastSequence($0) } == Int64(total))
        for (offset, event) in events.enumerated() where event.payload.count == 5 && event.payload[2] == 0 {
            let batch = events[offset..<min(offset + 3, events.count)].map(\.payload)
            #expect(batch == (0..<3).map { [event.payload[0], event.payload[1], UInt8($0), 0x00, 0xff] },
                    "a batch's events are consecutive, in order, bytes intact")
        }
        let tail = try await client.withConnection { try Outbox.events($0, after: Int64(total - 8)) }
        #expect(tail.map(\.sequence) == Array(Int64(total - 7)...Int64(total)))
        await client.close()
        await TestDatabase.drop(url)
    }
}
