import Foundation
import SlipwayAuth
import SlipwayProto
import SlipwayStore
import Synchronization

/// About one page of vouches per region and second: a region asks a page per
/// report (one a second at most), and a region key that asks faster gets
/// nothing more. Half a second apart, so reports that queued unevenly still pass.
final class VouchPacer: Sendable {
    static let spacing: Duration = .milliseconds(500)
    private let last = Mutex<[String: ContinuousClock.Instant]>([:])

    /// Whether `region` may have a page now (and then it is counted).
    func allow(_ region: String, now: ContinuousClock.Instant = .now) -> Bool {
        last.withLock { last in
            if let previous = last[region], now - previous < Self.spacing { return false }
            last[region] = now
            return true
        }
    }
}

extension CoordinatorQueries {
    /// Services per page: 1,000 signatures take the coordinator about 50 ms, and fit a control message.
    static let vouchPage = 1_000

    /// The coordinator's signed word, now, that the target each machine of `region`
    /// follows is still current: the region's override where one is in force, else
    /// the global target (a cleared override is no target, and the global target is
    /// not what an overridden region runs). One page: up to `limit` services after
    /// `after`, in byte order (`COLLATE "C"`; the region echoes the last one back).
    /// None from a coordinator run `--insecure` (nothing is signed).
    /// - Returns: the page, and whether no services follow it.
    func vouches(_ db: PGConnection, region: String, after: String, limit: Int = Self.vouchPage) throws
        -> (vouches: [Slipway_V1_TargetVouch], last: Bool) {
        guard let signer = signer?.signer else { return ([], true) }
        let rows = try db.query("""
            SELECT t.service, t.region, t.version, t.artifact_digest,
                   (extract(epoch FROM t.set_at) * 1000000)::bigint AS set_us,
                   (extract(epoch FROM now()) * 1000000)::bigint AS now_us
            FROM targets t
            WHERE t.region IN ('', $1) AND t.artifact_digest IS NOT NULL AND t.service COLLATE "C" > $2
              AND NOT (t.region = '' AND EXISTS (
                  SELECT 1 FROM targets o WHERE o.service = t.service AND o.region = $1 AND o.artifact_digest IS NOT NULL))
            ORDER BY t.service COLLATE "C"
            LIMIT $3
            """, [.text(region), .text(after), .int(limit + 1)]).rows
        return (try rows.prefix(limit).map { row in
            var vouch = Slipway_V1_TargetVouch()
            vouch.service = try row.string("service")
            vouch.region = try row.string("region")
            vouch.version = UInt64(try row.int("version"))
            vouch.artifactDigest = try row.string("artifact_digest")
            vouch.setAtUnixMicros = Int64(try row.int("set_us"))
            vouch.vouchedAtUnixMicros = Int64(try row.int("now_us"))
            vouch.signature = Data(try TargetVouchSignature.sign(vouch, with: signer))
            return vouch
        }, rows.count <= limit)
    }
}
