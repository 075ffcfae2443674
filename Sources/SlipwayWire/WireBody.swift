public import SlipwayProto
public import SwiftProtobuf

/// A protobuf message that can travel as an envelope body: it knows its `MessageType`.
public protocol WireBody: SwiftProtobuf.Message {
    /// The `Envelope.type` value that names this message.
    static var messageType: Slipway_V1_MessageType { get }
}

/// Every message type this build knows, for decoding by type (the tap, tests).
public enum WireRegistry {
    /// The Swift type for each `MessageType`.
    public static let bodyTypes: [Slipway_V1_MessageType: any WireBody.Type] = {
        let all: [any WireBody.Type] = [
            Slipway_V1_SubmitBuild.self, Slipway_V1_SubmitBuildAck.self,
            Slipway_V1_CancelBuild.self, Slipway_V1_CancelBuildAck.self,
            Slipway_V1_ErrorReply.self, Slipway_V1_JobQuery.self, Slipway_V1_JobInfo.self,
            Slipway_V1_JobListQuery.self, Slipway_V1_JobList.self, Slipway_V1_LogQuery.self, Slipway_V1_LogData.self,
            Slipway_V1_WorkRequest.self, Slipway_V1_WorkAssignment.self,
            Slipway_V1_WorkerHeartbeat.self, Slipway_V1_CoordinatorHeartbeat.self,
            Slipway_V1_LogChunk.self, Slipway_V1_BuildResult.self,
            Slipway_V1_AbortJob.self, Slipway_V1_ResultAck.self, Slipway_V1_LogAck.self,
            Slipway_V1_ArtifactManifest.self, Slipway_V1_PieceRequest.self,
            Slipway_V1_PieceData.self, Slipway_V1_PieceHave.self, Slipway_V1_PieceChoke.self, Slipway_V1_PieceInterest.self, Slipway_V1_ManifestRequest.self,
            Slipway_V1_UploadBegin.self, Slipway_V1_UploadCommit.self, Slipway_V1_UploadAck.self,
            Slipway_V1_ArtifactQuery.self, Slipway_V1_ArtifactList.self,
            Slipway_V1_ReplicationStatus.self,
            Slipway_V1_TargetChange.self, Slipway_V1_AgentStatus.self,
            Slipway_V1_AgentRegister.self, Slipway_V1_AgentTargets.self, Slipway_V1_PeerListRequest.self,
            Slipway_V1_PeerList.self, Slipway_V1_PeerKeyQuery.self, Slipway_V1_PeerKeyAnswer.self, Slipway_V1_RegionReport.self,
            Slipway_V1_DeployRequest.self, Slipway_V1_DeployReply.self, Slipway_V1_RollbackRequest.self,
            Slipway_V1_ServiceStatusQuery.self, Slipway_V1_ServiceStatus.self,
            Slipway_V1_ServiceListQuery.self, Slipway_V1_ServiceList.self,
            Slipway_V1_AuditQuery.self, Slipway_V1_AuditList.self,
            Slipway_V1_RolloutQuery.self, Slipway_V1_RolloutControl.self, Slipway_V1_RolloutStatus.self,
            Slipway_V1_Event.self, Slipway_V1_SnapshotRequest.self, Slipway_V1_SnapshotEnd.self,
        ]
        return Dictionary(uniqueKeysWithValues: all.map { ($0.messageType, $0) })
    }()

    /// Decodes `body` as the message `type` names.
    public static func decodeBody<Bytes: SwiftProtobufContiguousBytes>(_ body: Bytes, type: Slipway_V1_MessageType) throws(WireError) -> any WireBody {
        guard let bodyType = bodyTypes[type] else {
            throw WireError(.unknownMessageType, "message type \(type.rawValue) is not known to this build")
        }
        do {
            return try bodyType.init(serializedBytes: body)
        } catch {
            throw WireError(.malformedBody, "body is not a valid \(bodyType.protoMessageName): \(error)")
        }
    }
}

extension Slipway_V1_SubmitBuild: WireBody { public static var messageType: Slipway_V1_MessageType { .submitBuild } }
extension Slipway_V1_SubmitBuildAck: WireBody { public static var messageType: Slipway_V1_MessageType { .submitBuildAck } }
extension Slipway_V1_CancelBuild: WireBody { public static var messageType: Slipway_V1_MessageType { .cancelBuild } }
extension Slipway_V1_CancelBuildAck: WireBody { public static var messageType: Slipway_V1_MessageType { .cancelBuildAck } }
extension Slipway_V1_RolloutQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .rolloutQuery } }
extension Slipway_V1_RolloutControl: WireBody { public static var messageType: Slipway_V1_MessageType { .rolloutControl } }
extension Slipway_V1_RolloutStatus: WireBody { public static var messageType: Slipway_V1_MessageType { .rolloutStatus } }
extension Slipway_V1_ErrorReply: WireBody { public static var messageType: Slipway_V1_MessageType { .errorReply } }
extension Slipway_V1_JobQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .jobQuery } }
extension Slipway_V1_JobInfo: WireBody { public static var messageType: Slipway_V1_MessageType { .jobInfo } }
extension Slipway_V1_JobListQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .jobListQuery } }
extension Slipway_V1_JobList: WireBody { public static var messageType: Slipway_V1_MessageType { .jobList } }
extension Slipway_V1_LogQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .logQuery } }
extension Slipway_V1_LogData: WireBody { public static var messageType: Slipway_V1_MessageType { .logData } }
extension Slipway_V1_WorkRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .workRequest } }
extension Slipway_V1_WorkAssignment: WireBody { public static var messageType: Slipway_V1_MessageType { .workAssignment } }
extension Slipway_V1_WorkerHeartbeat: WireBody { public static var messageType: Slipway_V1_MessageType { .workerHeartbeat } }
extension Slipway_V1_CoordinatorHeartbeat: WireBody { public static var messageType: Slipway_V1_MessageType { .coordinatorHeartbeat } }
extension Slipway_V1_LogChunk: WireBody { public static var messageType: Slipway_V1_MessageType { .logChunk } }
extension Slipway_V1_BuildResult: WireBody { public static var messageType: Slipway_V1_MessageType { .buildResult } }
extension Slipway_V1_AbortJob: WireBody { public static var messageType: Slipway_V1_MessageType { .abortJob } }
extension Slipway_V1_ResultAck: WireBody { public static var messageType: Slipway_V1_MessageType { .resultAck } }
extension Slipway_V1_LogAck: WireBody { public static var messageType: Slipway_V1_MessageType { .logAck } }
extension Slipway_V1_ArtifactManifest: WireBody { public static var messageType: Slipway_V1_MessageType { .artifactManifest } }
extension Slipway_V1_PieceRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .pieceRequest } }
extension Slipway_V1_PieceData: WireBody { public static var messageType: Slipway_V1_MessageType { .pieceData } }
extension Slipway_V1_PieceHave: WireBody { public static var messageType: Slipway_V1_MessageType { .pieceHave } }
extension Slipway_V1_PieceChoke: WireBody { public static var messageType: Slipway_V1_MessageType { .pieceChoke } }
extension Slipway_V1_PieceInterest: WireBody { public static var messageType: Slipway_V1_MessageType { .pieceInterest } }
extension Slipway_V1_ManifestRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .manifestRequest } }
extension Slipway_V1_UploadBegin: WireBody { public static var messageType: Slipway_V1_MessageType { .uploadBegin } }
extension Slipway_V1_UploadCommit: WireBody { public static var messageType: Slipway_V1_MessageType { .uploadCommit } }
extension Slipway_V1_UploadAck: WireBody { public static var messageType: Slipway_V1_MessageType { .uploadAck } }
extension Slipway_V1_ArtifactQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .artifactQuery } }
extension Slipway_V1_ArtifactList: WireBody { public static var messageType: Slipway_V1_MessageType { .artifactList } }
extension Slipway_V1_ReplicationStatus: WireBody { public static var messageType: Slipway_V1_MessageType { .replicationStatus } }
extension Slipway_V1_TargetChange: WireBody { public static var messageType: Slipway_V1_MessageType { .targetChange } }
extension Slipway_V1_AgentStatus: WireBody { public static var messageType: Slipway_V1_MessageType { .agentStatus } }
extension Slipway_V1_AgentRegister: WireBody { public static var messageType: Slipway_V1_MessageType { .agentRegister } }
extension Slipway_V1_PeerListRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .peerListRequest } }
extension Slipway_V1_PeerKeyQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .peerKeyQuery } }
extension Slipway_V1_PeerKeyAnswer: WireBody { public static var messageType: Slipway_V1_MessageType { .peerKeyAnswer } }
extension Slipway_V1_PeerList: WireBody { public static var messageType: Slipway_V1_MessageType { .peerList } }
extension Slipway_V1_AgentTargets: WireBody { public static var messageType: Slipway_V1_MessageType { .agentTargets } }
extension Slipway_V1_RegionReport: WireBody { public static var messageType: Slipway_V1_MessageType { .regionReport } }
extension Slipway_V1_DeployRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .deployRequest } }
extension Slipway_V1_DeployReply: WireBody { public static var messageType: Slipway_V1_MessageType { .deployReply } }
extension Slipway_V1_RollbackRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .rollbackRequest } }
extension Slipway_V1_ServiceStatusQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .serviceStatusQuery } }
extension Slipway_V1_ServiceStatus: WireBody { public static var messageType: Slipway_V1_MessageType { .serviceStatus } }
extension Slipway_V1_ServiceListQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .serviceListQuery } }
extension Slipway_V1_ServiceList: WireBody { public static var messageType: Slipway_V1_MessageType { .serviceList } }
extension Slipway_V1_AuditQuery: WireBody { public static var messageType: Slipway_V1_MessageType { .auditQuery } }
extension Slipway_V1_AuditList: WireBody { public static var messageType: Slipway_V1_MessageType { .auditList } }
extension Slipway_V1_Event: WireBody { public static var messageType: Slipway_V1_MessageType { .event } }
extension Slipway_V1_SnapshotRequest: WireBody { public static var messageType: Slipway_V1_MessageType { .snapshotRequest } }
extension Slipway_V1_SnapshotEnd: WireBody { public static var messageType: Slipway_V1_MessageType { .snapshotEnd } }
