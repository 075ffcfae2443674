#ifndef SLIPWAY_CZEROMQ_SHIM_H
#define SLIPWAY_CZEROMQ_SHIM_H
#include <zmq.h>
#include <errno.h>

/* errno is a macro over a thread-local; Swift cannot read it reliably after
   a libzmq call without this accessor. */
static inline int slipway_zmq_errno(void) { return zmq_errno(); }

/* zmq_msg_t is an opaque 64-byte blob; Swift needs its size to allocate one. */
static inline size_t slipway_zmq_msg_size(void) { return sizeof(zmq_msg_t); }

#endif
