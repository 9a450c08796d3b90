/* A library with the right ABI version but no plugin table: the broker must
 * refuse it, naming the missing symbol. */
#include "twilio_broker_plugin.h"

uint32_t twilio_broker_plugin_abi_version(void) { return TB_ABI_VERSION; }
