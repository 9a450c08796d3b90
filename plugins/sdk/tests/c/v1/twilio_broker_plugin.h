/*
 * TEST FIXTURE: the plugin header of ABI version 1 exactly as it shipped.
 * The C test plugins compiled against it are version 1 libraries, which the
 * broker must keep loading unchanged. Never regenerate it.
 */
/*
 * twilio-broker plugin ABI, version 1 (TB_ABI_VERSION).
 *
 * GENERATED from plugins/sdk/src/abi/mod.rs by cbindgen; do not edit by hand.
 * The rules (ownership, threads, time-outs, life cycle) are in that file's
 * module documentation and in ARCHITECTURE.md. A plugin exports exactly the
 * two functions declared at the end of this header.
 *
 * An in-process plugin can read all of the broker's memory, the master key
 * included: operators load only libraries they would trust with that key.
 */

#ifndef TWILIO_BROKER_PLUGIN_H
#define TWILIO_BROKER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

// The ABI version this SDK speaks. Bumped on any incompatible change.
#define TB_ABI_VERSION 1

// The plugin is an audit sink ([`TbAuditV1`]).
#define TB_KIND_AUDIT 1

// The plugin is a storage backend ([`TbStorageV1`]).
#define TB_KIND_STORAGE 2

// The call succeeded.
#define TB_STATUS_OK 0

// `get`: no such key. `delete`: there was no such key.
#define TB_STATUS_NOT_FOUND 1

// `compare_and_swap`: the stored version is not the expected one;
// `version_out` holds the current version (0 when the key is absent).
#define TB_STATUS_CONFLICT 2

// The optional call is not implemented (`wait_for_change`).
#define TB_STATUS_UNSUPPORTED 3

// The input was refused (bad configuration, key, or event).
#define TB_STATUS_INVALID 4

// A dependency of the plugin is down; retrying later may work.
#define TB_STATUS_UNAVAILABLE 5

// Any other failure.
#define TB_STATUS_ERROR 6

// The plugin panicked; the SDK caught it at the boundary and wrote the
// panic message into `error_out`.
#define TB_STATUS_PANICKED 7

// Bytes borrowed from the caller for the duration of one call.
// `ptr` may be null only when `len` is 0. Keys and JSON are UTF-8.
typedef struct TbSlice {
  // First byte.
  const uint8_t *ptr;
  // Number of bytes.
  size_t len;
} TbSlice;

// Bytes allocated by the plugin and handed to the broker, which copies them
// and returns them through `TbPluginV1::free_buf`. `ptr` null means "no
// buffer" (and then `len` must be 0).
typedef struct TbBuf {
  // First byte, owned by the plugin.
  uint8_t *ptr;
  // Number of bytes.
  size_t len;
} TbBuf;

// `init`: parses `config` (a JSON object) and writes a handle for all later
// calls into `handle_out`.
typedef int32_t (*TbInitFn)(struct TbSlice config, void **handle_out, struct TbBuf *error_out);

// Releases a buffer the plugin handed out.
typedef void (*TbFreeBufFn)(struct TbBuf buf);

// Audit `record`: one event, a UTF-8 JSON object.
typedef int32_t (*TbRecordFn)(void *handle, struct TbSlice event_json, struct TbBuf *error_out);

// Calls that take only the handle (`flush`, `close`).
typedef int32_t (*TbHandleFn)(void *handle, struct TbBuf *error_out);

// The calls of an audit sink.
typedef struct TbAuditV1 {
  // Records one event. Durable (or handed to a durable system) on return.
  TbRecordFn record;
  // Makes every recorded event durable.
  TbHandleFn flush;
  // Flushes and frees the handle.
  TbHandleFn close;
} TbAuditV1;

// Storage `get`: `TB_STATUS_OK` with the value and its version, or
// `TB_STATUS_NOT_FOUND`.
typedef int32_t (*TbGetFn)(void *handle,
                           struct TbSlice key,
                           struct TbBuf *value_out,
                           uint64_t *version_out,
                           struct TbBuf *error_out);

// Storage `put`: stores unconditionally; writes the new version.
typedef int32_t (*TbPutFn)(void *handle,
                           struct TbSlice key,
                           struct TbSlice value,
                           uint64_t *version_out,
                           struct TbBuf *error_out);

// Storage `delete`: `TB_STATUS_OK` if the key existed, else
// `TB_STATUS_NOT_FOUND`.
typedef int32_t (*TbDeleteFn)(void *handle, struct TbSlice key, struct TbBuf *error_out);

// Storage `list`: every entry whose key starts with `prefix`, ordered by
// key bytes, encoded into one buffer as repeated
// `key_len:u32le key version:u64le value_len:u32le value`.
typedef int32_t (*TbListFn)(void *handle,
                            struct TbSlice prefix,
                            struct TbBuf *entries_out,
                            struct TbBuf *error_out);

// Storage `compare_and_swap`: writes `value` only if the key's version is
// `expected_version` (0: the key must be absent). `TB_STATUS_OK` with the
// new version, or `TB_STATUS_CONFLICT` with the current one.
typedef int32_t (*TbCasFn)(void *handle,
                           struct TbSlice key,
                           uint64_t expected_version,
                           struct TbSlice value,
                           uint64_t *version_out,
                           struct TbBuf *error_out);

// Storage `wait_for_change` (optional: may be null or return
// `TB_STATUS_UNSUPPORTED`): blocks until the change generation differs from
// `after` or `timeout_ms` passes, then writes the current generation. The
// generation must change whenever any record may have changed, including
// writes by other processes and missed notifications after a reconnect.
typedef int32_t (*TbWaitFn)(void *handle,
                            uint64_t after,
                            uint32_t timeout_ms,
                            uint64_t *generation_out,
                            struct TbBuf *error_out);

// The calls of a storage backend, over opaque bytes. Versions are
// positive, change on every write of a key, and never repeat for a key
// (not even after it is deleted and written again).
typedef struct TbStorageV1 {
  // See [`TbGetFn`].
  TbGetFn get;
  // See [`TbPutFn`].
  TbPutFn put;
  // See [`TbDeleteFn`].
  TbDeleteFn delete_;
  // See [`TbListFn`].
  TbListFn list;
  // See [`TbCasFn`].
  TbCasFn compare_and_swap;
  // See [`TbWaitFn`]; may be null.
  TbWaitFn wait_for_change;
  // Frees the handle.
  TbHandleFn close;
} TbStorageV1;

// What `twilio_broker_plugin_v1` returns: a static table that lives as
// long as the library.
typedef struct TbPluginV1 {
  // `TB_KIND_AUDIT` or `TB_KIND_STORAGE`.
  uint32_t kind;
  // A short UTF-8 name for logs and errors, e.g. `postgres`.
  struct TbSlice name;
  // See [`TbInitFn`].
  TbInitFn init;
  // See [`TbFreeBufFn`].
  TbFreeBufFn free_buf;
  // The audit calls; non-null exactly when `kind` is `TB_KIND_AUDIT`.
  const struct TbAuditV1 *audit;
  // The storage calls; non-null exactly when `kind` is `TB_KIND_STORAGE`.
  const struct TbStorageV1 *storage;
} TbPluginV1;

#ifdef __cplusplus
extern "C" {
#endif

// The two symbols every plugin exports (see the handshake above).
uint32_t twilio_broker_plugin_abi_version(void);
const TbPluginV1 *twilio_broker_plugin_v1(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  /* TWILIO_BROKER_PLUGIN_H */
