import Foundation
import Testing

/// docs/console-api.yaml names every route the API registers, and nothing else:
/// the routes are read from the source that registers them, the paths from the document.
@Test func theOpenAPIDocumentListsEveryRoute() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(contentsOf: root.appendingPathComponent("Sources/SlipwayConsole/APIRoutes.swift"), encoding: .utf8)
    let document = try String(contentsOf: root.appendingPathComponent("docs/console-api.yaml"), encoding: .utf8)
    var registered: Set<String> = ["GET /healthz", "GET /metrics"]
    for line in source.split(separator: "\n") {
        guard let call = line.range(of: "api.get(\"") ?? line.range(of: "api.post(\"") else { continue }
        let method = line[call].contains("get") ? "GET" : "POST"
        let path = line[call.upperBound...].prefix { $0 != "\"" }
        // `:name` in Hummingbird is `{name}` in OpenAPI; the generic action route stands for deploy and rollback.
        let openAPI = "/api/v1/" + path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            .joined(separator: "/")
        if openAPI == "/api/v1/services/{service}/{action}" {
            registered.formUnion(["POST /api/v1/services/{service}/deploy", "POST /api/v1/services/{service}/rollback"])
        } else {
            registered.insert("\(method) \(openAPI)")
        }
    }
    var documented: Set<String> = []
    var path: String?
    for line in document.split(separator: "\n") {
        if line.hasPrefix("  /"), line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
        else if !line.hasPrefix("   ") { path = nil }
        if let path, line == "    get:" || line == "    post:" {
            documented.insert("\(line.contains("get") ? "GET" : "POST") \(path)")
        }
    }
    #expect(registered == documented, "in code only: \(registered.subtracting(documented).sorted()); in the document only: \(documented.subtracting(registered).sorted())")
}
