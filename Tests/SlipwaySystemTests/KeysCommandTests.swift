import Foundation
import SlipwayTestSupport
import Testing

/// `slipway keys` through the real binary.
@Suite("slipway keys", .enabled(if: Cluster.binary != nil))
struct KeysCommandTests {
    @Test("keys new writes a certificate and a 0600 secret that keys show reads; bad roles, names and folders are refused")
    func newAndShow() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-keys-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let slipway = "'\(Cluster.binary!)'"
        let made = try shellOutput("\(slipway) keys new --role region --name eu --out '\(directory)' 2>&1; echo \"exit $?\"")
        #expect(made.contains("identity: region/eu") && made.hasSuffix("exit 0"), "\(made)")
        let publicKey = try #require(made.split(separator: "\n").first { $0.hasPrefix("public key: ") }).dropFirst(12)
        #expect(publicKey.count == 40)
        let secret = directory + "/region-eu.secret"
        #expect((try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int) == 0o600)

        let shown = try shellOutput("\(slipway) keys show '\(directory)/region-eu.cert'")
        #expect(shown == "role: region\nname: eu\npublic key: \(publicKey)\nholds secret key: no", "\(shown)")
        let shownSecret = try shellOutput("\(slipway) keys show '\(secret)'")
        #expect(shownSecret.hasSuffix("holds secret key: yes"))
        #expect(!shownSecret.contains(try String(contentsOfFile: secret, encoding: .utf8).split(separator: "\"").dropLast().last!))

        for (arguments, expected) in [
            ("--role king --name eu", "--role: \"king\" is not one of"),
            ("--role region --name 'E U'", "--name: name \"E U\" is not"),
            ("--role region --name eu", "exists already"),
        ] {
            let output = try shellOutput("\(slipway) keys new \(arguments) --out '\(directory)' 2>&1; echo \"exit $?\"")
            #expect(output.contains(expected) && !output.hasSuffix("exit 0"), "\(arguments): \(output)")
        }
        let missing = try shellOutput("\(slipway) keys new --role ci --name gh --out '\(directory)/nope' 2>&1; echo \"exit $?\"")
        #expect(missing.contains("--out: \(directory)/nope/ci-gh.cert") && missing.hasSuffix("exit 1"), "\(missing)")
        let garbage = directory + "/garbage.cert"
        try "hello\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let unreadable = try shellOutput("\(slipway) keys show '\(garbage)' 2>&1; echo \"exit $?\"")
        #expect(unreadable.contains("garbage.cert line 1: unknown section") && unreadable.hasSuffix("exit 1"), "\(unreadable)")
    }
}
