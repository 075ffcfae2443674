extension UInt64 {
    /// The sum, or `.max` where it would overflow: counts a peer reports must not trap.
    public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
