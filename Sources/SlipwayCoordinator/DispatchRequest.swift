import SlipwayCore
import SlipwayProto
import SlipwayWire

/// A message from the dispatch ROUTER (workers), decoded and checked once. A
/// worker speaks only for itself: the id in the message must be the routing id
/// it connected with.
enum DispatchRequest: Equatable {
    case work(WorkerReport)
    case heartbeat(WorkerReport)
    case log(Slipway_V1_LogChunk, bytes: [UInt8])
    case result(Slipway_V1_BuildResult)

    /// The worker that sent it.
    var workerID: String? {
        switch self {
        case .work(let report), .heartbeat(let report): report.workerID
        case .log, .result: nil
        }
    }

    /// Decodes and checks `message`, received from `routingID`.
    static func decode(_ message: WireMessage, routingID: [UInt8]) throws(Rejection) -> DispatchRequest {
        do {
            switch message.type {
            case .workRequest:
                let request = try message.body(as: Slipway_V1_WorkRequest.self)
                try checkWorker(request.workerID, routingID, request.labels, request.region)
                return .work(WorkerReport(workerID: request.workerID, routingID: routingID, labels: request.labels,
                                          region: request.region, freeSlots: Int(min(request.freeSlots, 1_024)),
                                          assignmentsReceived: request.assignmentsReceived, running: nil))
            case .workerHeartbeat:
                let beat = try message.body(as: Slipway_V1_WorkerHeartbeat.self)
                try checkWorker(beat.workerID, routingID, beat.labels, beat.region)
                guard beat.running.count <= 1_024, beat.running.allSatisfy({ JobID.isValid($0.jobID) }) else {
                    throw Rejection.invalid("a heartbeat lists at most 1024 running jobs, by job id")
                }
                let running = Set(beat.running.map { JobAttempt(jobID: $0.jobID, attempt: Int($0.attempt)) })
                return .heartbeat(WorkerReport(workerID: beat.workerID, routingID: routingID, labels: beat.labels,
                                               region: beat.region, freeSlots: Int(min(beat.freeSlots, 1_024)),
                                               assignmentsReceived: beat.assignmentsReceived, running: running))
            case .logChunk:
                let chunk = try message.body(as: Slipway_V1_LogChunk.self)
                guard JobID.isValid(chunk.jobID) else { throw Rejection.invalid("a log chunk needs a job id") }
                let bytes = message.payload ?? []
                guard bytes.count <= 1 << 20 else { throw Rejection.invalid("a log chunk carries at most 1 MiB") }
                return .log(chunk, bytes: bytes)
            case .buildResult:
                let result = try message.body(as: Slipway_V1_BuildResult.self)
                guard JobID.isValid(result.jobID) else { throw Rejection.invalid("a build result needs a job id") }
                guard result.error.utf8.count <= 8_192, !result.error.utf8.contains(0) else {
                    throw Rejection.invalid("a build result's error is at most 8 KiB of text")
                }
                guard result.region.isEmpty || RegionName.isValid(result.region) else {
                    throw Rejection.invalid("'\(SafeText.printable(result.region))' is not a region name")
                }
                guard result.outcome != .succeeded || SafeText.isName(result.manifest.name, max: 128) else {
                    throw Rejection.invalid("a succeeded result needs an artifact name of A-Z a-z 0-9 . _ -")
                }
                return .result(result)
            default:
                throw Rejection(.unsupported, "the dispatch socket does not handle \(message.type)")
            }
        } catch let error as Rejection {
            throw error
        } catch {
            throw .invalid("\(error)")
        }
    }

    private static func checkWorker(_ id: String, _ routingID: [UInt8], _ labels: [String: String], _ region: String) throws(Rejection) {
        guard WorkerID.isValid(id), id.utf8.elementsEqual(routingID) else {
            throw .invalid("a worker's id must be its routing id, 1 to 200 characters of A-Z a-z 0-9 . _ - (and one @ after its key's name)")
        }
        guard labels.count <= 32, labels.allSatisfy({ label in
            SafeText.isName(label.key, max: 64) && label.value.utf8.count <= 128 && !label.value.unicodeScalars.contains { $0.value < 32 }
        }) else {
            throw .invalid("labels: at most 32, keys of A-Z a-z 0-9 . _ - up to 64 characters, values up to 128")
        }
        guard region.isEmpty || RegionName.isValid(region) else { throw .invalid("'\(SafeText.printable(region))' is not a region name") }
    }
}
