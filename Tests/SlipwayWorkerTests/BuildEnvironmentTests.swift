@testable import SlipwayWorker
import Testing

@Suite("Build environment")
struct BuildEnvironmentTests {
    @Test("folders go first on PATH; variables are added, a later one of a name wins; Slipway's own stay Slipway's")
    func applied() throws {
        var environment = BuildEnvironment()
        try environment.prepend(path: "/opt/swift/usr/bin")
        try environment.add("GOFLAGS=-mod=mod", secret: false)
        try environment.add("GOFLAGS=-mod=vendor", secret: false)
        try environment.add("LANG=en_US.UTF-8", secret: false)
        try environment.add("API_TOKEN=s3cr3t=with=equals", secret: true)
        let result = environment.applied(to: ["HOME": "/work/job", "SLIPWAY_COMMIT": "abc"])
        #expect(result["PATH"] == "/opt/swift/usr/bin:/usr/local/bin:/usr/bin:/bin")
        #expect(result["GOFLAGS"] == "-mod=vendor" && result["LANG"] == "en_US.UTF-8" && result["API_TOKEN"] == "s3cr3t=with=equals")
        #expect(result["HOME"] == "/work/job" && result["SLIPWAY_COMMIT"] == "abc")
        #expect(environment.described == ["PATH=/opt/swift/usr/bin:/usr/local/bin:/usr/bin:/bin", "GOFLAGS=-mod=vendor",
                                          "LANG=en_US.UTF-8", "API_TOKEN=(secret)"])
        #expect(!environment.described.joined().contains("s3cr3t"))
        #expect(BuildEnvironment().applied(to: [:])["LANG"] == "C.UTF-8")
    }

    @Test("names and values that would break a build or hide Slipway's variables are refused, saying why", arguments: [
        ("PATH=/x", "--path"), ("HOME=/x", "workspace"), ("SLIPWAY_COMMIT=x", "set by Slipway"), ("1ABC=x", "not a variable name"),
        ("A-B=x", "not a variable name"), ("=x", "not a variable name"), ("NOEQUALS", "not NAME=VALUE"), ("A=line\nbreak", "one line"),
    ])
    func refused(setting: String, reason: String) {
        var environment = BuildEnvironment()
        #expect { try environment.add(setting, secret: false) } throws: { "\($0)".contains(reason) }
    }

    @Test("a secret too short to mask, a relative folder and a refused line of a file are named")
    func moreRefusals() {
        var environment = BuildEnvironment()
        #expect { try environment.add("PIN=123", secret: true) } throws: { "\($0)".contains("fewer than 4") }
        #expect { try environment.add("TOKEN=abcd1234 ", secret: true) } throws: { "\($0)".contains("blanks") }
        #expect { try environment.prepend(path: "bin") } throws: { "\($0)".contains("absolute") }
        #expect { try environment.prepend(path: "/a:/b") } throws: { "\($0)".contains("absolute") }
        #expect { try environment.add("NOEQUALS", secret: true) } throws: { !"\($0)".contains("NOEQUALS") }
        #expect { try environment.load(file: "# tools\nA=1\n\nPATH=/x\n") } throws: { "\($0)".hasPrefix("line 4: ") }
    }

    @Test("an environment file: variables, secrets, folders, comments and Windows line endings")
    func file() throws {
        var environment = BuildEnvironment()
        try environment.load(file: "# toolchains\r\npath /opt/go/bin\r\n  GOPATH=/cache/go\r\nsecret NPM_TOKEN=abcd-efgh  \r\n\r\n")
        #expect(environment.path == ["/opt/go/bin"])
        #expect(environment.described == ["PATH=/opt/go/bin:/usr/local/bin:/usr/bin:/bin", "GOPATH=/cache/go", "NPM_TOKEN=(secret)"])
        #expect(environment.secretValues == ["abcd-efgh"])
    }
}

@Suite("Secret masking in build logs")
struct SecretMaskTests {
    /// Feeds `text` in pieces of `size` bytes and returns what was shown.
    func shown(_ text: String, secrets: [String], pieces size: Int) -> String {
        var mask = SecretMask(secrets)
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        for start in stride(from: 0, to: bytes.count, by: size) {
            out += mask.feed(Array(bytes[start..<min(start + size, bytes.count)]))
        }
        out += mask.feed([], final: true)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("a secret is masked however the reads cut it; text that only starts like one comes out whole", arguments: [1, 2, 3, 5, 7, 64])
    func cutAnywhere(size: Int) {
        let text = "token=s3cr3t-t0ken; again s3cr3t-t0ken! almost s3cr3t-t0; longer s3cr3t-t0ken-2 end s3cr"
        let expected = "token=***; again ***! almost s3cr3t-t0; longer *** end s3cr"
        #expect(shown(text, secrets: ["s3cr3t-t0ken", "s3cr3t-t0ken-2"], pieces: size) == expected)
    }

    @Test("no secrets: bytes pass as they are, nothing held back")
    func noSecrets() {
        var mask = SecretMask([])
        #expect(mask.feed(Array("abc".utf8)) == Array("abc".utf8))
    }
}
