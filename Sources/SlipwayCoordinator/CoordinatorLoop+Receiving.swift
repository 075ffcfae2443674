import Logging
import SlipwayAuth
import SlipwayCore
import SlipwayMetrics
import SlipwayProto
import SlipwayStore
import SlipwayThreads
import SlipwayWire

/// What arrives on the intake and dispatch sockets: authorized, decoded once into
/// typed requests and queued as the turn's work, or answered and counted as refused.
extension CoordinatorLoop {
    func receiveIntake(_ socket: ZMQSocket, into work: inout [CoordinatorWork]) throws {
        for _ in 0..<256 {
            guard let (peer, message) = try codec.receiveRouted(from: socket, wait: .never, dropped: { intakeRejections.record($0, logger: logger) })
            else { return }
            let id = message.envelope.messageID
            let sender = DaemonSecurity.sender(of: socket)
            do throws(Rejection) {
                if let refusal = authorization.refusal(message.type, from: sender, on: socket) { throw refused(refusal, message.type, sender) }
                let request = try IntakeRequest.decode(message, regions: config.regions, transports: config.repoTransports)
                if let refusal = authorization.refusal(request, from: sender) { throw refused(refusal, message.type, sender) }
                if database.isUsable() {
                    work.append(.intake(peer: peer, id: id, request, sender: sender))
                } else {
                    send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(.unavailable, Self.unavailable), sender: config.id, inReplyTo: id))
                }
            } catch {
                intakeRejections.record(reason: error.code == .permissionDenied ? "permission_denied" : "bad_request", detail: error.message,
                                        logger: logger)
                send(.intake(peer), WireMessage(Slipway_V1_ErrorReply(error.code, error.message), sender: config.id, inReplyTo: id))
            }
        }
    }

    func receiveDispatch(_ socket: ZMQSocket, into work: inout [CoordinatorWork]) throws {
        for _ in 0..<256 {
            guard let (routingID, message) = try dispatchCodec.receiveRouted(from: socket, wait: .never,
                                                                     dropped: { dispatchRejections.record($0, logger: logger) })
            else { return }
            let sender = DaemonSecurity.sender(of: socket)
            do throws(Rejection) {
                if let refusal = authorization.refusal(message.type, from: sender, on: socket)
                    ?? authorization.refusal(workerRoutingID: routingID, from: sender) {
                    let rejection = refused(refusal, message.type, sender)
                    send(.worker(routingID), WireMessage(Slipway_V1_ErrorReply(rejection.code, rejection.message), sender: config.id,
                                                         inReplyTo: message.envelope.messageID))
                    throw rejection
                }
                let request = try DispatchRequest.decode(message, routingID: routingID)
                // Liveness is what was heard, database or not.
                registry.heard(String(decoding: routingID, as: UTF8.self), routingID: routingID, now: .now)
                if database.isUsable() {
                    work.append(.dispatch(routingID: routingID, request))
                } else {
                    database.deferred += 1  // the worker resends it (results, logs) or repeats it (credit)
                }
            } catch {
                dispatchRejections.record(reason: error.code == .permissionDenied ? "permission_denied" : "bad_request",
                                          detail: error.message, logger: logger)
            }
        }
    }

    static let unavailable = "the coordinator's database is unavailable; retry"

    /// Counts a refusal by role and type, queues it for the audit log, and hands it back to be answered and logged.
    func refused(_ refusal: Rejection, _ type: Slipway_V1_MessageType, _ sender: Identity?) -> Rejection {
        Authorization.count(type, from: sender)
        pendingAudit.append(AuditRecord(sender, action: "\(type)", object: "", outcome: .refused, detail: refusal.message))
        return refusal
    }
}
