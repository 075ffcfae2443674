import Crypto
import Foundation
@testable import SlipwayCoordinator
@testable import SlipwayAuth
import SlipwayProto
import SlipwayStore
import SlipwayTestSupport
import Testing

/// The coordinator's vouches, against PostgreSQL: which target of each service a
/// region's machines follow, paged in byte order, each signed.
@Suite("Vouches for a region's targets", .enabled(if: TestDatabase.isConfigured))
struct TargetVouchQueryTests {
    @Test("the override in force, else the global target, never a cleared override; pages in byte order end with vouches_last")
    func pages() async throws {
        let url = try await TestDatabase.create()
        defer { Task { await TestDatabase.drop(url) } }
        let db = try PGConnection(url: url, logger: TestDatabase.logger)
        let key = Curve25519.Signing.PrivateKey()
        let queries = CoordinatorQueries(defaultMaxAttempts: 3, defaultTimeoutSeconds: 60, retryBackoff: .seconds(1),
                                         signer: Certificate.SigningKey(publicKey: Array(key.publicKey.rawRepresentation),
                                                                        secretKey: Array(key.rawRepresentation)))
        let digest = { (n: Int) in String(repeating: String(n), count: 64) }
        for n in 1...3 {
            _ = try db.query("""
                INSERT INTO artifacts (digest, name, size, piece_size, piece_sha256, origin_region) VALUES ($1, 'a', 1, 1, '\\x00', 'eu')
                """, [.text(digest(n))])
        }
        // Byte order puts "B-x" and "Z" before "a": a collation that ignored case or punctuation would page them elsewhere.
        let rows: [(service: String, region: String, digest: String?, version: Int)] = [
            ("a.global", "", digest(1), 4),
            ("b.pinned", "", digest(1), 2), ("b.pinned", "eu", digest(2), 7),
            ("c.cleared", "", digest(3), 5), ("c.cleared", "eu", nil, 3),
            ("d.elsewhere", "", digest(1), 1), ("d.elsewhere", "us", digest(2), 2),
            ("B-x", "", digest(2), 1), ("Z", "", digest(3), 9),
        ]
        for row in rows {
            _ = try db.query("INSERT INTO targets (service, region, artifact_digest, version, set_by) VALUES ($1, $2, $3, $4, 'test')",
                             [.text(row.service), .text(row.region), .optional(row.digest), .int(row.version)])
        }
        var pages: [[Slipway_V1_TargetVouch]] = []
        var after = ""
        while true {
            let (page, last) = try queries.vouches(db, region: "eu", after: after, limit: 2)
            pages.append(page)
            guard !last, let next = page.last?.service, pages.count < 10 else { break }
            after = next
        }
        // Three pages, the last one full: vouches_last comes from looking one past the page, not from a short page.
        #expect(pages.map { $0.map(\.service) } == [["B-x", "Z"], ["a.global", "b.pinned"], ["c.cleared", "d.elsewhere"]])
        let all = pages.flatMap { $0 }
        #expect(all.map { "\($0.service)@\($0.region) v\($0.version)" }
                == ["B-x@ v1", "Z@ v9", "a.global@ v4", "b.pinned@eu v7", "c.cleared@ v5", "d.elsewhere@ v1"])
        #expect(all.allSatisfy { TargetVouchSignature.verify($0, publicKey: key.publicKey) })
        // The time set is the target's, exactly as its signed change carries it.
        let setAt = try db.query("SELECT (extract(epoch FROM set_at) * 1000000)::bigint AS us FROM targets WHERE service = 'Z'").rows.first?.int("us")
        #expect(all.first { $0.service == "Z" }.map { Int($0.setAtUnixMicros) } == setAt)
        #expect(all.allSatisfy { $0.vouchedAtUnixMicros >= $0.setAtUnixMicros })
        // A coordinator without a signing key vouches for nothing, and says so in one page.
        let unsigned = CoordinatorQueries(defaultMaxAttempts: 3, defaultTimeoutSeconds: 60, retryBackoff: .seconds(1))
        let (none, last) = try unsigned.vouches(db, region: "eu", after: "")
        #expect(none.isEmpty && last)
    }
}
