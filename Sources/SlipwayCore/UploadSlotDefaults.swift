/// Upload slots given when no flag says otherwise: `slipway agent --upload-slots`,
/// `slipway region --store-upload-slots`, and the simulator that models both.
/// Measured in docs/benchmarks.md ("A store slot holder keeps the store sending").
public enum UploadSlotDefaults {
    /// Peers an agent uploads to at once.
    public static let agent = 4
    /// Agents a regional store sends pieces to at once.
    public static let store = 4
}
