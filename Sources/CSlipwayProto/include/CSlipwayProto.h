/* Umbrella header for the protobuf-c code generated from proto/ by ops/gen-proto. */
#ifndef CSLIPWAYPROTO_H
#define CSLIPWAYPROTO_H
#include "slipway/v1/envelope.pb-c.h"
#include "slipway/v1/build.pb-c.h"
#include "slipway/v1/artifact.pb-c.h"
#include "slipway/v1/deploy.pb-c.h"
#include "slipway/v1/event.pb-c.h"
#endif
