import SlipwayCore
import Testing

@Suite("Endpoint: parsed once, errors name the setting")
struct EndpointTests {
    @Test("tcp, IPv6 and ipc endpoints parse and print back as libzmq takes them")
    func parsesGoodEndpoints() throws {
        #expect(try Endpoint(parsing: "tcp://127.0.0.1:7700").description == "tcp://127.0.0.1:7700")
        #expect(try Endpoint(parsing: "tcp://*:7700").host == "*")
        #expect(try Endpoint(parsing: "tcp://store.eu.example:7710").port == 7710)
        #expect(try Endpoint(parsing: "tcp://[::1]:7700").description == "tcp://[::1]:7700")
        #expect(try Endpoint(parsing: "ipc:///run/slipway/intake").transport == .ipc(path: "/run/slipway/intake"))
    }

    @Test("a missing scheme, a bad port or a bad host is refused with the reason and the flag")
    func refusesBadEndpoints() {
        let cases: [(String, String)] = [
            ("127.0.0.1:7845", "tcp://HOST:PORT or ipc://PATH"),
            ("tcp://127.0.0.1:77100", "outside 1–65535"),
            ("tcp://127.0.0.1:0", "outside 1–65535"),
            ("tcp://127.0.0.1:http", "not a number"),
            ("tcp://127.0.0.1", "needs HOST:PORT"),
            ("tcp://bad host:1", "not a host name"),
            ("tcp://:7700", "not a host name"),
            ("tcp://[zz]:1", "not an IPv6 address"),
            ("ipc://", "needs a socket path"),
            ("ipc://" + String(repeating: "a", count: 200), "at most 107"),
            ("inproc://x", "tcp://HOST:PORT or ipc://PATH"),
        ]
        for (text, reason) in cases {
            do {
                _ = try Endpoint(parsing: text, origin: "--store")
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.description.hasPrefix("--store: "), "\(error)")
                #expect(error.description.contains(reason), "\(text): \(error)")
            }
        }
    }

    @Test("the origin travels with the value but is not part of its identity")
    func originIsNotIdentity() throws {
        let plain = try Endpoint(parsing: "tcp://127.0.0.1:7720")
        let named = plain.named("--tracker")
        #expect(plain == named)
        #expect(named.labelled == "--tracker tcp://127.0.0.1:7720")
        #expect(Set([plain, named]).count == 1)
    }
}

@Suite("Checked values: digests, names, job ids")
struct CheckedValueTests {
    @Test("good values pass, bad ones say the rule")
    func rules() throws {
        let digest = String(repeating: "ab", count: 32)
        #expect(try Digest(digest).short == "sha256:abababababab")
        #expect(Digest(validating: digest.uppercased()) == nil)
        #expect(Digest(validating: String(digest.dropLast())) == nil)
        #expect(RegionName.isValid("eu-west.1"))
        #expect(!RegionName.isValid(".eu"))
        #expect(!RegionName.isValid(String(repeating: "e", count: 65)))
        #expect(ServiceName.isValid(String(repeating: "s", count: 128)))
        #expect(JobID.isValid("0b7c3f1e-5a2d-4c1b-9e8f-2a6d4c0b1e3f"))
        #expect(!JobID.isValid("0b7c3f1e5a2d4c1b9e8f2a6d4c0b1e3f"))
        do {
            _ = try RegionName("eu west\u{1}")
            Issue.record("accepted a bad region name")
        } catch {
            #expect(error.description == "'eu west' is not a region name: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit")
        }
    }
}

@Suite("Back-off and repeated-event logging")
struct BackoffTests {
    @Test("delays double from the first up to the cap, and start over after a success")
    func doubling() {
        var backoff = Backoff(initial: .milliseconds(500), cap: .seconds(3))
        #expect((0..<5).map { _ in backoff.failed() } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3)])
        #expect(backoff.failures == 5)
        backoff.succeeded()
        #expect(backoff.failed() == .milliseconds(500))
        for _ in 0..<200 { _ = backoff.failed() }
        #expect(backoff.failed() == .seconds(3))
    }

    @Test("a recurring event is reported at once, then once per interval with its count")
    func onceAnInterval() {
        let start = ContinuousClock.now
        var event = RepeatedEvent(interval: .seconds(60))
        #expect(event.occurred(now: start) == 1)
        for second in 1..<60 { #expect(event.occurred(now: start + .seconds(second)) == nil) }
        #expect(event.pending == 59)
        #expect(event.occurred(now: start + .seconds(60)) == 60)
        #expect(event.flush(now: start + .seconds(61)) == nil, "nothing pending")
        #expect(event.occurred(now: start + .seconds(70)) == nil)
        #expect(event.flush(now: start + .seconds(100)) == nil, "the interval has not passed")
        #expect(event.flush(now: start + .seconds(120)) == 1)
        event.reset()
        #expect(event.occurred(now: start + .seconds(121)) == 1)
    }
}
