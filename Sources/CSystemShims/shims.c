#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include "CSystemShims.h"

int slipway_spawn_closefrom(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

long long slipway_tcp_bytes_received(int fd) {
    struct tcp_info info;
    socklen_t length = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
    if (length < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received)) return -1;
    return (long long)info.tcpi_bytes_received;
}

int slipway_unread_bytes(int fd) {
    int pending = 0;
    if (ioctl(fd, FIONREAD, &pending) != 0) return -1;
    return pending;
}

static int format_address(const struct sockaddr_storage *address, char *out, int capacity, int *port) {
    char host[INET6_ADDRSTRLEN] = {0};
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        *port = ntohs(v4->sin_port);
    } else if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        *port = ntohs(v6->sin6_port);
    } else {
        return -1;
    }
    if (out != NULL) snprintf(out, (size_t)capacity, "%s:%d", host, *port);
    return 0;
}

int slipway_socket_identity(int fd, int *local_port, char *peer, int peer_capacity) {
    struct sockaddr_storage local, remote;
    socklen_t local_length = sizeof(local), remote_length = sizeof(remote);
    if (getsockname(fd, (struct sockaddr *)&local, &local_length) != 0) return -1;
    if (getpeername(fd, (struct sockaddr *)&remote, &remote_length) != 0) return -1;
    int remote_port = 0;
    if (format_address(&local, NULL, 0, local_port) != 0) return -1;
    return format_address(&remote, peer, peer_capacity, &remote_port);
}

int slipway_trim_memory(void) {
    return malloc_trim(0);
}

long long slipway_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (long long)(info.uordblks + info.hblkhd);
}

int slipway_raise_thread_priority(void) {
    struct sched_param param = { .sched_priority = sched_get_priority_min(SCHED_FIFO) };
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
}

static _Atomic int statm_descriptor = -1;

long long slipway_resident_bytes(void) {
    /* Opened once and read from the start each time: one system call a look,
       for a thread that looks every 20 ms in every process. An open that
       failed is tried again on the next call. */
    int descriptor = atomic_load(&statm_descriptor);
    if (descriptor < 0) {
        int opened = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (opened < 0) return -1;
        int expected = -1;
        if (atomic_compare_exchange_strong(&statm_descriptor, &expected, opened)) {
            descriptor = opened;
        } else {
            close(opened);
            descriptor = expected;
        }
    }
    char text[128];
    ssize_t length = pread(descriptor, text, sizeof(text) - 1, 0);
    if (length <= 0) return -1;
    text[length] = 0;
    char *end = NULL;
    (void)strtoll(text, &end, 10);
    if (end == text) return -1;
    char *residentStart = end;
    long long resident = strtoll(residentStart, &end, 10);
    if (end == residentStart) return -1;
    return resident * (long long)sysconf(_SC_PAGESIZE);
}

int slipway_wake_open(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void slipway_wake_signal(int fd) {
    uint64_t one = 1;
    /* EAGAIN means the counter is already huge: it is readable either way. */
    (void)!write(fd, &one, sizeof(one));
}

void slipway_wake_clear(int fd) {
    uint64_t count;
    (void)!read(fd, &count, sizeof(count));
}

int slipway_random_bytes(void *buffer, unsigned long length) {
    unsigned char *next = buffer;
    while (length > 0) {
        ssize_t got = getrandom(next, length, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        next += got;
        length -= (unsigned long)got;
    }
    return 0;
}

long long slipway_copy_file_range(int in, int out, long long length) {
    return copy_file_range(in, NULL, out, NULL, (size_t)length, 0);
}
