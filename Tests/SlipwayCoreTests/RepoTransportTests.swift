import SlipwayCore
import Testing

@Suite("Repository transports")
struct RepoTransportTests {
    @Test("addresses are classified as git would reach them", arguments: [
        ("https://github.com/org/repo.git", RepoTransport.https), ("ssh://git@[::1]:22/r.git", .ssh),
        ("http://example.com/r", .http), ("ssh://git@example.com:2222/r.git", .ssh), ("git+ssh://example.com/r", .ssh),
        ("git@github.com:org/repo.git", .ssh), ("example.com:repo", .ssh), ("git://example.com/r", .git),
        ("/srv/repos/app", .file), ("file:///srv/repos/app", .file),
    ])
    func classified(address: String, transport: RepoTransport) throws {
        #expect(try RepoTransport(address: address) == transport)
    }

    @Test("remote helpers, unknown schemes and relative paths are refused with the reason", arguments: [
        ("ext::sh -c touch% /tmp/pwned", "remote helper"), ("fd::17", "remote helper"), ("https::example.com/r", "remote helper"),
        ("ftp://example.com/r", "not a transport"), ("rsync://example.com/r", "not a transport"),
        ("HTTPS://example.com/r", "case-sensitive"), ("Ext::sh -c x", "remote helper"),
        ("repo", "relative path"), ("./repo", "relative path"), ("dir/sub:thing", "relative path"), (":repo", "relative path"),
    ])
    func refused(address: String, reason: String) {
        let error = #expect(throws: InvalidValue.self) { try RepoTransport(address: address) }
        #expect(error?.rule.contains(reason) == true, "\(address): \(String(describing: error))")
    }

    @Test("the operator's list parses, and names what it does not know")
    func lists() throws {
        #expect(try RepoTransport.parseList("https, ssh") == [.https, .ssh])
        let unknown = #expect(throws: InvalidValue.self) { try RepoTransport.parseList("https,ext") }
        #expect(unknown?.text == "ext")
        #expect(throws: InvalidValue.self) { try RepoTransport.parseList(" , ") }
    }
}
