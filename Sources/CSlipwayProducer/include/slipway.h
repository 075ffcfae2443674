/*
 * libslipway: Slipway's producer library for C, and for any language with a C FFI.
 *
 * Submit a build of a repository at a commit, wait for it (with its build log
 * as it is written), ask where a job stands, cancel one. It speaks the same
 * protocol as the Swift library (SlipwayProducer) and the `slipway` CLI:
 * protobuf envelopes over a ZeroMQ DEALER, CURVE-authenticated with a `ci` or
 * `operator` key, and the same retry semantics: each request waits
 * `request_timeout_ms` for its reply, then the socket is dropped and the
 * request resent after a back-off (100 ms, doubling), `retries` times in all.
 * A submission is safe to resend: its idempotency key makes the coordinator
 * answer with the same job.
 *
 * Every call returns SLIPWAY_OK (0) or an error code, and fills the caller's
 * slipway_error with the code, the coordinator's code where it has one, and a
 * message for people. A client is used by one thread at a time.
 *
 * Link with `pkg-config --cflags --libs slipway` after `ops/install-libslipway PREFIX`.
 */
#ifndef SLIPWAY_H
#define SLIPWAY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shared library exports; everything else in it stays private. */
#define SLIPWAY_API __attribute__((visibility("default")))

/* What went wrong; the same kinds as the Swift library's ProducerError. */
typedef enum {
    SLIPWAY_OK = 0,
    /* No reply after every retry. */
    SLIPWAY_UNREACHABLE = 1,
    /* The coordinator answered with an error: see server_code and message. */
    SLIPWAY_REJECTED = 2,
    /* The reply was not what the request expects. */
    SLIPWAY_INVALID_REPLY = 3,
    /* slipway_wait's timeout passed; the job goes on. */
    SLIPWAY_TIMED_OUT = 4,
    /* An argument was missing or malformed, or a key file could not be read. */
    SLIPWAY_BAD_ARGUMENT = 5,
    /* Out of memory, or libzmq failed. */
    SLIPWAY_INTERNAL = 6
} slipway_code;

/* The coordinator's error codes (ErrorReply.code in proto/slipway/v1/envelope.proto). */
typedef enum {
    SLIPWAY_SERVER_UNSPECIFIED = 0,
    SLIPWAY_SERVER_INVALID_ARGUMENT = 1,
    SLIPWAY_SERVER_NOT_FOUND = 2,
    SLIPWAY_SERVER_FAILED_PRECONDITION = 3,
    SLIPWAY_SERVER_UNAVAILABLE = 4,
    SLIPWAY_SERVER_UNSUPPORTED = 5,
    SLIPWAY_SERVER_BUSY = 6,
    SLIPWAY_SERVER_INTERNAL = 7,
    SLIPWAY_SERVER_PERMISSION_DENIED = 8
} slipway_server_code;

typedef struct {
    slipway_code code;
    /* Set when code is SLIPWAY_REJECTED. */
    int server_code;
    char message[512];
} slipway_error;

/* A CURVE identity: this client's key pair and the coordinator's public key,
 * each 40 Z85 characters. */
typedef struct {
    char public_key[41];
    char secret_key[41];
    char server_key[41];
} slipway_keys;

/* Reads `secret_file` (written by `slipway keys new --role ci|operator`) and
 * `coordinator_cert` (the coordinator's certificate) into `keys`. */
SLIPWAY_API int slipway_load_keys(const char *secret_file, const char *coordinator_cert, slipway_keys *keys, slipway_error *error);

typedef struct slipway_client slipway_client;

/* A client of the coordinator's intake at `endpoint` (tcp://HOST:PORT).
 * `keys` NULL: no CURVE (a coordinator run --insecure). `request_timeout_ms`
 * and `retries` of 0 take the defaults, 3000 ms and 4 tries.
 * Returns NULL with `error` set on failure. */
SLIPWAY_API slipway_client *slipway_connect(const char *endpoint, const slipway_keys *keys, int request_timeout_ms, int retries,
                                slipway_error *error);

/* Closes the socket and frees the client. NULL is fine. */
SLIPWAY_API void slipway_close(slipway_client *client);

/* A build to run. Strings may be NULL where optional. */
typedef struct {
    /* Required: the same key for a resend of the same build (e.g. "ci-<run id>"). */
    const char *idempotency_key;
    /* Required: a git URL or an absolute path on the workers. */
    const char *repo;
    /* Required: a full SHA, a short SHA or a ref; the job records the full SHA built. */
    const char *commit;
    /* Required: the artifact's name. */
    const char *artifact_name;
    /* Optional: the build command; NULL: the repository's .slipway/build. */
    const char *recipe;
    /* Optional: where the recipe leaves the binary; NULL: .slipway/artifact. */
    const char *artifact_path;
    /* Optional: labels a worker must carry, each "key=value". */
    const char *const *labels;
    size_t label_count;
    /* 0: the coordinator's defaults. */
    unsigned max_attempts;
    unsigned timeout_seconds;
    /* Non-zero: build even if the cache holds this build. */
    int fresh;
} slipway_submission;

typedef struct {
    char job_id[64];
    /* "queued", "running", "succeeded", "failed" or "cancelled". */
    char status[16];
    /* Non-zero: the idempotency key named an existing job (this is it). */
    int duplicate;
    /* Non-zero: answered from the build cache; the job already succeeded. */
    int cache_hit;
} slipway_ack;

/* Submits a build; returns once the coordinator has stored the job. */
SLIPWAY_API int slipway_submit(slipway_client *client, const slipway_submission *submission, slipway_ack *ack, slipway_error *error);

/* A job as the coordinator has it. */
typedef struct {
    char job_id[64];
    char status[16];
    /* The full SHA built once a worker checked it out, else as submitted. */
    char commit[256];
    char artifact_name[129];
    /* 64 hex characters once it succeeded, else empty. */
    char artifact_digest[65];
    unsigned attempt;
    unsigned max_attempts;
    int cache_hit;
    /* Why it failed or was cancelled (cut at 1023 bytes). */
    char failure[1024];
} slipway_job;

/* Where job `job_id` stands now. */
SLIPWAY_API int slipway_job_info(slipway_client *client, const char *job_id, slipway_job *job, slipway_error *error);

/* Called with each piece of the build log as it arrives (not NUL-terminated). */
typedef void (*slipway_log_fn)(const char *bytes, size_t length, void *context);

/* Waits until the job succeeded, failed or was cancelled, or `timeout_ms`
 * passed (SLIPWAY_TIMED_OUT; `job` then holds it as last seen). With `log`,
 * the build log is passed to it as it is written. A coordinator that is away
 * for a moment (failing over, its database restarting) is waited out. */
SLIPWAY_API int slipway_wait(slipway_client *client, const char *job_id, long timeout_ms, slipway_log_fn log, void *context,
                 slipway_job *job, slipway_error *error);

/* Asks the coordinator to cancel the job; `status` (16 bytes, may be NULL)
 * receives its status after the request ("running" while its worker stops it). */
SLIPWAY_API int slipway_cancel(slipway_client *client, const char *job_id, const char *reason, char *status, slipway_error *error);

/* The exit code the `slipway` CLI uses for a finished job: 0 succeeded, 1 failed, 2 cancelled. */
SLIPWAY_API int slipway_job_exit_code(const slipway_job *job);

#ifdef __cplusplus
}
#endif

#endif
