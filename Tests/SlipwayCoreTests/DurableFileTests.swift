import Foundation
import SlipwayCore
import Testing

@Suite("Durable small files")
struct DurableFileTests {
    @Test("a write replaces the file whole and leaves no temporary behind; a missing folder is an error naming the step")
    func replacesWhole() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("targets.json")
        try DurableFile.write(Data("first".utf8), to: file)
        try DurableFile.write(Data("second, longer".utf8), to: file)
        #expect(try String(contentsOf: file, encoding: .utf8) == "second, longer")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["targets.json"])

        let nowhere = folder.appendingPathComponent("missing/targets.json")
        let error = #expect(throws: DurableFile.Failure.self) { try DurableFile.write(Data("x".utf8), to: nowhere) }
        #expect(error?.description.hasPrefix("create .targets.json.") == true, "\(String(describing: error))")
    }
}
