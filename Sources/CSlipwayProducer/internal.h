/* What the files of libslipway share; not installed. */
#ifndef SLIPWAY_INTERNAL_H
#define SLIPWAY_INTERNAL_H

#include "slipway.h"
#include <protobuf-c/protobuf-c.h>
#include "CSlipwayProto.h"

struct slipway_client {
    void *context;
    void *socket;
    char endpoint[256];
    int has_keys;
    slipway_keys keys;
    int request_timeout_ms;
    int retries;
};

/* Fills `error` and returns `code`. */
int slipway_fail(slipway_error *error, slipway_code code, int server_code, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* A reply: its type, body (to unpack and free with free_reply) and raw payload frame, if any. */
typedef struct {
    Slipway__V1__MessageType type;
    uint8_t *body;
    size_t body_length;
    uint8_t *payload;
    size_t payload_length;
} slipway_reply;

void slipway_free_reply(slipway_reply *reply);

/* Sends `request` (a message of `type`) and waits for the reply of `expected`
 * type, with the Lazy Pirate retries; an ErrorReply becomes SLIPWAY_REJECTED. */
int slipway_call(slipway_client *client, Slipway__V1__MessageType type, const ProtobufCMessage *request,
                 Slipway__V1__MessageType expected, slipway_reply *reply, slipway_error *error);

/* The status word of a wire JobStatus ("unknown" for others). */
const char *slipway_status_word(Slipway__V1__JobStatus status);

/* Milliseconds on the monotonic clock: deadlines, never wall time. */
long long slipway_now_ms(void);

/* Copies `source` (may be NULL) into `destination` of `size` bytes, cut if need be. */
void slipway_copy(char *destination, size_t size, const char *source);

#endif
