import SlipwayConfig
import Testing

@Suite struct ConfigFileTests {
    @Test("sections become flags: strings, numbers, booleans, arrays; overridden keys are left out")
    func arguments() throws {
        let file = try ConfigFile(parsing: """
            # a region
            [region]
            name = "eu"            # trailing comment
            store-dir = '/var/lib/slipway/region'
            peer = ["us=tcp://us:7710", 'ap=tcp://ap:7710']
            replication-max-mibps = 400.5
            replication-window = 1_024

            [agent]
            seed-only = true
            service = ["web"]
            run = "web=exec \\"$SLIPWAY_BINARY\\" --port 8080"
            """)
        #expect(file.arguments(for: "region") == [
            "--name=eu", "--store-dir=/var/lib/slipway/region", "--peer=us=tcp://us:7710", "--peer=ap=tcp://ap:7710",
            "--replication-max-mibps=400.5", "--replication-window=1024"])
        #expect(file.arguments(for: "region", except: ["peer", "name"]) == [
            "--store-dir=/var/lib/slipway/region", "--replication-max-mibps=400.5", "--replication-window=1024"])
        #expect(file.arguments(for: "agent") == ["--seed-only", "--service=web", "--run=web=exec \"$SLIPWAY_BINARY\" --port 8080"])
        #expect(file.arguments(for: "worker").isEmpty)
    }

    @Test("malformed files are refused with the line and the reason", arguments: [
        ("name = \"eu\"", 1, "outside any section"),
        ("[region]\nname = eu", 2, "strings need quotes"),
        ("[region]\nname = \"eu", 2, "not closed"),
        ("[region]\nname = \"a\"\nname = \"b\"", 3, "set twice"),
        ("[region]\n[region]", 2, "appears twice"),
        ("[region\nname = \"a\"", 1, "section header"),
        ("[region]\npeer = [\"a\", \"b\"", 2, "expected ','"),
        ("[region]\nname \"eu\"", 2, "expected '='"),
        ("[region]\nname = \"eu\" extra", 2, "unexpected"),
        ("[region]\nname = \"\\q\"", 2, "unknown escape"),
        ("[region]\nx = [[1]]", 2, "arrays of arrays"),
        ("[region]\nx = [" + String(repeating: "[", count: 100_000), 2, "arrays of arrays"),
    ])
    func malformed(text: String, line: Int, reason: String) {
        #expect {
            _ = try ConfigFile(parsing: text)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.line == line && error.message.contains(reason)
        }
    }

    @Test("blank lines, comments and Windows line endings are fine")
    func tolerant() throws {
        let file = try ConfigFile(parsing: "\r\n# only a comment\r\n[worker]\r\nslots = 4\r\n\r\n")
        #expect(file.arguments(for: "worker") == ["--slots=4"])
    }
}
