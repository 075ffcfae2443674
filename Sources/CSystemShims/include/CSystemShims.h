#ifndef SLIPWAY_CSYSTEMSHIMS_H
#define SLIPWAY_CSYSTEMSHIMS_H

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+) is declared only
   under _GNU_SOURCE, which Swift's Glibc module does not define: the child
   closes every descriptor from `from` up, after the earlier file actions.
   `actions` is a posix_spawn_file_actions_t *; void here so that this header
   does not bring its own copy of <spawn.h>'s types into Swift. */
int slipway_spawn_closefrom(void *actions, int from);

/* Bytes the kernel has received on the TCP socket `fd` (tcpi_bytes_received,
   Linux 4.1+; glibc's struct tcp_info predates the field), or -1. */
long long slipway_tcp_bytes_received(int fd);

/* Bytes waiting unread in the receive queue of socket `fd` (FIONREAD), or -1. */
int slipway_unread_bytes(int fd);

/* The local port of socket `fd` and its peer's address ("ADDR:PORT"), so a
   descriptor number can be checked to still be the same connection.
   Returns 0 on success, -1 otherwise. */
int slipway_socket_identity(int fd, int *local_port, char *peer, int peer_capacity);

/* Copies up to `length` bytes from `in` to `out`, at both files' offsets,
   inside the kernel (copy_file_range(2), declared only under _GNU_SOURCE; a
   reflink where the file system can share blocks). Bytes copied, 0 at the end
   of `in`, or -1 with errno set. */
long long slipway_copy_file_range(int in, int out, long long length);

/* Fills `buffer` with `length` bytes from the kernel's random source
   (getrandom(2), blocking only until it is first seeded at boot). Returns 0,
   or -1 with errno set. */
int slipway_random_bytes(void *buffer, unsigned long length);

/* Hands memory the allocator keeps but does not use back to the system
   (malloc_trim(0), every arena). */
int slipway_trim_memory(void);

/* Bytes the allocator has handed out and not had back (mallinfo2: heap
   chunks in use plus mmapped ones): grows with every allocation, also when it
   reuses freed memory, which the resident set does not show. It walks every
   free chunk of every arena under that arena's lock: about 0.1 ms in a busy
   agent, so it is for looks a second apart, not every tick. */
long long slipway_heap_in_use(void);

/* Runs the calling thread under SCHED_FIFO at the lowest real-time priority, so
   a thread that sleeps almost always is scheduled at once when it wakes, even
   when every core is busy. Returns 0, or the errno (EPERM without
   CAP_SYS_NICE): the caller goes on at normal priority. */
int slipway_raise_thread_priority(void);

/* This process's resident set in bytes, or -1: one read of /proc/self/statm,
   which stays open (cheap enough to call every few milliseconds). */
long long slipway_resident_bytes(void);

/* A counter descriptor another thread can wake a poller with (eventfd,
   non-blocking, close-on-exec), or -1. */
int slipway_wake_open(void);

/* Makes `fd` readable. */
void slipway_wake_signal(int fd);

/* Makes `fd` unreadable again until the next signal. */
void slipway_wake_clear(int fd);

#endif
