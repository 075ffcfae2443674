/// Everything a region controller needs to run.
public struct RegionConfig: Sendable {
    /// The region's name, e.g. `eu-west`.
    public var region: String
    /// Folder of the regional blob store.
    public var storePath: String
    /// ROUTER for uploads and downloads.
    public var storeEndpoint: String = "tcp://127.0.0.1:7710"
    /// This process's name on the wire.
    public var id: String

    /// A configuration with the default endpoint.
    public init(region: String, storePath: String, id: String) {
        self.region = region
        self.storePath = storePath
        self.id = id
    }
}
