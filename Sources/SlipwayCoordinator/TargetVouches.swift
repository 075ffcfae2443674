import Foundation
import SlipwayAuth
import SlipwayProto
import SlipwayStore

extension CoordinatorQueries {
    /// The coordinator's signed word, now, that each current target a machine of
    /// `region` may be told to run (the global target and the region's override,
    /// cleared ones included) is still current: one page, services after `after`
    /// in byte order (`COLLATE "C"`, as the region compares them). None from a
    /// coordinator run `--insecure` (nothing is signed).
    func vouches(_ db: PGConnection, region: String, after: String) throws -> [Slipway_V1_TargetVouch] {
        guard let signer = signer?.signer else { return [] }
        let rows = try db.query("""
            SELECT service, region, version, (extract(epoch FROM now()) * 1000000)::bigint AS now_us FROM targets
            WHERE region IN ('', $1) AND service IN (
                SELECT DISTINCT service COLLATE "C" FROM targets
                WHERE region IN ('', $1) AND service COLLATE "C" > $2 ORDER BY 1 LIMIT $3)
            ORDER BY service COLLATE "C", region
            """, [.text(region), .text(after), .int(TargetVouchSignature.pageServices)]).rows
        return try rows.map { row in
            var vouch = Slipway_V1_TargetVouch()
            vouch.service = try row.string("service")
            vouch.region = try row.string("region")
            vouch.version = UInt64(try row.int("version"))
            vouch.vouchedAtUnixMicros = Int64(try row.int("now_us"))
            vouch.signature = Data(try TargetVouchSignature.sign(vouch, with: signer))
            return vouch
        }
    }
}
