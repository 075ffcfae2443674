import SlipwayAuth

/// One piece of work for a turn of the coordinator's transaction.
enum CoordinatorWork {
    case intake(peer: [UInt8], id: String, IntakeRequest, sender: Identity?)
    case dispatch(routingID: [UInt8], DispatchRequest)
    case task(String, (inout Batch) throws -> Void)

    /// A region's report: rollouts are judged again once it is stored.
    var isRegionReport: Bool {
        if case .intake(_, _, .regionReport, _) = self { true } else { false }
    }
}
