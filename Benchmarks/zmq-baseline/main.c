/* Baseline for the wire benchmark: libzmq driven directly from C.
 * Same layout as the Swift side: PULL binds tcp://127.0.0.1:*, PUSH connects,
 * one sender thread, receiver on the main thread, default high-water marks.
 * Prints messages per second measured from the first to the last message received.
 * Usage: zmq-baseline MESSAGES SIZE */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

struct sender_args { void *context; char endpoint[256]; long messages; size_t size; };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *sender(void *raw) {
    struct sender_args *args = raw;
    void *push = zmq_socket(args->context, ZMQ_PUSH);
    if (zmq_connect(push, args->endpoint) != 0) { perror("zmq_connect"); exit(1); }
    char *buffer = calloc(1, args->size);
    for (long i = 0; i < args->messages; i++) {
        while (zmq_send(push, buffer, args->size, 0) < 0) {
            if (zmq_errno() != EINTR) { fprintf(stderr, "zmq_send: %s\n", zmq_strerror(zmq_errno())); exit(1); }
        }
    }
    free(buffer);
    zmq_close(push);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: zmq-baseline MESSAGES SIZE\n"); return 2; }
    struct sender_args args = { .messages = atol(argv[1]), .size = (size_t)atol(argv[2]) };
    args.context = zmq_ctx_new();
    void *pull = zmq_socket(args.context, ZMQ_PULL);
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0) { perror("zmq_bind"); return 1; }
    size_t length = sizeof(args.endpoint);
    zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, args.endpoint, &length);

    pthread_t thread;
    pthread_create(&thread, NULL, sender, &args);
    char *buffer = malloc(args.size);
    double start = 0;
    for (long i = 0; i < args.messages; i++) {
        while (zmq_recv(pull, buffer, args.size, 0) < 0) {
            if (zmq_errno() != EINTR) { fprintf(stderr, "zmq_recv: %s\n", zmq_strerror(zmq_errno())); return 1; }
        }
        if (i == 0) start = now_seconds();
    }
    double elapsed = now_seconds() - start;
    pthread_join(thread, NULL);
    free(buffer);
    zmq_close(pull);
    zmq_ctx_term(args.context);
    printf("messages_per_second=%.0f\n", (args.messages - 1) / elapsed);
    return 0;
}
