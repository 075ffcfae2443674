public import SlipwayProto

extension Slipway_V1_ArtifactInfo {
    /// The `artifact` object of docs/json-output.md.
    public var json: JSONValue {
        .object([
            "digest": .string(digest),
            "name": .string(name),
            "size": .count(size),
            "piece_size": .count(pieceSize),
            "pieces": .count(pieceCount),
            "pieces_by_content": .bool(piecesByContent),
            "job_id": .text(jobID),
            "repo": .string(repoURL),
            "commit": .string(commit),
            "recipe": .text(recipe),
            "origin_region": .string(originRegion),
            "created_at": .time(unixMicros: createdAtUnixMicros),
            "deployable": .bool(deployableAtUnixMicros > 0),
            "deployable_at": .time(unixMicros: deployableAtUnixMicros),
            "replicas": .array(replicas.map(\.json)),
        ])
    }
}

extension Slipway_V1_ReplicationStatus {
    /// The `replica` object of docs/json-output.md.
    public var json: JSONValue {
        .object([
            "region": .string(region),
            "state": .string(state.word),
            "pieces_done": .count(piecesDone),
            "pieces_total": .count(piecesTotal),
            "failure": .text(error),
        ])
    }
}
