@testable import SlipwayCoordinator
import SlipwayCore
import SlipwayProto
import SlipwayWire
import Testing

@Suite("Requests are decoded and checked once, at the edge")
struct RequestDecodingTests {
    let digest = String(repeating: "ab", count: 32)
    let jobID = "0b7c3f1e-5a2d-4c1b-9e8f-2a6d4c0b1e3f"

    func message(_ body: some WireBody) -> WireMessage { WireMessage(body, sender: "test") }

    func rejection(_ body: some WireBody, regions: [String] = ["eu", "us"]) -> Rejection? {
        do {
            _ = try IntakeRequest.decode(message(body), regions: regions)
            return nil
        } catch {
            return error
        }
    }

    @Test("deploys carry checked names and digests; bad ones are refused with the rule")
    func deploys() throws {
        var deploy = Slipway_V1_DeployRequest()
        deploy.service = "api"
        deploy.artifactDigest = digest
        deploy.regions = ["eu"]
        deploy.setBy = "alice"
        let request = try IntakeRequest.decode(message(deploy), regions: ["eu", "us"])
        #expect(request == .deploy(try ServiceName("api"), try DigestPrefix(digest), regions: [try RegionName("eu")], plan: "", setBy: "alice",
                                   newService: false))

        var bad = deploy
        bad.artifactDigest = "abc"
        #expect(rejection(bad) == .invalid("'abc' is not a digest: a digest is 64 lowercase hex characters (SHA-256), or at least its first 8"))
        bad = deploy
        bad.regions = ["mars"]
        #expect(rejection(bad)?.message.contains("region mars is not one of this coordinator's regions (eu, us)") == true)
        bad = deploy
        bad.regions = ["eu", "eu"]
        #expect(rejection(bad)?.code == .invalidArgument)
        bad = deploy
        bad.setBy = "line\nbreak"
        #expect(rejection(bad)?.message.contains("set_by") == true)
        bad = deploy
        bad.service = "../etc"
        #expect(rejection(bad)?.message.hasPrefix("'../etc' is not a service name") == true)
        #expect(rejection(deploy, regions: []) == nil, "with no regions configured, any region name goes")
    }

    @Test("a region report's vouch page cursor is empty or a service name: it goes into a query")
    func vouchCursor() {
        var report = Slipway_V1_RegionReport()
        report.region = "eu"
        report.vouchesWanted = true
        #expect(rejection(report) == nil)
        report.vouchesAfter = "web-2.api"
        #expect(rejection(report) == nil)
        for bad in ["a\u{0}b", "../x", String(repeating: "s", count: 129)] {
            report.vouchesAfter = bad
            #expect(rejection(report) == .invalid("vouches_after must be empty or a service name"))
        }
    }

    @Test("job ids that are not UUIDs name no job; limits are clamped; unknown types are unsupported")
    func jobsAndLimits() throws {
        var query = Slipway_V1_JobQuery()
        query.jobID = "not-a-job"
        #expect(rejection(query) == Rejection(.notFound, "no job not-a-job"))
        query.jobID = jobID
        #expect(try IntakeRequest.decode(message(query), regions: []) == .job(try JobID(jobID)))

        var list = Slipway_V1_JobListQuery()
        list.limit = 1_000_000
        list.status = .running
        #expect(try IntakeRequest.decode(message(list), regions: []) == .listJobs(status: .running, artifactName: "", limit: 500))
        var log = Slipway_V1_LogQuery()
        log.jobID = jobID
        #expect(try IntakeRequest.decode(message(log), regions: []) == .log(try JobID(jobID), offset: 0, maxBytes: 256 << 10))

        #expect(rejection(Slipway_V1_WorkRequest())?.code == .unsupported)
        #expect(rejection(Slipway_V1_SubmitBuild())?.code == .invalidArgument)
    }

    @Test("a worker speaks only for itself, with bounded lists")
    func workers() throws {
        var beat = Slipway_V1_WorkerHeartbeat()
        beat.workerID = "w1"
        beat.freeSlots = 99_999
        beat.assignmentsReceived = 3
        beat.region = "eu"
        var running = Slipway_V1_RunningJob()
        running.jobID = jobID
        running.attempt = 2
        beat.running = [running]
        let decoded = try DispatchRequest.decode(message(beat), routingID: Array("w1".utf8))
        #expect(decoded == .heartbeat(WorkerReport(workerID: "w1", routingID: Array("w1".utf8), labels: [:], region: "eu",
                                                   freeSlots: 1_024, assignmentsReceived: 3,
                                                   running: [JobAttempt(jobID: jobID, attempt: 2)])))
        #expect(throws: Rejection.self) { try DispatchRequest.decode(message(beat), routingID: Array("w2".utf8)) }
        beat.running = Array(repeating: running, count: 1_025)
        #expect(throws: Rejection.self) { try DispatchRequest.decode(message(beat), routingID: Array("w1".utf8)) }

        var result = Slipway_V1_BuildResult()
        result.jobID = "x"
        #expect(throws: Rejection.self) { try DispatchRequest.decode(message(result), routingID: [1]) }
        #expect(throws: Rejection.self) { try DispatchRequest.decode(message(Slipway_V1_SubmitBuild()), routingID: [1]) }
    }
}
