/// Where a refusal happened, as the audit log names it: written by the daemon
/// that refused (or, for an agent's piece server, by its region's tracker) and
/// read back by the coordinator, which accepts only places of the reporting region.
public enum RefusalPlace {
    public static func store(region: String) -> String { "store of region \(region)" }
    public static func tracker(region: String) -> String { "tracker of region \(region)" }
    public static func pieceServer(machine: String, region: String) -> String { "piece server of machine \(machine) in region \(region)" }

    /// The machine a piece-server place in `region` names, or nil when `place` is not one.
    public static func pieceServerMachine(_ place: String, region: String) -> String? {
        let (prefix, suffix) = ("piece server of machine ", " in region \(region)")
        guard place.hasPrefix(prefix), place.hasSuffix(suffix), place.count > prefix.count + suffix.count else { return nil }
        return String(place.dropFirst(prefix.count).dropLast(suffix.count))
    }
}
