import SlipwayCore
import Testing

@Suite("Coordinator addresses")
struct CoordinatorAddressTests {
    @Test("HOST, HOST:PORT, [IPV6]:PORT and tcp:// name the intake; the other sockets follow it")
    func layouts() throws {
        let bare = try CoordinatorAddress(parsing: "coordinator.internal")
        #expect("\(bare.intake)" == "tcp://coordinator.internal:7700" && "\(bare.dispatch)" == "tcp://coordinator.internal:7701")
        #expect("\(bare.events)" == "tcp://coordinator.internal:7702" && "\(bare.snapshot)" == "tcp://coordinator.internal:7703")
        let ported = try CoordinatorAddress(parsing: "10.0.0.5:9000")
        #expect("\(ported.intake)" == "tcp://10.0.0.5:9000" && "\(ported.snapshot)" == "tcp://10.0.0.5:9003")
        #expect(try CoordinatorAddress(parsing: "tcp://10.0.0.5:9000") == ported)
        #expect("\(try CoordinatorAddress(parsing: "[::1]:9000").dispatch)" == "tcp://[::1]:9001")
        #expect("\(try CoordinatorAddress(parsing: "[::1]").intake)" == "tcp://[::1]:7700")
        #expect("\(try CoordinatorAddress(parsing: "::1").intake)" == "tcp://[::1]:7700")
    }

    @Test("malformed addresses say what is wrong and name where they came from", arguments: [
        ("", "not a host name"), ("host:", "port '' is not a number"), ("host:http", "not a number"), ("host:0", "outside 1–65535"),
        ("host:65533", "leaves no room"), ("*", "binds every interface"), ("tcp://*:7700", "binds every interface"),
        ("ipc:///run/c", "HOST, HOST:PORT or tcp://HOST:PORT"), ("bad host", "not a host name"), ("[::1", "IPv6"),
    ])
    func malformed(text: String, reason: String) {
        do {
            _ = try CoordinatorAddress(parsing: text, origin: "--coordinator")
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.description.hasPrefix("--coordinator: ") && error.description.contains(reason), "\(text): \(error)")
        }
    }
}

@Suite("Digest prefixes")
struct DigestPrefixTests {
    @Test("8 to 64 lowercase hex characters; the full 64 is a digest")
    func rule() {
        #expect(DigestPrefix.isValid("deadbeef") && !DigestPrefix.isValid("deadbee") && !DigestPrefix.isValid("DEADBEEF"))
        #expect(!DigestPrefix.isValid(String(repeating: "a", count: 65)) && !DigestPrefix.isValid("deadbeeg"))
        #expect(DigestPrefix(validating: "deadbeef")?.full == nil)
        #expect(DigestPrefix(validating: String(repeating: "a", count: 64))?.full?.rawValue == String(repeating: "a", count: 64))
    }
}
