import Foundation
import Testing
@testable import SlipwayConsole

@Suite struct ConsoleUsersTests {
    @Test func passwordsAndTokensCheckOutAndNothingElseDoes() throws {
        let (token, tokenLine) = ConsoleUsers.newToken(name: "ci-bot", role: .viewer)
        let text = "# users\n\n" + ConsoleUsers.userLine(name: "alice", role: .operator, password: "correct horse", cost: 4) + "\r\n" + tokenLine + "\n"
        let users = try ConsoleUsers(parsing: text)
        #expect(users.accounts.map(\.name) == ["alice", "ci-bot"])
        #expect(users.signIn(name: "alice", password: "correct horse")?.role == .operator)
        #expect(users.signIn(name: "alice", password: "correct horsE") == nil)
        #expect(users.signIn(name: "mallory", password: "correct horse") == nil)
        #expect(users.signIn(name: "ci-bot", password: token) == nil, "a token is not a password")
        #expect(users.account(bearer: token)?.name == "ci-bot")
        #expect(users.account(bearer: token + "x") == nil)
        #expect(!text.contains(token) && !text.contains("correct horse"), "no secret is stored as written")
    }

    @Test func malformedLinesAreRefusedWithTheirNumber() {
        let cases: [(String, Int)] = [
            ("user alice operator", 1),
            ("# ok\nuser alice admin $2b$04$abcdefghijklmnopqrstuuSbyhWxOi9J6Y4Jn3ZPsuLAQEVQ0Zk9K", 2),
            ("user al!ce viewer $2b$04$abcdefghijklmnopqrstuuSbyhWxOi9J6Y4Jn3ZPsuLAQEVQ0Zk9K", 1),
            ("user alice viewer plaintext-password", 1),
            ("token bot viewer sha256:XYZ", 1),
            ("group admins operator x", 1),
            ("token a viewer sha256:\(String(repeating: "a", count: 64))\ntoken a viewer sha256:\(String(repeating: "b", count: 64))", 2),
        ]
        for (text, line) in cases {
            #expect(throws: ConsoleUsers.Invalid.self) { try ConsoleUsers(parsing: text) }
            do { _ = try ConsoleUsers(parsing: text) } catch { #expect(error.line == line, "\(text): \(error)") }
        }
    }
}

@Suite struct SessionSignerTests {
    let signer = SessionSigner(key: Array(repeating: 7, count: 32))

    @Test func aCookieIsTrustedOnlyAsSignedAndUntilItExpires() throws {
        let cookie = signer.cookie(user: "alice", expires: 2_000)
        let session = try #require(signer.session(from: cookie, now: 1_000))
        #expect(session.user == "alice")
        #expect(signer.session(from: cookie, now: 2_000) == nil, "expired")
        let hex = { (name: String) in name.utf8.map { String(format: "%02x", $0) }.joined() }
        #expect(cookie.contains(".\(hex("alice")).") && !cookie.contains("alice"))
        #expect(signer.session(from: cookie.replacingOccurrences(of: hex("alice"), with: hex("admin")), now: 1_000) == nil,
                "another name breaks the MAC")
        let dotted = signer.cookie(user: "alice.smith@example.com", expires: 2_000)
        #expect(signer.session(from: dotted, now: 1_000)?.user == "alice.smith@example.com", "names with dots stay signed in")
        #expect(signer.session(from: cookie.replacingOccurrences(of: ".2000.", with: ".9999."), now: 1_000) == nil, "a later expiry breaks the MAC")
        #expect(SessionSigner(key: Array(repeating: 8, count: 32)).session(from: cookie, now: 1_000) == nil, "another console's key")
        for junk in ["", "v1", "v1.a.b.c.d", String(repeating: "x", count: 10_000), "v1.alice.2000.00.zz"] {
            #expect(signer.session(from: junk, now: 1_000) == nil)
        }
    }

    @Test func csrfTokensBelongToOneSession() throws {
        let first = try #require(signer.session(from: signer.cookie(user: "alice", expires: 2_000), now: 0))
        let second = try #require(signer.session(from: signer.cookie(user: "alice", expires: 2_000), now: 0))
        let token = signer.csrfToken(for: first)
        #expect(signer.checkCSRF(token, for: first))
        #expect(!signer.checkCSRF(token, for: second), "each sign-in has its own token")
        #expect(!signer.checkCSRF(nil, for: first) && !signer.checkCSRF("", for: first) && !signer.checkCSRF("zz", for: first))
    }
}

@Suite struct ConsoleInputTests {
    @Test func actionsAreParsedOnceWithEveryFieldChecked() throws {
        let digest = String(repeating: "ab", count: 32)
        #expect(try ConsoleAction.parse("deploy", service: "hello", fields: ["artifact": "sha256:" + digest, "plan": "canary"])
                == .deploy(service: .init("hello"), artifact: .init(digest), plan: "canary", region: nil, newService: false))
        #expect(try ConsoleAction.parse("pause", service: "hello", fields: [:]) == .control(service: .init("hello"), .pause))
        for (word, service, fields) in [("deploy", "hello", ["artifact": "xyz"]), ("deploy", "../x", ["artifact": digest]),
                                        ("deploy", "hello", ["artifact": digest, "region": "a b"]), ("explode", "hello", [:]),
                                        ("cancel", nil, ["job": "1; DROP TABLE jobs"]), ("deploy", "hello", ["artifact": digest, "plan": "<script>"])] {
            #expect(throws: ConsoleError.self) { try ConsoleAction.parse(word, service: service, fields: fields) }
        }
    }

    @Test func signInReturnsOnlyToPagesOfThisConsole() {
        #expect(ConsoleApp.safeNext("/services/hello") == "/services/hello")
        for hostile in ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "/login", "/x\r\nSet-Cookie: a=b",
                        "/\t/evil.example", "/ /evil.example", "/%09/evil.example".removingPercentEncoding!] {
            #expect(ConsoleApp.safeNext(hostile) == "/", "\(hostile)")
        }
    }

    @Test func textFromOutsideIsEscaped() {
        #expect(HTML.escape("<script>alert('x')</script> & \"q\"") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
        #expect(HTML.escape("a\u{1B}[31mred") == "a\u{FFFD}[31mred")
        #expect(HTML.urlComponent("a b/ü") == "a%20b%2F%C3%BC")
    }
}

@Test func aLogChunkEndsOnACharacterBoundary() {
    let text = Array("build ✓ done 🚀".utf8)
    #expect(LogText.completePrefix(text) == text.count)
    let check = Array("✓".utf8), rocket = Array("🚀".utf8)
    #expect(LogText.completePrefix(Array("a".utf8) + check.prefix(2)) == 1, "a cut ✓ waits for the next chunk")
    #expect(LogText.completePrefix(Array("a".utf8) + rocket.prefix(3)) == 1)
    #expect(LogText.completePrefix(Array("a".utf8) + rocket.prefix(1)) == 1)
    #expect(LogText.completePrefix([]) == 0)
    #expect(LogText.completePrefix([0x80, 0x80, 0x80, 0x80]) == 4, "garbage is shown, not held back for ever")
}

