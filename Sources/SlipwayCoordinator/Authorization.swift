import SlipwayAuth
import SlipwayCore
import SlipwayProto
import SlipwayWire

/// Who may send what to the coordinator: ``Permissions``' table of roles, and
/// the object rules that the message alone decides (a region reports only for
/// itself; a worker's id names its key). The rules that need the database (a
/// CI key cancels only its own jobs; a result comes only from the attempt's
/// worker) are checked where the request runs. Nothing is enforced when the
/// coordinator runs `--insecure`: then nobody is authenticated.
struct Authorization {
    let security: DaemonSecurity
    var enforced: Bool { security.isAuthenticated }

    /// The refusal for a message of `type` from `sender`, just received on `socket`, or nil to go on:
    /// its role may not send it, or its key was revoked since the connection was made.
    func refusal(_ type: Slipway_V1_MessageType, from sender: Identity?, on socket: ZMQSocket) -> Rejection? {
        security.refusal(type, from: sender, on: socket).map { Rejection(.permissionDenied, $0) }
    }

    /// The refusal for a decoded intake request from `sender` (whose role was allowed), or nil.
    func refusal(_ request: IntakeRequest, from sender: Identity?) -> Rejection? {
        guard enforced, let sender else { return nil }
        switch request {
        case .replication(_, let region), .regionReport(_, let region):
            guard region.rawValue == sender.name else {
                return Rejection(.permissionDenied, "\(sender) may report only for region \(sender.name), not for \(region)")
            }
            return nil
        default:
            return nil
        }
    }

    /// The refusal for a dispatch message from the worker connected as
    /// `routingID` (its worker id, `NAME@…` with a key) with `sender`'s key, or nil.
    func refusal(workerRoutingID routingID: [UInt8], from sender: Identity?) -> Rejection? {
        guard enforced, let sender else { return nil }
        let workerID = String(decoding: routingID, as: UTF8.self)
        guard WorkerID.keyName(of: workerID) == sender.name else {
            return Rejection(.permissionDenied, "\(sender) may speak only as a worker id starting \"\(sender.name)@\", not as \(SafeText.printable(workerID, limit: 200))")
        }
        return nil
    }

    /// Counts a refusal in `slipway_permission_denied_total`.
    static func count(_ type: Slipway_V1_MessageType, from sender: Identity?) {
        DaemonSecurity.countRefusal(daemon: "coordinator", type, from: sender)
    }
}
