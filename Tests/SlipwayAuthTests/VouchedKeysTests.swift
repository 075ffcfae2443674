import SlipwayAuth
import SlipwayWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The piece server's memory of what the region's tracker said about client keys.
@Suite("Vouched keys: the tracker's word on agent keys")
struct VouchedKeysTests {
    static func key(_ number: Int) -> CurveKey {
        CurveKey(bytes: withUnsafeBytes(of: UInt64(number).littleEndian) { Array($0) } + [UInt8](repeating: 7, count: 24))!
    }
    static let start = ContinuousClock.now

    /// Whether the wake descriptor is readable now.
    static func awake(_ vouches: VouchedKeys) -> Bool {
        var entry = pollfd(fd: vouches.wakeDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1
    }

    /// Asks about `key` at `now` and answers it, as the agent loop and the tracker would.
    static func vouch(_ vouches: VouchedKeys, _ key: CurveKey, _ identity: Identity?, now: ContinuousClock.Instant) {
        _ = vouches.verdict(key, now: now)
        _ = vouches.questions(now: now)
        vouches.answered(key, vouchedFor: identity, now: now)
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
        #expect(vouches.questions(now: t + .seconds(1)).isEmpty)
        #expect(vouches.verdict(key, now: t + .seconds(1)) == .asking, "no answer yet, not asked again yet")
        #expect(vouches.questions(now: t + .seconds(1)).isEmpty)

        let agent = try Identity(role: .agent, name: "m7")
        let before = vouches.generation
        vouches.answered(key, vouchedFor: agent, now: t + .seconds(1))
        #expect(vouches.generation > before, "waiting handshakes must hear of the answer")
        #expect(vouches.verdict(key, now: t + .seconds(2)) == .trusted(agent))
        _ = vouches.verdict(Self.key(2), now: t + .seconds(2))
        let tally = vouches.tally
        #expect(tally.trusted == 1 && tally.refused == 0 && tally.asking == 1, "\(tally)")
        #expect(vouches.admits(key, as: agent, now: t + .seconds(2)))
        #expect(!vouches.admits(key, as: try Identity(role: .agent, name: "m8"), now: t + .seconds(2)), "only as the agent named")
    }

    @Test("answers nobody asked for, and vouches for anything but an agent, admit nobody; the latest answer wins")
    func onlyAskedAgents() throws {
        let vouches = try VouchedKeys()
        let t = Self.start
        let m2 = try Identity(role: .agent, name: "m2")
        vouches.answered(Self.key(2), vouchedFor: m2, now: t)
        #expect(vouches.verdict(Self.key(2), now: t) == .asking, "an unsolicited answer was taken")
        Self.vouch(vouches, Self.key(3), try Identity(role: .worker, name: "w1"), now: t)
        #expect(vouches.verdict(Self.key(3), now: t) == .refused)
        vouches.answered(Self.key(2), vouchedFor: m2, now: t)
        vouches.answered(Self.key(2), vouchedFor: nil, now: t + .seconds(3))
        #expect(vouches.verdict(Self.key(2), now: t + .seconds(3)) == .refused, "a late trust must not hide a newer refusal")
    }

    @Test("a key the tracker listed as an agent's is trusted without a question; a refusal after it wins")
    func listed() throws {
        let vouches = try VouchedKeys()
        let key = Self.key(10), t = Self.start
        let agent = try Identity(role: .agent, name: "m10")
        vouches.listed(key, as: agent, now: t)
        vouches.listed(Self.key(11), as: try Identity(role: .worker, name: "w11"), now: t)
        #expect(vouches.verdict(key, now: t) == .trusted(agent))
        #expect(vouches.admits(key, as: agent, now: t))
        #expect(vouches.verdict(Self.key(11), now: t) == .asking, "only agents are listed")
        #expect(vouches.questions(now: t) == [Self.key(11)])
        // Asked again once stale, like any trust, and the newer refusal stands.
        #expect(vouches.verdict(key, now: t + VouchedKeys.trustedFor) == .trusted(agent))
        #expect(vouches.questions(now: t + VouchedKeys.trustedFor) == [key])
        vouches.answered(key, vouchedFor: nil, now: t + VouchedKeys.trustedFor)
        #expect(!vouches.admits(key, as: agent, now: t + VouchedKeys.trustedFor))
    }

    @Test("a stale trust holds while it is asked again, up to its limit; a revocation ends it, for messages too")
    func staleTrust() throws {
        let vouches = try VouchedKeys()
        let key = Self.key(4), t = Self.start
        let agent = try Identity(role: .agent, name: "m4")
        Self.vouch(vouches, key, agent, now: t)

        let stale = t + VouchedKeys.trustedFor
        #expect(vouches.verdict(key, now: stale) == .trusted(agent), "a trusted key must not wait for a slow answer")
        #expect(vouches.admits(key, as: agent, now: stale))
        #expect(vouches.questions(now: stale) == [key], "asked again once stale")
        #expect(vouches.questions(now: stale + .seconds(1)).isEmpty, "not on every message")

        // The tracker never answers: past the limit, nothing is admitted on the old word.
        let expired = t + VouchedKeys.trustHoldsFor
        #expect(vouches.verdict(key, now: expired) == .asking)
        #expect(!vouches.admits(key, as: agent, now: expired))
        vouches.answered(key, vouchedFor: agent, now: expired)
        #expect(vouches.admits(key, as: agent, now: expired), "vouched again, admitted again")

        vouches.answered(key, vouchedFor: nil, now: expired + .seconds(1))
        #expect(!vouches.admits(key, as: agent, now: expired + .seconds(1)), "the key left the region's trust folder")
        #expect(vouches.verdict(key, now: expired + .seconds(1)) == .refused)
    }

    @Test("a refusal holds a short while, then the key is asked about again; it never admits a message")
    func staleRefusal() throws {
        let vouches = try VouchedKeys()
        let key = Self.key(5), t = Self.start
        let agent = try Identity(role: .agent, name: "m5")
        Self.vouch(vouches, key, nil, now: t)
        #expect(vouches.verdict(key, now: t + .seconds(1)) == .refused)
        let later = t + VouchedKeys.refusedFor
        #expect(!vouches.admits(key, as: agent, now: later), "a stale refusal let a message through")
        #expect(vouches.verdict(key, now: later) == .asking)
        #expect(vouches.questions(now: later) == [key])
        vouches.answered(key, vouchedFor: agent, now: later)
        #expect(vouches.verdict(key, now: later) == .trusted(agent), "its certificate reached the region meanwhile")
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

    @Test("questions go out a query's worth at a time, oldest first, and not more often than the query interval")
    func batches() throws {
        let vouches = try VouchedKeys()
        let t = Self.start
        let keys = (0..<100).map(Self.key)
        for key in keys { _ = vouches.verdict(key, now: t) }
        #expect(vouches.questions(now: t) == Array(keys.prefix(VouchedKeys.perQuery)))
        #expect(Self.awake(vouches), "more questions wait")
        #expect(vouches.questions(now: t + .milliseconds(10)).isEmpty, "too soon")
        #expect(!Self.awake(vouches), "a paced query must not keep the loop spinning")
        #expect(vouches.questions(now: t + VouchedKeys.queryInterval) == Array(keys.dropFirst(VouchedKeys.perQuery)))
    }

    @Test("a flood of new keys is refused as busy past either bound, verdicts in use are never dropped for it, and expired ones make room")
    func bounded() throws {
        let vouches = try VouchedKeys(capacity: 200, maxQuestions: 50)
        var t = Self.start
        let agent = try Identity(role: .agent, name: "m9")
        let known = Self.key(1_000_000)
        Self.vouch(vouches, known, agent, now: t)
        for number in 0..<50 { #expect(vouches.verdict(Self.key(number), now: t) == .asking) }
        #expect(vouches.verdict(Self.key(50), now: t) == .busy, "past the questions' bound")
        #expect(vouches.verdict(known, now: t) == .trusted(agent))

        // Answered (refused) as fast as queries go, the flood fills the table.
        var number = 50
        while vouches.count < vouches.capacity {
            t += VouchedKeys.queryInterval
            for key in vouches.questions(now: t) { vouches.answered(key, vouchedFor: nil, now: t) }
            while vouches.verdict(Self.key(number), now: t) == .asking { number += 1 }
        }
        #expect(vouches.verdict(Self.key(number + 1), now: t) == .busy, "past the capacity")
        #expect(vouches.verdict(known, now: t) == .trusted(agent))
        #expect(vouches.admits(known, as: agent, now: t))
        // The refusals expire, and the sweep makes room; the trust in use stays.
        t += VouchedKeys.refusedFor
        #expect(vouches.verdict(Self.key(number + 2), now: t) == .asking)
        #expect(vouches.count < vouches.capacity)
        #expect(vouches.verdict(known, now: t) == .trusted(agent))
    }
}
