/* The calls a CI job makes: submit, where does it stand, wait (with the log), cancel. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *slipway_status_word(Slipway__V1__JobStatus status) {
    switch (status) {
    case SLIPWAY__V1__JOB_STATUS__JOB_STATUS_QUEUED: return "queued";
    case SLIPWAY__V1__JOB_STATUS__JOB_STATUS_RUNNING: return "running";
    case SLIPWAY__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED: return "succeeded";
    case SLIPWAY__V1__JOB_STATUS__JOB_STATUS_FAILED: return "failed";
    case SLIPWAY__V1__JOB_STATUS__JOB_STATUS_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

static int terminal(const char *status) {
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") || !strcmp(status, "cancelled");
}

static int required(const char *value, const char *name, slipway_error *error) {
    if (value && *value) return SLIPWAY_OK;
    return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "%s is required", name);
}

int slipway_submit(slipway_client *client, const slipway_submission *submission, slipway_ack *ack, slipway_error *error) {
    if (!client || !submission || !ack) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "a client, a submission and an ack are required");
    int code;
    if ((code = required(submission->idempotency_key, "idempotency_key", error)) || (code = required(submission->repo, "repo", error))
        || (code = required(submission->commit, "commit", error)) || (code = required(submission->artifact_name, "artifact_name", error))) {
        return code;
    }
    Slipway__V1__SubmitBuild request = SLIPWAY__V1__SUBMIT_BUILD__INIT;
    request.idempotency_key = (char *)submission->idempotency_key;
    request.repo_url = (char *)submission->repo;
    request.commit = (char *)submission->commit;
    request.artifact_name = (char *)submission->artifact_name;
    request.recipe = (char *)(submission->recipe ? submission->recipe : "");
    request.artifact_path = (char *)(submission->artifact_path ? submission->artifact_path : "");
    request.max_attempts = submission->max_attempts;
    request.timeout_seconds = submission->timeout_seconds;
    request.fresh = submission->fresh != 0;

    /* Labels are "key=value": split into map entries that point into one copy. */
    Slipway__V1__SubmitBuild__LabelsEntry *entries = NULL, **pointers = NULL;
    char *copies = NULL;
    if (submission->label_count) {
        size_t total = 0;
        for (size_t i = 0; i < submission->label_count; i++) {
            const char *label = submission->labels ? submission->labels[i] : NULL;
            if (!label || !strchr(label, '=') || label[0] == '=') {
                return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "label %zu is not key=value", i);
            }
            total += strlen(label) + 1;
        }
        entries = calloc(submission->label_count, sizeof *entries);
        pointers = calloc(submission->label_count, sizeof *pointers);
        copies = malloc(total);
        if (!entries || !pointers || !copies) {
            free(entries), free(pointers), free(copies);
            return slipway_fail(error, SLIPWAY_INTERNAL, 0, "out of memory");
        }
        char *next = copies;
        for (size_t i = 0; i < submission->label_count; i++) {
            Slipway__V1__SubmitBuild__LabelsEntry entry = SLIPWAY__V1__SUBMIT_BUILD__LABELS_ENTRY__INIT;
            strcpy(next, submission->labels[i]);
            char *equals = strchr(next, '=');
            *equals = '\0';
            entry.key = next;
            entry.value = equals + 1;
            entries[i] = entry;
            pointers[i] = &entries[i];
            next = equals + 1 + strlen(equals + 1) + 1;
        }
        request.n_labels = submission->label_count;
        request.labels = pointers;
    }

    slipway_reply reply;
    code = slipway_call(client, SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_SUBMIT_BUILD, &request.base,
                        SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_SUBMIT_BUILD_ACK, &reply, error);
    free(entries), free(pointers), free(copies);
    if (code) return code;
    Slipway__V1__SubmitBuildAck *answer = slipway__v1__submit_build_ack__unpack(NULL, reply.body_length, reply.body);
    slipway_free_reply(&reply);
    if (!answer) return slipway_fail(error, SLIPWAY_INVALID_REPLY, 0, "the submission's acknowledgement did not decode");
    slipway_copy(ack->job_id, sizeof ack->job_id, answer->job_id);
    slipway_copy(ack->status, sizeof ack->status, slipway_status_word(answer->status));
    ack->duplicate = answer->duplicate;
    ack->cache_hit = answer->cache_hit;
    slipway__v1__submit_build_ack__free_unpacked(answer, NULL);
    return SLIPWAY_OK;
}

int slipway_job_info(slipway_client *client, const char *job_id, slipway_job *job, slipway_error *error) {
    if (!client || !job) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "a client and a job are required");
    int code = required(job_id, "job_id", error);
    if (code) return code;
    Slipway__V1__JobQuery query = SLIPWAY__V1__JOB_QUERY__INIT;
    query.job_id = (char *)job_id;
    slipway_reply reply;
    code = slipway_call(client, SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_JOB_QUERY, &query.base,
                        SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_JOB_INFO, &reply, error);
    if (code) return code;
    Slipway__V1__JobInfo *info = slipway__v1__job_info__unpack(NULL, reply.body_length, reply.body);
    slipway_free_reply(&reply);
    if (!info) return slipway_fail(error, SLIPWAY_INVALID_REPLY, 0, "the job's information did not decode");
    memset(job, 0, sizeof *job);
    slipway_copy(job->job_id, sizeof job->job_id, info->job_id);
    slipway_copy(job->status, sizeof job->status, slipway_status_word(info->status));
    slipway_copy(job->commit, sizeof job->commit, info->commit);
    slipway_copy(job->artifact_name, sizeof job->artifact_name, info->artifact_name);
    slipway_copy(job->artifact_digest, sizeof job->artifact_digest, info->artifact_digest);
    slipway_copy(job->failure, sizeof job->failure, info->error);
    job->attempt = info->attempt;
    job->max_attempts = info->max_attempts;
    job->cache_hit = info->cache_hit;
    slipway__v1__job_info__free_unpacked(info, NULL);
    return SLIPWAY_OK;
}

/* A failure worth waiting out: no answer, or the coordinator's database away for a moment. */
static int transient(const slipway_error *error) {
    return error->code == SLIPWAY_UNREACHABLE || (error->code == SLIPWAY_REJECTED && error->server_code == SLIPWAY_SERVER_UNAVAILABLE);
}

/* Passes the log bytes from `*offset` on to `log` until none are left or
 * `deadline` passes (a build that prints without pause must not hold a wait
 * past its timeout); a new attempt's log starts over. */
static int pump_log(slipway_client *client, const char *job_id, unsigned long long *offset, unsigned *attempt,
                    slipway_log_fn log, void *context, int *complete, long long deadline, slipway_error *error) {
    for (;;) {
        if (slipway_now_ms() >= deadline) return SLIPWAY_OK;
        Slipway__V1__LogQuery query = SLIPWAY__V1__LOG_QUERY__INIT;
        query.job_id = (char *)job_id;
        query.offset = *offset;
        slipway_reply reply;
        int code = slipway_call(client, SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_LOG_QUERY, &query.base,
                                SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_LOG_DATA, &reply, error);
        if (code) return code;
        Slipway__V1__LogData *header = slipway__v1__log_data__unpack(NULL, reply.body_length, reply.body);
        if (!header) {
            slipway_free_reply(&reply);
            return slipway_fail(error, SLIPWAY_INVALID_REPLY, 0, "a log reply did not decode");
        }
        int restarted = *attempt && header->attempt != *attempt;
        *attempt = header->attempt;
        *complete = header->complete;
        slipway__v1__log_data__free_unpacked(header, NULL);
        if (restarted) {
            static const char banner[] = "[slipway] --- a new attempt ---\n";
            log(banner, sizeof banner - 1, context);
            *offset = 0;
            slipway_free_reply(&reply);
            continue;
        }
        size_t length = reply.payload_length;
        if (length) log((const char *)reply.payload, length, context);
        slipway_free_reply(&reply);
        *offset += length;
        if (!length) return SLIPWAY_OK;
    }
}

int slipway_wait(slipway_client *client, const char *job_id, long timeout_ms, slipway_log_fn log, void *context,
                 slipway_job *job, slipway_error *caller_error) {
    if (!client || !job) return slipway_fail(caller_error, SLIPWAY_BAD_ARGUMENT, 0, "a client and a job are required");
    /* Whether a failure is worth waiting out is read from the error: keep one even if the caller passed none. */
    slipway_error local = {0};
    slipway_error *error = caller_error ? caller_error : &local;
    int code = required(job_id, "job_id", error);
    if (code) return code;
    long long deadline = slipway_now_ms() + (timeout_ms > 0 ? timeout_ms : 3600000L);
    unsigned long long offset = 0;
    unsigned attempt = 0;
    int seen = 0;
    for (;;) {
        int complete = 0;
        code = log ? pump_log(client, job_id, &offset, &attempt, log, context, &complete, deadline, error) : SLIPWAY_OK;
        if (!code) code = slipway_job_info(client, job_id, job, error);
        if (code && !(transient(error) && slipway_now_ms() < deadline)) return code;
        if (!code) {
            seen = 1;
            /* With a log: done once the log is complete too (its last bytes may trail the status). */
            if (terminal(job->status) && (!log || complete)) return SLIPWAY_OK;
        }
        if (slipway_now_ms() >= deadline) {
            return slipway_fail(error, SLIPWAY_TIMED_OUT, 0, "job %s still %s after waiting", job_id, seen ? job->status : "not seen");
        }
        struct timespec pause = {code ? 1 : 0, code ? 0 : 200000000L};
        nanosleep(&pause, NULL);
    }
}

int slipway_cancel(slipway_client *client, const char *job_id, const char *reason, char *status, slipway_error *error) {
    if (!client) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "a client is required");
    int code = required(job_id, "job_id", error);
    if (code) return code;
    Slipway__V1__CancelBuild request = SLIPWAY__V1__CANCEL_BUILD__INIT;
    request.job_id = (char *)job_id;
    request.reason = (char *)(reason ? reason : "");
    slipway_reply reply;
    code = slipway_call(client, SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_CANCEL_BUILD, &request.base,
                        SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_CANCEL_BUILD_ACK, &reply, error);
    if (code) return code;
    Slipway__V1__CancelBuildAck *ack = slipway__v1__cancel_build_ack__unpack(NULL, reply.body_length, reply.body);
    slipway_free_reply(&reply);
    if (!ack) return slipway_fail(error, SLIPWAY_INVALID_REPLY, 0, "the cancellation's acknowledgement did not decode");
    if (status) slipway_copy(status, 16, slipway_status_word(ack->status));
    slipway__v1__cancel_build_ack__free_unpacked(ack, NULL);
    return SLIPWAY_OK;
}

int slipway_job_exit_code(const slipway_job *job) {
    if (!strcmp(job->status, "succeeded")) return 0;
    if (!strcmp(job->status, "cancelled")) return 2;
    return 1;
}
