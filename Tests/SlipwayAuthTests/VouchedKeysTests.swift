import SlipwayAuth
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The piece server's memory of what the region's tracker said about client keys.
@Suite("Vouched keys: the tracker's word on agent keys")
struct VouchedKeysTests {
    static func key(_ byte: UInt8) -> CurveKey { CurveKey(bytes: [UInt8](repeating: byte, count: 32))! }
    static let start = ContinuousClock.now

    /// Whether the wake descriptor is readable now.
    static func awake(_ vouches: VouchedKeys) -> Bool {
        var entry = pollfd(fd: vouches.wakeDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1
    }

    @Test("an unknown key is asked about once, waits, and is admitted only as the agent the tracker named")
    func askOnce() throws {
        let vouches = try VouchedKeys()
        let key = Self.key(1), t = Self.start
        #expect(!Self.awake(vouches))
        #expect(vouches.verdict(key, now: t) == .asking)
        #expect(vouches.verdict(key, now: t) == .asking)
        #expect(Self.awake(vouches), "a question must wake the agent loop")
        #expect(vouches.questions(now: t) == [key], "asked once, however many handshakes carried it")
        #expect(!Self.awake(vouches))
        #expect(vouches.questions(now: t).isEmpty)
        #expect(vouches.verdict(key, now: t + .seconds(1)) == .asking, "no answer yet, not asked again yet")
        #expect(vouches.questions(now: t + .seconds(1)).isEmpty)

        let agent = try Identity(role: .agent, name: "m7")
        vouches.answered(key, vouchedFor: agent, now: t + .seconds(1))
        #expect(vouches.verdict(key, now: t + .seconds(2)) == .trusted(agent))
        #expect(vouches.questions(now: t + .seconds(2)).isEmpty)
    }

    @Test("answers nobody asked for, and vouches for anything but an agent, admit nobody")
    func onlyAskedAgents() throws {
        let vouches = try VouchedKeys()
        let t = Self.start
        vouches.answered(Self.key(2), vouchedFor: try Identity(role: .agent, name: "m2"), now: t)
        #expect(vouches.verdict(Self.key(2), now: t) == .asking, "an unsolicited answer was taken")
        #expect(vouches.verdict(Self.key(3), now: t) == .asking)
        _ = vouches.questions(now: t)
        vouches.answered(Self.key(3), vouchedFor: try Identity(role: .worker, name: "w1"), now: t)
        #expect(vouches.verdict(Self.key(3), now: t) == .refused)
        vouches.answered(Self.key(2), vouchedFor: nil, now: t)
        #expect(vouches.verdict(Self.key(2), now: t) == .refused)
    }

    @Test("a stale trust holds while it is asked again, and a revocation ends it; a stale refusal is asked again first")
    func staleVerdicts() throws {
        let vouches = try VouchedKeys()
        let trusted = Self.key(4), refused = Self.key(5), t = Self.start
        let agent = try Identity(role: .agent, name: "m4")
        _ = vouches.verdict(trusted, now: t)
        _ = vouches.verdict(refused, now: t)
        #expect(Set(vouches.questions(now: t)) == [trusted, refused])
        vouches.answered(trusted, vouchedFor: agent, now: t)
        vouches.answered(refused, vouchedFor: nil, now: t)

        let later = t + VouchedKeys.freshFor
        #expect(vouches.verdict(trusted, now: later) == .trusted(agent), "a connection of a trusted key must not be cut for a slow answer")
        #expect(vouches.verdict(refused, now: later) == .asking)
        #expect(Set(vouches.questions(now: later)) == [trusted, refused])
        #expect(vouches.verdict(trusted, now: later + .seconds(1)) == .trusted(agent))
        #expect(vouches.questions(now: later + .seconds(1)).isEmpty, "asked again on every message")

        vouches.answered(trusted, vouchedFor: nil, now: later + .seconds(1))
        #expect(vouches.verdict(trusted, now: later + .seconds(1)) == .refused, "the key left the region's trust folder")
    }

    @Test("a question the tracker never answered is asked again after a while, not on every handshake")
    func unansweredAskedAgain() throws {
        let vouches = try VouchedKeys()
        let key = Self.key(6), t = Self.start
        _ = vouches.verdict(key, now: t)
        #expect(vouches.questions(now: t) == [key])
        _ = vouches.verdict(key, now: t + .milliseconds(500))
        #expect(vouches.questions(now: t + .milliseconds(500)).isEmpty)
        _ = vouches.verdict(key, now: t + VouchedKeys.askAgainAfter)
        #expect(vouches.questions(now: t + VouchedKeys.askAgainAfter) == [key])
    }

    @Test("questions go out at most a query's worth at a time, oldest first")
    func batches() throws {
        let vouches = try VouchedKeys()
        let t = Self.start
        let keys = (0..<UInt8(100)).map(Self.key)
        for key in keys { _ = vouches.verdict(key, now: t) }
        #expect(vouches.questions(now: t) == Array(keys.prefix(VouchedKeys.perQuery)))
        #expect(Self.awake(vouches), "more questions wait")
        #expect(vouches.questions(now: t) == Array(keys.dropFirst(VouchedKeys.perQuery)))
        #expect(!Self.awake(vouches))
    }
}
