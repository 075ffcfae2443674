extension Dictionary where Key: Comparable {
    /// The entries by key. A loop whose order decides anything (events scheduled,
    /// messages sent, state changed on the way) goes this way: the dictionary's own
    /// order is seeded per process, and a seeded simulation of the code must be
    /// decided by its seed alone.
    public var inKeyOrder: [(key: Key, value: Value)] { sorted { $0.key < $1.key } }
}
