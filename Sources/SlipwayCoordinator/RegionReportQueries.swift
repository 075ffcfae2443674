import SlipwayProto
import SlipwayStore

/// The regions' latest agent reports: one row per region, replaced by each report.
extension CoordinatorQueries {
    /// Replaces `report`'s region's latest agent report: one row per region, never one per machine.
    func recordRegionReport(_ db: PGConnection, _ report: Slipway_V1_RegionReport) throws {
        try db.query("""
            INSERT INTO region_reports (region, report, received_at) VALUES ($1, $2, now())
            ON CONFLICT (region) DO UPDATE SET report = excluded.report, received_at = excluded.received_at
            """, [.text(report.region), .bytes(try report.serializedBytes())])
    }

    /// `region`'s latest stored report, or nil.
    func regionReport(_ db: PGConnection, region: String) throws -> Slipway_V1_RegionReport? {
        try db.query("SELECT report FROM region_reports WHERE region = $1", [.text(region)]).rows.first
            .flatMap { try? Slipway_V1_RegionReport(serializedBytes: try $0.bytes("report")) }
    }

    /// Every region's latest agent report, stamped with when it arrived, by region name.
    func regionReports(_ db: PGConnection) throws -> [Slipway_V1_RegionReport] {
        try db.query("""
            SELECT report, (extract(epoch FROM received_at) * 1000000)::bigint AS received_us
            FROM region_reports ORDER BY region
            """).rows.compactMap { row in
            guard var report = try? Slipway_V1_RegionReport(serializedBytes: try row.bytes("report")) else { return nil }
            report.receivedAtUnixMicros = Int64(try row.int("received_us"))
            return report
        }
    }
}

extension Slipway_V1_RegionReport {
    /// The report with what concerns `service` only.
    func only(_ service: String) -> Slipway_V1_RegionReport {
        var report = self
        report.counts = counts.filter { $0.service == service }
        report.failures = failures.filter { $0.service == service }
        report.missing = missing.filter { $0.service == service }
        report.waves = waves.filter { $0.service == service }
        return report
    }
}
