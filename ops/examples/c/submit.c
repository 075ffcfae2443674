/*
 * A CI step in C: submit a build, stream its log, exit with its outcome.
 *
 *   cc submit.c $(pkg-config --cflags --libs slipway) -o slipway-submit
 *   slipway-submit tcp://coordinator:7700 ci.secret coordinator.cert REPO COMMIT ARTIFACT [IDEMPOTENCY_KEY]
 *
 * Exit codes as the CLI's: 0 succeeded, 1 failed, 2 cancelled, 3 timed out,
 * 4 coordinator unreachable, 5 refused, 64 bad input.
 */
#include <slipway.h>
#include <stdio.h>
#include <string.h>

static void print_log(const char *bytes, size_t length, void *context) {
    (void)context;
    fwrite(bytes, 1, length, stderr);
}

static int exit_code(const slipway_error *error) {
    switch (error->code) {
    case SLIPWAY_TIMED_OUT: return 3;
    case SLIPWAY_UNREACHABLE: return 4;
    case SLIPWAY_BAD_ARGUMENT: return 64;
    case SLIPWAY_REJECTED:
        if (error->server_code == SLIPWAY_SERVER_FAILED_PRECONDITION || error->server_code == SLIPWAY_SERVER_PERMISSION_DENIED) return 5;
        if (error->server_code == SLIPWAY_SERVER_INVALID_ARGUMENT || error->server_code == SLIPWAY_SERVER_NOT_FOUND) return 64;
        return 4;
    default: return 4;
    }
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s ENDPOINT SECRET_KEY COORDINATOR_CERT REPO COMMIT ARTIFACT [IDEMPOTENCY_KEY]\n", argv[0]);
        return 64;
    }
    slipway_error error = {0};
    slipway_keys keys;
    if (slipway_load_keys(argv[2], argv[3], &keys, &error)) {
        fprintf(stderr, "slipway-submit: %s\n", error.message);
        return 64;
    }
    slipway_client *client = slipway_connect(argv[1], &keys, 0, 0, &error);
    if (!client) {
        fprintf(stderr, "slipway-submit: %s\n", error.message);
        return exit_code(&error);
    }
    slipway_submission submission = {0};
    submission.idempotency_key = argc > 7 ? argv[7] : argv[5];
    submission.repo = argv[4];
    submission.commit = argv[5];
    submission.artifact_name = argv[6];
    slipway_ack ack;
    slipway_job job;
    int code = slipway_submit(client, &submission, &ack, &error);
    if (!code) {
        printf("job %s %s%s\n", ack.job_id, ack.status, ack.duplicate ? " (existing job for this idempotency key)" : "");
        fflush(stdout);
        code = slipway_wait(client, ack.job_id, 600000, print_log, NULL, &job, &error);
    }
    slipway_close(client);
    if (code) {
        fprintf(stderr, "slipway-submit: %s\n", error.message);
        return exit_code(&error);
    }
    printf("job %s %s commit %s artifact sha256:%s%s%s\n", job.job_id, job.status, job.commit, job.artifact_digest,
           job.failure[0] ? " — " : "", job.failure);
    return slipway_job_exit_code(&job);
}
