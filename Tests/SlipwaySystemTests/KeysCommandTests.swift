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

/// `slipway console-users`: lines written without secrets, replaced by name, and a file it cannot read left alone.
@Suite("Console users file", .enabled(if: Cluster.isConfigured))
struct ConsoleUsersCommandTests {
    @Test func addReplacesByNameAndNeverOverwritesWhatItCannotRead() async throws {
        let bin = try #require(Cluster.binary)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("users-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("users").path
        // A hand-written file with a tab-separated line for alice.
        let token = try await shellOutput("'\(bin)' console-users token --file '\(file)' --name bot --role viewer")
        try (String(contentsOfFile: file, encoding: .utf8) + "user\talice\tviewer\t$2b$04$abcdefghijklmnopqrstuuSbyhWxOi9J6Y4Jn3ZPsuLAQEVQ0Zk9K\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await runShell("printf 'new password\\n' | '\(bin)' console-users add --file '\(file)' --name alice --role operator --cost 10 >/dev/null") == 0)
        let listed = try await shellOutput("'\(bin)' console-users list --file '\(file)'")
        #expect(listed == "token bot viewer\nuser alice operator", "alice replaced, not added twice: \(listed)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(!text.contains("new password") && !text.contains(token))
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        // Not UTF-8: refused, and the file is as it was.
        try Data([0x75, 0x73, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: file))
        #expect(try await runShell("printf 'another one\\n' | '\(bin)' console-users add --file '\(file)' --name carol --role viewer --cost 10 2>/dev/null") != 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data([0x75, 0x73, 0xFF, 0xFE, 0x0A]))
    }
}
