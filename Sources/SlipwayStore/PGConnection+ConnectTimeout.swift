extension PGConnection {
    /// Seconds a connection attempt (and every reconnect) may take, unless the URL says otherwise.
    public static let defaultConnectTimeout = 5

    /// `url` with ``defaultConnectTimeout`` added when it sets none: libpq's default is to wait
    /// as long as TCP does (minutes) for a host that drops packets, and a coordinator waiting
    /// there can neither learn it lost its lock nor release its ports.
    static func withConnectTimeout(_ url: String) -> String {
        guard !url.contains("connect_timeout") else { return url }
        if url.hasPrefix("postgresql://") || url.hasPrefix("postgres://") {
            return url + (url.contains("?") ? "&" : "?") + "connect_timeout=\(defaultConnectTimeout)"
        }
        return url + " connect_timeout=\(defaultConnectTimeout)"
    }
}
