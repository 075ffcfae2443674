import Foundation
import SlipwayJSON
import SlipwayProto
import Testing

@Suite("JSON values")
struct JSONValueTests {
    @Test("keys keep their order; strings are escaped so any parser reads them back exactly")
    func rendering() throws {
        let hostile = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7F} line-sep \u{2028} emoji 🚀"
        let value = JSONValue.object(["z": "last?", "a": .string(hostile), "n": .null, "list": [true, .integer(-3), .number(12.5)]])
        let text = value.rendered
        #expect(text.hasPrefix("{\"z\":\"last?\",\"a\":"), "\(text)")
        #expect(!text.contains("\n") && !text.contains("\u{0}"), "one line, no raw control characters: \(text)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(parsed["a"] as? String == hostile)
        #expect(parsed["n"] is NSNull)
        #expect((parsed["list"] as? [Any])?.count == 3)
    }

    @Test("whole numbers print without a fraction, others as they are; infinities become null")
    func numbers() {
        #expect(JSONValue.number(50).rendered == "50")
        #expect(JSONValue.number(0.1).rendered == "0.1")
        #expect(JSONValue.number(.infinity).rendered == "null")
        #expect(JSONValue.integer(.max).rendered == "9223372036854775807")
    }

    @Test("times are RFC 3339 UTC with microseconds; 0 (not yet) is null")
    func times() {
        #expect(JSONValue.time(unixMicros: 1_796_178_821_000_042) == .string("2026-12-02T02:33:41.000042Z"))
        #expect(JSONValue.time(unixMicros: 0) == .null)
    }

    @Test("a job reads with lowercase statuses, numbers as numbers, and null for what proto3 leaves empty")
    func job() throws {
        var info = Slipway_V1_JobInfo()
        info.jobID = "j1"
        info.status = .succeeded
        info.attempt = 2
        info.maxAttempts = 3
        info.createdAtUnixMicros = 1_796_178_821_000_000
        let text = info.json.rendered
        #expect(text.contains("\"status\":\"succeeded\"") && text.contains("\"attempt\":2") && text.contains("\"worker\":null"), "\(text)")
        #expect(text.contains("\"started_at\":null") && text.contains("\"created_at\":\"2026-12-02T02:33:41.000000Z\""), "\(text)")
    }
}
