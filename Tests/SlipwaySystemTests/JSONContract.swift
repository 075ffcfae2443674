import Foundation

/// docs/json-output.md read as a schema: each `### name` section's table of
/// keys and types. A command's output is checked against it key for key, so
/// the page cannot drift from the code.
struct JSONContract {
    /// Keys and their types, per object name, in the page's order.
    let objects: [String: [(key: String, type: String)]]

    init(markdown: String) {
        var objects: [String: [(key: String, type: String)]] = [:]
        var current: String?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("### ") {
                current = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces)
                objects[current!] = []
                continue
            }
            if line.hasPrefix("## ") { current = nil }
            guard let current, line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            objects[current]!.append((key: cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")), type: cells[2]))
        }
        self.objects = objects
    }

    static func load() throws -> JSONContract {
        JSONContract(markdown: try String(contentsOf: OpsFilesTests.root.appendingPathComponent("docs/json-output.md"), encoding: .utf8))
    }

    /// Every way `value` breaks the documented object `name`; empty when it keeps it.
    func violations(of value: Any, as name: String, at path: String = "$") -> [String] {
        check(value, type: name, at: path)
    }

    private func check(_ value: Any, type: String, at path: String) -> [String] {
        if type.hasSuffix(" or null") {
            return value is NSNull ? [] : check(value, type: String(type.dropLast(8)), at: path)
        }
        if value is NSNull { return ["\(path): null, documented as \(type)"] }
        if type.hasPrefix("array of ") {
            guard let items = value as? [Any] else { return ["\(path): not an array (\(type))"] }
            return items.enumerated().flatMap { check($0.element, type: String(type.dropFirst(9)), at: "\(path)[\($0.offset)]") }
        }
        switch type {
        case "string": return value is String ? [] : ["\(path): not a string"]
        case "boolean": return Self.isBool(value) ? [] : ["\(path): not a boolean"]
        case "integer": return !Self.isBool(value) && (value as? NSNumber).map { $0.doubleValue == $0.doubleValue.rounded() } == true ? [] : ["\(path): not an integer"]
        case "number": return !Self.isBool(value) && value is NSNumber ? [] : ["\(path): not a number"]
        default:
            guard let keys = objects[type] else { return ["\(path): the page documents no object '\(type)'"] }
            guard let object = value as? [String: Any] else { return ["\(path): not an object (\(type))"] }
            var problems: [String] = []
            let documented = Set(keys.map(\.key))
            for extra in Set(object.keys).subtracting(documented).sorted() { problems.append("\(path).\(extra): not documented for \(type)") }
            for (key, keyType) in keys {
                guard let item = object[key] else {
                    problems.append("\(path).\(key): missing (\(type) always has it)")
                    continue
                }
                problems += check(item, type: keyType, at: "\(path).\(key)")
            }
            return problems
        }
    }

    /// JSONSerialization gives every number as NSNumber, and `1 is Bool` holds
    /// for them; only `true` and `false` come as the boolean class.
    private static func isBool(_ value: Any) -> Bool {
        "\(type(of: value))".contains("Boolean")
    }
}
