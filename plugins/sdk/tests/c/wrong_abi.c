/* A library that speaks a future ABI: the broker must refuse it by version,
 * before it looks up any other symbol (this one defines no other). */
#include "twilio_broker_plugin.h"

uint32_t twilio_broker_plugin_abi_version(void) { return 999; }
