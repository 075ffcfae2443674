import Foundation
import SlipwayAuth
import SlipwayWire
import Testing

@Suite("Certificates and key files")
struct CertificateTests {
    static func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-auth-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    @Test("a new key pair is written as a public certificate (0644) and a secret file (0600) that read back the same")
    func roundTrip() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let certificate = try Certificate.generate(for: try Identity(role: .worker, name: "w1"))
        let paths = try certificate.write(to: folder)
        #expect(paths == [folder + "/worker-w1.cert", folder + "/worker-w1.secret"])
        #expect(try Self.mode(paths[0]) == 0o644)
        #expect(try Self.mode(paths[1]) == 0o600)
        let publicOnly = try Certificate.load(path: paths[0])
        #expect(publicOnly == certificate.publicPart)
        #expect(publicOnly.secretKey == nil)
        #expect(try Certificate.load(path: paths[1]) == certificate)
        #expect(!(try String(contentsOfFile: paths[0], encoding: .utf8)).contains(certificate.secretKey!.z85))
        // Never overwritten.
        let again = #expect(throws: AuthError.self) { try certificate.write(to: folder) }
        #expect(again?.message.contains("exists already") == true)
    }

    @Test("a coordinator's key pair carries an Ed25519 signing pair; its certificate carries only the public half")
    func signingKeys() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let coordinator = try Certificate.generate(for: try Identity(role: .coordinator, name: "main"))
        let signing = try #require(coordinator.signing)
        #expect(signing.signer != nil && signing.verifier != nil)
        #expect(try Certificate.generate(for: try Identity(role: .worker, name: "w1")).signing == nil)
        let paths = try coordinator.write(to: folder)
        let publicOnly = try Certificate.load(path: paths[0])
        #expect(publicOnly.signing?.publicKey == signing.publicKey && publicOnly.signing?.secretKey == nil)
        #expect(try Certificate.load(path: paths[1]).signing == signing)
        let secretText = CurveKey(bytes: signing.secretKey!)!.z85
        #expect(!(try String(contentsOfFile: paths[0], encoding: .utf8)).contains(secretText))
        // A signing secret that does not belong to the public half is refused.
        let other = try #require(try Certificate.generate(for: try Identity(role: .coordinator, name: "other")).signing)
        let mixed = try String(contentsOfFile: paths[1], encoding: .utf8)
            .replacingOccurrences(of: secretText, with: CurveKey(bytes: other.secretKey!)!.z85)
        let refused = #expect(throws: AuthError.self) { try Certificate(parsing: mixed, source: "mixed") }
        #expect(refused?.message.contains("signing secret-key does not belong") == true)
    }

    @Test("a secret file others can read is refused, naming the chmod")
    func looseSecret() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let certificate = try Certificate.generate(for: try Identity(role: .operator, name: "alice"))
        let secret = try certificate.write(to: folder)[1]
        chmod(secret, 0o644)
        let error = #expect(throws: AuthError.self) { try Certificate.load(path: secret) }
        #expect(error?.message.contains("chmod 600") == true)
    }

    static let key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

    @Test("malformed certificates are refused with the reason", arguments: [
        ("metadata\n    role = \"worker\"\n    name = \"w1\"\n", "no public-key"),
        ("metadata\n    role = \"king\"\n    name = \"w1\"\ncurve\n    public-key = \"\(key)\"\n", "is not one of"),
        ("metadata\n    role = \"worker\"\n    name = \"W 1\"\ncurve\n    public-key = \"\(key)\"\n", "is not 1-64 characters"),
        ("metadata\n    role = \"worker\"\n    name = \"w1\"\ncurve\n    public-key = \"short\"\n", "not 40 Z85"),
        ("metadata\n    role = worker\n", "double quotes"),
        ("    role = \"worker\"\n", "outside any section"),
        ("secrets\n", "unknown section"),
        ("metadata\n    role = \"worker\"\n    role = \"ci\"\n", "appears twice"),
        ("metadata\n    colour = \"red\"\n", "unknown setting"),
        ("metadata\n    role = \"worker\"\n    name = \"w1\"\ncurve\n    public-key = \"\(key)\"\n    secret-key = \"\(key)\"\n", "does not belong"),
    ])
    func malformed(text: String, reason: String) {
        let error = #expect(throws: AuthError.self) { try Certificate(parsing: text, source: "test.cert") }
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.hasPrefix("test.cert") == true)
    }

    @Test("a file past the size of any certificate is refused unread")
    func oversize() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/huge.cert"
        try String(repeating: "# padding\n", count: 1_000).write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: AuthError.self) { try Certificate.load(path: path) }
        #expect(error?.message.contains("more than a certificate's") == true)
    }

    @Test("identities travel as role/name and nothing else parses as one", arguments: [
        ("worker/w1", true), ("operator/alice.smith", true), ("ci/gh-actions_7", true),
        ("worker", false), ("king/w1", false), ("worker/", false), ("worker/W1", false), ("worker/a/b", false), ("/w1", false),
    ])
    func userIDs(text: String, valid: Bool) {
        let identity = Identity(userID: text)
        #expect((identity != nil) == valid)
        if let identity { #expect(identity.userID == text) }
    }
}
