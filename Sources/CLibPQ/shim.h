#ifndef SLIPWAY_CLIBPQ_SHIM_H
#define SLIPWAY_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#include <errno.h>

/* Field codes for PQresultErrorField are character macros; give Swift ints. */
static inline int slipway_pg_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
static inline int slipway_pg_diag_message_primary(void) { return PG_DIAG_MESSAGE_PRIMARY; }
static inline int slipway_pg_diag_message_detail(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int slipway_pg_diag_message_hint(void) { return PG_DIAG_MESSAGE_HINT; }
static inline int slipway_pg_diag_severity(void) { return PG_DIAG_SEVERITY_NONLOCALIZED; }
static inline int slipway_errno(void) { return errno; }

#endif
