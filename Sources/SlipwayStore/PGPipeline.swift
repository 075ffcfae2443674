import CLibPQ

/// One statement of a pipeline: sent with the others, answered in order.
enum PipelineStep {
    case begin
    case prepared(_ name: String, _ sql: String, _ parameters: [PGBind])
    case commit

    var sql: String {
        switch self {
        case .begin: "BEGIN"
        case .prepared(_, let sql, _): sql
        case .commit: "COMMIT"
        }
    }
}

extension PGConnection {
    /// Sends `steps` in libpq's pipeline mode, then one Sync, and reads every
    /// result: one round trip instead of one per statement. A failed statement
    /// makes the server skip the rest up to the Sync, so a COMMIT after it never
    /// runs. - Returns: each step's result, in order. - Throws: the first
    /// failure; the connection is back out of pipeline mode either way.
    func pipelined(_ handle: OpaquePointer, _ steps: [PipelineStep]) throws(PGError) -> [PGResult] {
        guard PQenterPipelineMode(handle) == 1 else {
            throw PGError(.queryFailed, message: "could not enter pipeline mode: \(Self.libpqMessage(handle))", query: steps.last?.sql)
        }
        var sent = 0
        for step in steps {
            guard send(step, on: handle) == 1 else { break }
            sent += 1
        }
        let synced = PQpipelineSync(handle) == 1
        var outcomes: [Result<PGResult, PGError>] = []
        // Each statement's result is followed by a NULL; the Sync's result ends the
        // pipeline. Past that many NULLs without it, the connection is gone.
        var nulls = 0
        while synced, nulls <= sent + 1 {
            guard let result = PQgetResult(handle) else {
                nulls += 1
                if PQstatus(handle) != CONNECTION_OK { break }
                continue
            }
            if PQresultStatus(result) == PGRES_PIPELINE_SYNC {
                PQclear(result)
                break
            }
            let sql = outcomes.count < steps.count ? steps[outcomes.count].sql : "?"
            do throws(PGError) {
                outcomes.append(.success(try consume(result, sql: sql)))
            } catch {
                outcomes.append(.failure(error))
            }
        }
        if PQexitPipelineMode(handle) != 1 {
            // Results still owed: this session's state is unknown, so it is replaced
            // (counted as a reconnect: session locks are gone) and the outcome is unknown.
            let message = Self.libpqMessage(handle)
            try? reconnect(handle)
            throw PGError(.connectionLost, message: "pipeline left unfinished: \(message)", query: steps.last?.sql)
        }
        for case .failure(let error) in outcomes { throw error }
        guard outcomes.count == steps.count else {
            let lost = PQstatus(handle) != CONNECTION_OK
            throw PGError(lost ? .connectionLost : .badResult,
                          message: lost ? Self.libpqMessage(handle) : "pipeline answered \(outcomes.count) of \(steps.count) statements",
                          query: steps.last?.sql)
        }
        return outcomes.map { try! $0.get() }
    }

    private func send(_ step: PipelineStep, on handle: OpaquePointer) -> Int32 {
        switch step {
        case .begin:
            PQsendQueryParams(handle, "BEGIN", 0, nil, nil, nil, nil, 0)
        case .commit:
            PQsendQueryParams(handle, "COMMIT", 0, nil, nil, nil, nil, 0)
        case .prepared(let name, _, let parameters):
            Self.withCParameters(parameters) { values, lengths, formats in
                PQsendQueryPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 0)
            }
        }
    }
}
