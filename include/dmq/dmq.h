/* libdmq - umbrella header. */
#ifndef DMQ_DMQ_H
#define DMQ_DMQ_H

#include "dmq/config.h"
#include "dmq/delivery.h"
#include "dmq/error.h"
#include "dmq/node.h"
#include "dmq/transport.h"
#include "dmq/version.h"

#endif
