import Foundation
import SlipwayTestSupport
import Testing

/// libslipway, the C producer library, as a C user meets it: installed with
/// ops/install-libslipway, compiled against with pkg-config, and driving a real
/// coordinator over CURVE from the example program in ops/examples/c.
@Suite("C producer library", .serialized, .enabled(if: Cluster.isConfigured))
struct CLibraryTests {
    @Test("installed and linked with pkg-config, the C example submits, streams the log and exits with the outcome")
    func fromC() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let prefix = cluster.directory.appendingPathComponent("prefix").path
            let program = cluster.directory.appendingPathComponent("slipway-submit").path
            let root = OpsFilesTests.root.path
            let built = cluster.directory.appendingPathComponent("build.log").path
            #expect(try await runShell("'\(root)/ops/install-libslipway' '\(prefix)' > '\(built)' 2>&1") == 0, "\(Self.text(built))")
            let compile = "cc -Wall -Werror '\(root)/ops/examples/c/submit.c' $(PKG_CONFIG_PATH='\(prefix)/lib/pkgconfig' pkg-config --cflags --libs slipway) "
                + "-o '\(program)' > '\(built)' 2>&1"
            try #require(try await runShell(compile) == 0, "\(Self.text(built))")

            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            let key = try cluster.keyFile(.ci, "pipeline"), server = try cluster.coordinatorCertificate()
            func submit(_ repo: URL, _ commit: String, _ idempotency: String) async throws -> (status: Int32, out: String, log: String) {
                let out = cluster.directory.appendingPathComponent("c-\(UUID().uuidString.prefix(6))")
                let status = try await runShell("LD_LIBRARY_PATH='\(prefix)/lib' '\(program)' \(cluster.intake) '\(key)' '\(server)' '\(repo.path)' "
                                                + "'\(commit)' app \(idempotency) > '\(out.path).out' 2> '\(out.path).err'")
                return (status, Self.text(out.path + ".out"), Self.text(out.path + ".err"))
            }

            let (repo, commit) = try TestRepository.make(in: cluster.directory)
            let first = try await submit(repo, commit, "c-build-1")
            #expect(first.status == 0, "\(first)")
            #expect(first.out.contains(" succeeded commit \(commit) artifact sha256:"), "\(first.out)")
            #expect(first.log.contains("building \(commit)"), "the build log streamed through the callback: \(first.log)")
            let again = try await submit(repo, commit, "c-build-1")
            #expect(again.status == 0 && again.out.contains("(existing job for this idempotency key)"), "\(again)")
            let jobID = { (out: String) in out.split(separator: " ").dropFirst().first }
            #expect(jobID(again.out) != nil && jobID(again.out) == jobID(first.out), "the same job: \(first.out) / \(again.out)")

            let (failing, failingCommit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\necho broken >&2\nexit 3\n")
            let failed = try await submit(failing, failingCommit, "c-build-2")
            #expect(failed.status == 1 && failed.out.contains(" failed ") && failed.log.contains("broken"), "\(failed)")

            let refused = try await submit(repo, "--upload-pack=evil", "c-build-3")
            #expect(refused.status == 64 && refused.log.contains("commit"), "the coordinator's refusal, with its reason: \(refused)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    @Test("from C: a wait that times out keeps the job as last seen; cancel; unknown jobs and silent coordinators are told apart")
    func waitCancelAndErrors() async throws {
        let (_, statuses) = try await Cluster.with { cluster in
            let prefix = cluster.directory.appendingPathComponent("prefix").path
            let root = OpsFilesTests.root.path
            try #require(try await runShell("'\(root)/ops/install-libslipway' '\(prefix)' > /dev/null 2>&1") == 0)
            let source = cluster.directory.appendingPathComponent("calls.c")
            try Self.callsProgram.write(to: source, atomically: true, encoding: .utf8)
            let program = cluster.directory.appendingPathComponent("calls").path
            let log = cluster.directory.appendingPathComponent("calls.log").path
            try #require(try await runShell("cc -Wall -Werror '\(source.path)' $(PKG_CONFIG_PATH='\(prefix)/lib/pkgconfig' pkg-config --cflags --libs slipway) "
                                            + "-o '\(program)' > '\(log)' 2>&1") == 0, "\(Self.text(log))")
            try cluster.startCoordinator()
            try cluster.startRegion()
            try cluster.startWorker("w1")
            try await cluster.waitForLog("w1", "] serving")
            // It prints without pause until cancelled: a wait that follows its log must still end at its timeout.
            let (slow, commit) = try TestRepository.make(in: cluster.directory, recipe: "#!/bin/sh\nwhile true; do echo tick; sleep 0.01; done\n")
            let silent = "tcp://127.0.0.1:\(freeLoopbackPort())"
            let status = try await runShell("LD_LIBRARY_PATH='\(prefix)/lib' '\(program)' \(cluster.intake) '\(try cluster.keyFile(.ci, "pipeline"))' "
                                            + "'\(try cluster.coordinatorCertificate())' '\(slow.path)' \(commit) \(silent) > '\(log)' 2>&1")
            let output = Self.text(log)
            #expect(status == 0, "\(output)")
            for line in ["timed out: job", "with the log", "ended: cancelled exit 2", "unknown job: rejected 2", "silent: unreachable"] {
                #expect(output.contains(line), "\(line): \(output)")
            }
            #expect(output.contains("as last seen: queued") || output.contains("as last seen: running"), "\(output)")
            #expect(output.contains("cancel: running") || output.contains("cancel: cancelled"), "\(output)")
        }
        #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
    }

    /// Waits briefly (times out), cancels, waits to the end, asks about an unknown job and a silent endpoint; prints each outcome.
    static let callsProgram = """
        #include <slipway.h>
        #include <stdio.h>
        #include <string.h>
        static void count(const char *bytes, size_t length, void *context) { (void)bytes; *(size_t *)context += length; }
        static const char *kind(int code) {
            return code == SLIPWAY_OK ? "ok" : code == SLIPWAY_TIMED_OUT ? "timed out" : code == SLIPWAY_REJECTED ? "rejected"
                 : code == SLIPWAY_UNREACHABLE ? "unreachable" : "other";
        }
        int main(int argc, char **argv) {
            if (argc != 7) return 64;
            slipway_error error = {0};
            slipway_keys keys;
            if (slipway_load_keys(argv[2], argv[3], &keys, &error)) { printf("keys: %s\\n", error.message); return 1; }
            slipway_client *client = slipway_connect(argv[1], &keys, 0, 0, &error);
            if (!client) { printf("connect: %s\\n", error.message); return 1; }
            slipway_submission submission = {0};
            submission.idempotency_key = "c-calls";
            submission.repo = argv[4];
            submission.commit = argv[5];
            submission.artifact_name = "app";
            submission.fresh = 1;
            slipway_ack ack;
            if (slipway_submit(client, &submission, &ack, &error)) { printf("submit: %s\\n", error.message); return 1; }
            slipway_job job;
            memset(&job, 0, sizeof job);
            size_t logged = 0;
            int code = slipway_wait(client, ack.job_id, 10000, count, &logged, &job, &error);
            printf("%s: %s\\nas last seen: %s\\n", kind(code), error.message, job.status);
            if (code == SLIPWAY_TIMED_OUT && logged > 0) printf("with the log: %zu bytes\\n", logged);
            char status[16];
            code = slipway_cancel(client, ack.job_id, "from C", status, &error);
            printf("cancel: %s (%s)\\n", code ? error.message : status, kind(code));
            code = slipway_wait(client, ack.job_id, 60000, NULL, NULL, &job, &error);
            printf("ended: %s exit %d (%s)\\n", job.status, slipway_job_exit_code(&job), kind(code));
            code = slipway_job_info(client, "00000000-0000-4000-8000-000000000000", &job, &error);
            printf("unknown job: %s %d (%s)\\n", kind(code), error.server_code, error.message);
            slipway_close(client);
            slipway_client *nobody = slipway_connect(argv[6], &keys, 200, 2, &error);
            code = slipway_job_info(nobody, ack.job_id, &job, &error);
            printf("silent: %s (%s)\\n", kind(code), error.message);
            slipway_close(nobody);
            return 0;
        }
        """

    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}
