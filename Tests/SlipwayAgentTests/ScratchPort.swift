/// A port for a server these tests bind in-process: above Linux's ephemeral range
/// (32768–60999, which the outgoing connections of parallel system tests take) and
/// outside the 20000–32000 that `freeLoopbackPort` hands to test clusters.
func scratchPort() -> Int { Int.random(in: 61_000..<65_000) }
