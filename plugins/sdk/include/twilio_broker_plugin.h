/*
 * twilio-broker plugin ABI, version 2 (TB_ABI_VERSION); the broker also
 * loads version 1 libraries unchanged.
 *
 * GENERATED from plugins/sdk/src/abi/mod.rs by cbindgen (the rules below
 * live in plugins/sdk/cbindgen.toml); do not edit by hand.
 *
 * A plugin is a shared library that exports exactly two functions, declared
 * at the end of this header:
 *
 *   uint32_t twilio_broker_plugin_abi_version(void);    returns TB_ABI_VERSION
 *   const TbPluginV2 *twilio_broker_plugin_v2(void);   returns a static table
 *
 * THE HANDSHAKE
 *   1. The broker calls twilio_broker_plugin_abi_version() before it looks
 *      up any other symbol. A version outside TB_ABI_VERSION_OLDEST ..
 *      TB_ABI_VERSION is refused, naming both sides' versions.
 *   2. For version 2 it calls twilio_broker_plugin_v2() (version 1:
 *      twilio_broker_plugin_v1()) and validates the table: a known kind,
 *      exactly the sub-table of that kind, a name of 1 to 64 printable ASCII
 *      bytes, every required function non-null, each struct_size sane.
 *   3. It calls init(config_json, &handle, &error) once, with the `config`
 *      table of the plugin's [[plugins]] entry as a JSON object, under the
 *      entry's init_timeout_ms, and passes the handle to every later call.
 *   4. At shutdown it calls close(handle, &error) once, when no other call
 *      is running. The handle is invalid afterwards. The library is never
 *      unloaded (dlclose is never called).
 *
 * OWNERSHIP: each side frees only what it allocated.
 *   - A TbSlice the broker passes is borrowed for the duration of the call;
 *     copy what you keep. It is not NUL-terminated.
 *   - A TbBuf the plugin writes into an *_out parameter is the plugin's: the
 *     broker copies it and hands it back through free_buf exactly once,
 *     whatever the status. Allocate it with whatever free_buf undoes.
 *   - Out parameters are initialised by the broker ({NULL, 0} buffers, zero
 *     versions) before every call; leave the ones you do not set alone.
 *
 * ERRORS: every call returns a TB_STATUS_* code. On failure the plugin may
 *   write a UTF-8 message into *error_out (the broker sanitises it and keeps
 *   500 characters). Messages must not contain secrets; the broker never
 *   hands a plugin one (storage values are sealed, audit events hold none).
 *   Any status a call does not allow is treated as garbage: the call fails.
 *
 * THREADS: every function except init and close may be called concurrently
 *   from many broker threads, for the same handle: the handle must be
 *   thread-safe. Calls never come from a thread the plugin created.
 *
 * TIME-OUTS: each call is abandoned after the entry's timeout_ms (default
 *   5000 ms; init: init_timeout_ms, default 30000 ms) and reported as
 *   unavailable. An abandoned call keeps its broker thread until it returns,
 *   and after 64 such calls the broker stops calling the plugin: return
 *   promptly, and bound your own network waits below the time-out.
 *   wait_for_change is the exception: it may block up to its timeout_ms.
 *
 * VERSION 2 GROWS BY APPENDING (the compatibility rules):
 *   - Every version 2 table starts with struct_size: set it to sizeof() of
 *     the table as your header declares it.
 *   - New fields are only ever appended, and every appended field is
 *     optional (a NULL function pointer, an empty slice): a plugin built
 *     against an older version 2 header (smaller struct_size) keeps loading,
 *     the broker treats the fields beyond its struct_size as absent.
 *   - A plugin built against a newer header (larger struct_size) loads into
 *     an older broker, which reads only the fields it knows.
 *   - The broker refuses a struct_size smaller than the first version 2
 *     table (its fields up to and including `storage` for TbPluginV2).
 *   - Anything that cannot be added as an optional appended field (a new
 *     required call, a changed signature or meaning) is a new ABI version;
 *     the broker keeps loading the older ones.
 *
 * An in-process plugin can read and write all of the broker's memory, the
 * master key included, and can crash it: operators load only libraries they
 * would trust with that key, and pin them with sha256.
 */

#ifndef TWILIO_BROKER_PLUGIN_H
#define TWILIO_BROKER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

// The ABI version this SDK builds (and the newest the broker loads).
// Version 2 grows by appending optional fields to its tables (see
// `struct_size`); a change that cannot be made that way is version 3.
#define TB_ABI_VERSION 2

// The oldest ABI version the broker still loads.
#define TB_ABI_VERSION_OLDEST 1

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

// Version 2: the calls of an audit sink.
typedef struct TbAuditV2 {
  // `sizeof(TbAuditV2)` as the plugin was compiled.
  size_t struct_size;
  // Records one event (a UTF-8 JSON object, see `schema/audit-event.schema.json`).
  // Durable (or handed to a durable system) on return. Required.
  TbRecordFn record;
  // Makes every recorded event durable. Required.
  TbHandleFn flush;
  // Flushes and frees the handle. Required.
  TbHandleFn close;
} TbAuditV2;

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

// Storage `changes_since` (optional; appended within version 2): what
// changed under `prefix` since `cursor`, encoded into `entries_out` as
// `list` does, in ascending key order, with version 0 and no value for a
// key that is gone; `cursor_out` receives the cursor to ask from next
// (positive). With `cursor` 0, every entry under `prefix` (as `list`).
// With a cursor from an earlier answer, at least every key under `prefix`
// written or removed since that answer was read (unchanged keys may be
// included). `TB_STATUS_UNSUPPORTED` when the backend cannot tell; the
// broker then reads everything with `list`.
typedef int32_t (*TbChangesFn)(void *handle,
                               struct TbSlice prefix,
                               uint64_t cursor,
                               struct TbBuf *entries_out,
                               uint64_t *cursor_out,
                               struct TbBuf *error_out);

// Version 2: the calls of a storage backend, over opaque bytes. Versions
// are positive, change on every write of a key, and never repeat for a key
// (not even after it is deleted and written again).
typedef struct TbStorageV2 {
  // `sizeof(TbStorageV2)` as the plugin was compiled.
  size_t struct_size;
  // See [`TbGetFn`]. Required.
  TbGetFn get;
  // See [`TbPutFn`]. Required.
  TbPutFn put;
  // See [`TbDeleteFn`]. Required.
  TbDeleteFn delete_;
  // See [`TbListFn`]. Required.
  TbListFn list;
  // See [`TbCasFn`]. Required.
  TbCasFn compare_and_swap;
  // See [`TbWaitFn`]. Optional: may be null.
  TbWaitFn wait_for_change;
  // Frees the handle. Required.
  TbHandleFn close;
  // Optional (appended within version 2): see [`TbChangesFn`]. Absent
  // (an older `struct_size`) or null: the broker re-reads everything.
  TbChangesFn changes_since;
} TbStorageV2;

// Version 2: what `twilio_broker_plugin_v2` returns, a static table that
// lives as long as the library.
typedef struct TbPluginV2 {
  // `sizeof(TbPluginV2)` as the plugin was compiled.
  size_t struct_size;
  // `TB_KIND_AUDIT` or `TB_KIND_STORAGE`.
  uint32_t kind;
  // A short printable ASCII name for logs and errors, e.g. `postgres`
  // (1 to 64 bytes). Required.
  struct TbSlice name;
  // See [`TbInitFn`]. Required.
  TbInitFn init;
  // See [`TbFreeBufFn`]. Required.
  TbFreeBufFn free_buf;
  // The audit calls; non-null exactly when `kind` is `TB_KIND_AUDIT`.
  const struct TbAuditV2 *audit;
  // The storage calls; non-null exactly when `kind` is `TB_KIND_STORAGE`.
  const struct TbStorageV2 *storage;
  // Optional (the first field appended within version 2): the plugin's own
  // version, printable ASCII up to 64 bytes (e.g. `1.4.2`), shown by
  // `plugin check` and logged at load. `{NULL, 0}` when it has none.
  struct TbSlice version;
} TbPluginV2;

// Version 1: the calls of an audit sink (exact-match table).
typedef struct TbAuditV1 {
  // Records one event. Durable (or handed to a durable system) on return.
  TbRecordFn record;
  // Makes every recorded event durable.
  TbHandleFn flush;
  // Flushes and frees the handle.
  TbHandleFn close;
} TbAuditV1;

// Version 1: the calls of a storage backend (exact-match table). As
// [`TbStorageV2`] without `struct_size`.
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

// Version 1: what `twilio_broker_plugin_v1` returns, a static table that
// lives as long as the library. As [`TbPluginV2`] without `struct_size`
// and `version`.
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

// The two symbols a plugin exports (see THE HANDSHAKE at the top): the
// version, then the table of that version. A version 2 plugin exports
// twilio_broker_plugin_v2; twilio_broker_plugin_v1 is declared for the
// version 1 plugins the broker still loads.
uint32_t twilio_broker_plugin_abi_version(void);
const TbPluginV2 *twilio_broker_plugin_v2(void);
const TbPluginV1 *twilio_broker_plugin_v1(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  /* TWILIO_BROKER_PLUGIN_H */
