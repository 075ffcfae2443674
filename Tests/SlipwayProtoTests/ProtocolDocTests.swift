import Foundation
import SlipwayProto
import Testing

/// docs/protocol.md must list every message type that proto/ declares, and the
/// generated Swift must declare the same number: the doc, the .proto source and
/// the committed code cannot drift apart silently.
@Suite("Protocol reference matches proto/")
struct ProtocolDocTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every MessageType in envelope.proto is documented and generated")
    func documented() throws {
        let proto = try String(contentsOf: Self.repo.appendingPathComponent("proto/slipway/v1/envelope.proto"), encoding: .utf8)
        let doc = try String(contentsOf: Self.repo.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        let names = proto.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("MESSAGE_TYPE_"), !trimmed.hasPrefix("MESSAGE_TYPE_UNSPECIFIED") else { return nil }
            return String(trimmed.prefix { $0 != " " && $0 != "=" })
        }
        #expect(names.count == Slipway_V1_MessageType.allCases.count - 1)
        let missing = names.filter { !doc.contains("`\($0)`") }
        #expect(missing.isEmpty, "docs/protocol.md does not document \(missing)")
    }
}
