@testable import SlipwayCoordinator
import SlipwayCore
import SlipwayProto
import Testing

@Suite("Submission validation")
struct SubmissionValidatorTests {
    func valid() -> Slipway_V1_SubmitBuild {
        var submit = Slipway_V1_SubmitBuild()
        submit.idempotencyKey = "ci-1"
        submit.repoURL = "https://example.invalid/repo.git"
        submit.commit = String(repeating: "a", count: 40)
        submit.artifactName = "svc"
        return submit
    }

    @Test("a normal submission passes; refs are accepted")
    func accepts() throws {
        try SubmissionValidator.validate(valid())
        var ref = valid()
        ref.commit = "release/1.2"
        try SubmissionValidator.validate(ref)
    }

    @Test("hostile fields are refused with a reason", arguments: [
        "key", "repo", "commit-option", "commit-dots", "name", "labels", "attempts", "control",
    ])
    func refuses(field: String) {
        var submit = valid()
        switch field {
        case "key": submit.idempotencyKey = ""
        case "repo": submit.repoURL = "--upload-pack=touch /tmp/pwned"
        case "commit-option": submit.commit = "--output=/etc/passwd"
        case "commit-dots": submit.commit = "main/../../x"
        case "name": submit.artifactName = "../svc"
        case "labels": submit.labels = Dictionary(uniqueKeysWithValues: (0..<40).map { ("k\($0)", "v") })
        case "attempts": submit.maxAttempts = 1_000
        default: submit.idempotencyKey = "key\nwith newline"
        }
        #expect(throws: SubmissionValidator.Invalid.self) { try SubmissionValidator.validate(submit) }
    }

    @Test("repository transports: remote helpers never, http only when allowed")
    func transports() throws {
        var submit = valid()
        submit.repoURL = "ext::sh -c touch% /tmp/pwned"
        let helper = #expect(throws: SubmissionValidator.Invalid.self) { try SubmissionValidator.validate(submit) }
        #expect(helper?.message.contains("remote helper") == true)
        submit.repoURL = "http://example.invalid/repo.git"
        let http = #expect(throws: SubmissionValidator.Invalid.self) { try SubmissionValidator.validate(submit) }
        #expect(http?.message.contains("does not build from") == true)
        try SubmissionValidator.validate(submit, transports: [.http])
        submit.repoURL = "/srv/repos/app"
        #expect(throws: SubmissionValidator.Invalid.self) { try SubmissionValidator.validate(submit, transports: [.https]) }
    }
}
