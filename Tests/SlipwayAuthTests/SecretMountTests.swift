import Foundation
import Logging
import SlipwayAuth
import Testing

@Suite("Keys mounted as Kubernetes mounts Secrets")
struct SecretMountTests {
    /// Kubernetes writes a Secret's files into a hidden timestamped folder, points
    /// `..data` at it and makes each file a link `NAME -> ..data/NAME`; an update
    /// writes a new folder and swaps `..data` in one rename.
    static func mount(_ certificate: Certificate, in folder: String, version: String) throws {
        let hidden = folder + "/..\(version)"
        try FileManager.default.createDirectory(atPath: hidden, withIntermediateDirectories: false)
        let names = try certificate.write(to: hidden).map { ($0 as NSString).lastPathComponent }
        try FileManager.default.createSymbolicLink(atPath: folder + "/..data_tmp", withDestinationPath: "..\(version)")
        #expect(rename(folder + "/..data_tmp", folder + "/..data") == 0)
        for name in names where !FileManager.default.fileExists(atPath: folder + "/" + name) {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + name, withDestinationPath: "..data/" + name)
        }
    }

    @Test("a secret key and a trust folder behind links load; swapping ..data to a new key under the same name is seen at the next handshake")
    func linkedSecret() throws {
        let folder = try CertificateTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let identity = try Identity(role: .worker, name: "w1")
        let (first, second) = (try Certificate.generate(for: identity), try Certificate.generate(for: identity))
        try Self.mount(first, in: folder, version: "2026_12_02_v1")

        let secret = try Certificate.loadSecret(path: folder + "/worker-w1.secret")
        #expect(secret.publicKey == first.publicKey)
        let trust = try TrustDirectory(path: folder, logger: Logger(label: "slipway.test.auth"))
        #expect(trust.identity(of: first.publicKey) == identity)
        #expect(trust.count == 1, "the hidden folders are not read twice")

        usleep(20_000)  // past the file system's timestamp tick, so the folder's change shows
        try Self.mount(second, in: folder, version: "2026_12_02_v2")
        #expect(trust.identity(of: second.publicKey) == identity)
        #expect(trust.identity(of: first.publicKey) == nil, "the replaced key still got in")
        #expect(try Certificate.loadSecret(path: folder + "/worker-w1.secret").publicKey == second.publicKey)
    }
}
