/* The connection and the request loop (Lazy Pirate: send, wait, drop the socket, back off, resend). */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* Frames bigger than these are not a reply to anything this library asks. */
enum { MAX_ENVELOPE = 4 << 20, MAX_PAYLOAD = 16 << 20 };

int slipway_fail(slipway_error *error, slipway_code code, int server_code, const char *format, ...) {
    if (error) {
        error->code = code;
        error->server_code = server_code;
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(error->message, sizeof error->message, format, arguments);
        va_end(arguments);
    }
    return code;
}

void slipway_copy(char *destination, size_t size, const char *source) {
    if (!size) return;
    snprintf(destination, size, "%s", source ? source : "");
}

long long slipway_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* A random UUID (version 4) as text: the envelope's message id. */
static void new_message_id(char out[37]) {
    unsigned char bytes[16];
    int file = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = file >= 0 ? read(file, bytes, sizeof bytes) : -1;
    if (file >= 0) close(file);
    if (got != (ssize_t)sizeof bytes) {
        /* No /dev/urandom: unique enough from the clock and the address space. */
        struct timeval now;
        gettimeofday(&now, NULL);
        for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)((now.tv_usec >> (i % 4)) ^ ((uintptr_t)&now >> i) ^ rand());
    }
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3],
             bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
}

slipway_client *slipway_connect(const char *endpoint, const slipway_keys *keys, int request_timeout_ms, int retries,
                                slipway_error *error) {
    if (!endpoint || strncmp(endpoint, "tcp://", 6) != 0 || strlen(endpoint) >= 256) {
        slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "'%s' is not an intake endpoint (tcp://HOST:PORT)", endpoint ? endpoint : "(null)");
        return NULL;
    }
    if (keys && (strlen(keys->public_key) != 40 || strlen(keys->secret_key) != 40 || strlen(keys->server_key) != 40)) {
        slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "each CURVE key is 40 Z85 characters");
        return NULL;
    }
    slipway_client *client = calloc(1, sizeof *client);
    if (!client || !(client->context = zmq_ctx_new())) {
        free(client);
        slipway_fail(error, SLIPWAY_INTERNAL, 0, "cannot create a ZeroMQ context");
        return NULL;
    }
    slipway_copy(client->endpoint, sizeof client->endpoint, endpoint);
    if (keys) {
        client->has_keys = 1;
        client->keys = *keys;
    }
    client->request_timeout_ms = request_timeout_ms > 0 ? request_timeout_ms : 3000;
    client->retries = retries > 0 ? retries : 4;
    return client;
}

static void drop_socket(slipway_client *client) {
    if (client->socket) zmq_close(client->socket);
    client->socket = NULL;
}

void slipway_close(slipway_client *client) {
    if (!client) return;
    drop_socket(client);
    zmq_ctx_term(client->context);
    free(client);
}

static int open_socket(slipway_client *client, slipway_error *error) {
    if (client->socket) return SLIPWAY_OK;
    void *socket = zmq_socket(client->context, ZMQ_DEALER);
    int linger = 0;
    if (!socket) return slipway_fail(error, SLIPWAY_INTERNAL, 0, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    int failed = zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger)
              || zmq_setsockopt(socket, ZMQ_SNDTIMEO, &client->request_timeout_ms, sizeof client->request_timeout_ms);
    if (!failed && client->has_keys) {
        failed = zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, client->keys.server_key, 40)
              || zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, client->keys.public_key, 40)
              || zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, client->keys.secret_key, 40);
    }
    if (!failed) failed = zmq_connect(socket, client->endpoint);
    if (failed) {
        int code = zmq_errno();
        zmq_close(socket);
        return slipway_fail(error, code == EINVAL ? SLIPWAY_BAD_ARGUMENT : SLIPWAY_INTERNAL, 0, "%s: %s", client->endpoint, zmq_strerror(code));
    }
    client->socket = socket;
    return SLIPWAY_OK;
}

/* The frames of one request: an empty topic and the envelope. */
static int send_request(slipway_client *client, const uint8_t *envelope, size_t length, slipway_error *error) {
    if (zmq_send(client->socket, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(client->socket, envelope, length, 0) < 0) {
        if (zmq_errno() == EAGAIN) return SLIPWAY_UNREACHABLE;  /* not connected yet: like a lost reply */
        return slipway_fail(error, SLIPWAY_INTERNAL, 0, "zmq_send: %s", zmq_strerror(zmq_errno()));
    }
    return SLIPWAY_OK;
}

/* Receives one whole message within `wait_ms`: its frames, bounded. Returns 1 with frames, 0 on silence. */
static int receive_frames(void *socket, long long wait_ms, zmq_msg_t frames[3], int *count) {
    zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
    long long deadline = slipway_now_ms() + wait_ms;
    int ready;
    /* A signal to the host program is not a lost reply: wait out the time left. */
    while ((ready = zmq_poll(&item, 1, (long)(deadline - slipway_now_ms() > 0 ? deadline - slipway_now_ms() : 0))) < 0 && zmq_errno() == EINTR) {}
    if (ready <= 0) return 0;
    *count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            break;
        }
        more = zmq_msg_more(&frame);
        if (*count < 3) {
            frames[(*count)++] = frame;
        } else {
            zmq_msg_close(&frame);
            *count = 4;  /* too many frames: drained, and refused below */
        }
    }
    return 1;
}

static void close_frames(zmq_msg_t frames[3], int count) {
    for (int i = 0; i < count && i < 3; i++) zmq_msg_close(&frames[i]);
}

void slipway_free_reply(slipway_reply *reply) {
    free(reply->body);
    free(reply->payload);
    memset(reply, 0, sizeof *reply);
}

/* Takes a reply to `id` from `frames`: 1 taken (reply filled), 0 not ours, or an error code (negated). */
static int take_reply(zmq_msg_t frames[3], int count, const char *id, slipway_reply *reply) {
    if (count < 2 || count > 3) return 0;
    if (zmq_msg_size(&frames[1]) > MAX_ENVELOPE || (count == 3 && zmq_msg_size(&frames[2]) > MAX_PAYLOAD)) return 0;
    Slipway__V1__Envelope *envelope = slipway__v1__envelope__unpack(NULL, zmq_msg_size(&frames[1]), zmq_msg_data(&frames[1]));
    if (!envelope) return 0;
    int ours = envelope->protocol_version == 1 && envelope->in_reply_to && strcmp(envelope->in_reply_to, id) == 0;
    if (ours) {
        reply->type = envelope->type;
        reply->body_length = envelope->body.len;
        reply->body = malloc(envelope->body.len ? envelope->body.len : 1);
        if (reply->body && envelope->body.len) memcpy(reply->body, envelope->body.data, envelope->body.len);
        if (count == 3) {
            reply->payload_length = zmq_msg_size(&frames[2]);
            reply->payload = malloc(reply->payload_length ? reply->payload_length : 1);
            if (reply->payload && reply->payload_length) memcpy(reply->payload, zmq_msg_data(&frames[2]), reply->payload_length);
        }
        if (!reply->body || (count == 3 && !reply->payload)) {
            slipway__v1__envelope__free_unpacked(envelope, NULL);
            slipway_free_reply(reply);
            return -SLIPWAY_INTERNAL;
        }
    }
    slipway__v1__envelope__free_unpacked(envelope, NULL);
    return ours;
}

int slipway_call(slipway_client *client, Slipway__V1__MessageType type, const ProtobufCMessage *request,
                 Slipway__V1__MessageType expected, slipway_reply *reply, slipway_error *error) {
    memset(reply, 0, sizeof *reply);
    size_t body_length = protobuf_c_message_get_packed_size(request);
    uint8_t *body = malloc(body_length ? body_length : 1);
    if (!body) return slipway_fail(error, SLIPWAY_INTERNAL, 0, "out of memory");
    protobuf_c_message_pack(request, body);

    char id[37];
    new_message_id(id);
    Slipway__V1__Envelope envelope = SLIPWAY__V1__ENVELOPE__INIT;
    struct timeval now;
    gettimeofday(&now, NULL);
    envelope.protocol_version = 1;
    envelope.type = type;
    envelope.message_id = id;
    envelope.sender = "libslipway";
    envelope.sent_at_unix_micros = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    envelope.body.data = body;
    envelope.body.len = body_length;
    size_t length = slipway__v1__envelope__get_packed_size(&envelope);
    uint8_t *packed = malloc(length ? length : 1);
    if (!packed) {
        free(body);
        return slipway_fail(error, SLIPWAY_INTERNAL, 0, "out of memory");
    }
    slipway__v1__envelope__pack(&envelope, packed);
    free(body);

    int result = SLIPWAY_UNREACHABLE;
    long long backoff_ms = 100;
    for (int attempt = 0; attempt < client->retries && result == SLIPWAY_UNREACHABLE; attempt++) {
        int code = open_socket(client, error);
        if (code == SLIPWAY_OK) code = send_request(client, packed, length, error);
        if (code != SLIPWAY_OK && code != SLIPWAY_UNREACHABLE) {
            result = code;
            break;
        }
        long long deadline = slipway_now_ms() + client->request_timeout_ms;
        while (code == SLIPWAY_OK && slipway_now_ms() < deadline) {
            zmq_msg_t frames[3];
            int count = 0;
            if (!receive_frames(client->socket, deadline - slipway_now_ms(), frames, &count)) break;
            int taken = take_reply(frames, count, id, reply);
            close_frames(frames, count);
            if (taken < 0) {
                result = slipway_fail(error, SLIPWAY_INTERNAL, 0, "out of memory");
                break;
            }
            if (!taken) continue;  /* a late reply to an earlier try, or garbage */
            if (reply->type == SLIPWAY__V1__MESSAGE_TYPE__MESSAGE_TYPE_ERROR_REPLY) {
                Slipway__V1__ErrorReply *refusal = slipway__v1__error_reply__unpack(NULL, reply->body_length, reply->body);
                int server_code = refusal ? (int)refusal->code : 0;
                char message[400];
                slipway_copy(message, sizeof message, refusal && refusal->message ? refusal->message : "(no message)");
                if (refusal) slipway__v1__error_reply__free_unpacked(refusal, NULL);
                slipway_free_reply(reply);
                /* The coordinator's database is away for a moment: the request did nothing; ask again. */
                if (server_code == SLIPWAY_SERVER_UNAVAILABLE && attempt < client->retries - 1) break;
                result = slipway_fail(error, SLIPWAY_REJECTED, server_code, "%s", message);
            } else if (reply->type != expected) {
                int received = (int)reply->type;
                slipway_free_reply(reply);
                result = slipway_fail(error, SLIPWAY_INVALID_REPLY, 0, "the coordinator sent message type %d where %d was expected",
                                      received, (int)expected);
            } else {
                result = SLIPWAY_OK;
            }
            break;
        }
        if (result == SLIPWAY_UNREACHABLE) {
            drop_socket(client);
            struct timespec pause = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {}
            backoff_ms *= 2;
        }
    }
    free(packed);
    if (result == SLIPWAY_UNREACHABLE) {
        return slipway_fail(error, SLIPWAY_UNREACHABLE, 0, "coordinator unreachable at %s (no reply after %d tries)", client->endpoint,
                            client->retries);
    }
    return result;
}
