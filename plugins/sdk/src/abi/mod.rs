//! The plugin C ABI: the only types that cross the library boundary.
//! `include/twilio_broker_plugin.h` is generated from this file by cbindgen
//! (a test fails when they drift), so C, Zig or Go authors see the same
//! contract as Rust authors.
//!
//! The rules both sides keep (the handshake, ownership, threads, time-outs,
//! life cycle, and how version 2 grows) are written once, in the header's
//! preamble (`cbindgen.toml`, key `header`), so that a C author reads them
//! where they read the types. Rust authors need none of them: the export
//! macros and [`glue`] keep them.
//!
//! Two versions exist. Version 2 ([`TbPluginV2`]) is what this SDK builds;
//! version 1 ([`TbPluginV1`], exact-match tables) is still loaded by the
//! broker, unchanged, and its types stay here for that.

use std::ffi::c_void;

/// The ABI version this SDK builds (and the newest the broker loads).
/// Version 2 grows by appending optional fields to its tables (see
/// `struct_size`); a change that cannot be made that way is version 3.
pub const TB_ABI_VERSION: u32 = 2;

/// The oldest ABI version the broker still loads.
pub const TB_ABI_VERSION_OLDEST: u32 = 1;

/// Name of the symbol `uint32_t twilio_broker_plugin_abi_version(void)`.
pub const TB_ABI_VERSION_SYMBOL: &str = "twilio_broker_plugin_abi_version";

/// Name of the symbol `const TbPluginV1 *twilio_broker_plugin_v1(void)`,
/// read when the library speaks version 1.
pub const TB_PLUGIN_V1_SYMBOL: &str = "twilio_broker_plugin_v1";

/// Name of the symbol `const TbPluginV2 *twilio_broker_plugin_v2(void)`,
/// read when the library speaks version 2.
pub const TB_PLUGIN_V2_SYMBOL: &str = "twilio_broker_plugin_v2";

/// The plugin is an audit sink ([`TbAuditV1`]).
pub const TB_KIND_AUDIT: u32 = 1;
/// The plugin is a storage backend ([`TbStorageV1`]).
pub const TB_KIND_STORAGE: u32 = 2;

/// The call succeeded.
pub const TB_STATUS_OK: i32 = 0;
/// `get`: no such key. `delete`: there was no such key.
pub const TB_STATUS_NOT_FOUND: i32 = 1;
/// `compare_and_swap`: the stored version is not the expected one;
/// `version_out` holds the current version (0 when the key is absent).
pub const TB_STATUS_CONFLICT: i32 = 2;
/// The optional call is not implemented (`wait_for_change`).
pub const TB_STATUS_UNSUPPORTED: i32 = 3;
/// The input was refused (bad configuration, key, or event).
pub const TB_STATUS_INVALID: i32 = 4;
/// A dependency of the plugin is down; retrying later may work.
pub const TB_STATUS_UNAVAILABLE: i32 = 5;
/// Any other failure.
pub const TB_STATUS_ERROR: i32 = 6;
/// The plugin panicked; the SDK caught it at the boundary and wrote the
/// panic message into `error_out`.
pub const TB_STATUS_PANICKED: i32 = 7;

/// Bytes borrowed from the caller for the duration of one call.
/// `ptr` may be null only when `len` is 0. Keys and JSON are UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbSlice {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// Bytes allocated by the plugin and handed to the broker, which copies them
/// and returns them through `TbPluginV1::free_buf`. `ptr` null means "no
/// buffer" (and then `len` must be 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbBuf {
    /// First byte, owned by the plugin.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

// Every function pointer type is nullable (`Option`): a plugin table may
// leave out `wait_for_change`, and the broker refuses a table that leaves out
// anything else, instead of calling through a null pointer.

/// `init`: parses `config` (a JSON object) and writes a handle for all later
/// calls into `handle_out`.
pub type TbInitFn = Option<
    unsafe extern "C" fn(
        config: TbSlice,
        handle_out: *mut *mut c_void,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Releases a buffer the plugin handed out.
pub type TbFreeBufFn = Option<unsafe extern "C" fn(buf: TbBuf)>;

/// Calls that take only the handle (`flush`, `close`).
pub type TbHandleFn =
    Option<unsafe extern "C" fn(handle: *mut c_void, error_out: *mut TbBuf) -> i32>;

/// Audit `record`: one event, a UTF-8 JSON object.
pub type TbRecordFn = Option<
    unsafe extern "C" fn(handle: *mut c_void, event_json: TbSlice, error_out: *mut TbBuf) -> i32,
>;

/// Storage `get`: `TB_STATUS_OK` with the value and its version, or
/// `TB_STATUS_NOT_FOUND`.
pub type TbGetFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        key: TbSlice,
        value_out: *mut TbBuf,
        version_out: *mut u64,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Storage `put`: stores unconditionally; writes the new version.
pub type TbPutFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        key: TbSlice,
        value: TbSlice,
        version_out: *mut u64,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Storage `delete`: `TB_STATUS_OK` if the key existed, else
/// `TB_STATUS_NOT_FOUND`.
pub type TbDeleteFn =
    Option<unsafe extern "C" fn(handle: *mut c_void, key: TbSlice, error_out: *mut TbBuf) -> i32>;

/// Storage `list`: every entry whose key starts with `prefix`, ordered by
/// key bytes, encoded into one buffer as repeated
/// `key_len:u32le key version:u64le value_len:u32le value`.
pub type TbListFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        prefix: TbSlice,
        entries_out: *mut TbBuf,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Storage `compare_and_swap`: writes `value` only if the key's version is
/// `expected_version` (0: the key must be absent). `TB_STATUS_OK` with the
/// new version, or `TB_STATUS_CONFLICT` with the current one.
pub type TbCasFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        key: TbSlice,
        expected_version: u64,
        value: TbSlice,
        version_out: *mut u64,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Storage `wait_for_change` (optional: may be null or return
/// `TB_STATUS_UNSUPPORTED`): blocks until the change generation differs from
/// `after` or `timeout_ms` passes, then writes the current generation. The
/// generation must change whenever any record may have changed, including
/// writes by other processes and missed notifications after a reconnect.
pub type TbWaitFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        after: u64,
        timeout_ms: u32,
        generation_out: *mut u64,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Storage `changes_since` (optional; appended within version 2): what
/// changed under `prefix` since `cursor`, encoded into `entries_out` as
/// `list` does, in ascending key order, with version 0 and no value for a
/// key that is gone; `cursor_out` receives the cursor to ask from next
/// (positive). With `cursor` 0, every entry under `prefix` (as `list`).
/// With a cursor from an earlier answer, at least every key under `prefix`
/// written or removed since that answer was read (unchanged keys may be
/// included). `TB_STATUS_UNSUPPORTED` when the backend cannot tell; the
/// broker then reads everything with `list`.
pub type TbChangesFn = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        prefix: TbSlice,
        cursor: u64,
        entries_out: *mut TbBuf,
        cursor_out: *mut u64,
        error_out: *mut TbBuf,
    ) -> i32,
>;

/// Version 1: the calls of an audit sink (exact-match table).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbAuditV1 {
    /// Records one event. Durable (or handed to a durable system) on return.
    pub record: TbRecordFn,
    /// Makes every recorded event durable.
    pub flush: TbHandleFn,
    /// Flushes and frees the handle.
    pub close: TbHandleFn,
}

/// Version 1: the calls of a storage backend (exact-match table). As
/// [`TbStorageV2`] without `struct_size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbStorageV1 {
    /// See [`TbGetFn`].
    pub get: TbGetFn,
    /// See [`TbPutFn`].
    pub put: TbPutFn,
    /// See [`TbDeleteFn`].
    pub delete: TbDeleteFn,
    /// See [`TbListFn`].
    pub list: TbListFn,
    /// See [`TbCasFn`].
    pub compare_and_swap: TbCasFn,
    /// See [`TbWaitFn`]; may be null.
    pub wait_for_change: TbWaitFn,
    /// Frees the handle.
    pub close: TbHandleFn,
}

/// Version 1: what `twilio_broker_plugin_v1` returns, a static table that
/// lives as long as the library. As [`TbPluginV2`] without `struct_size`
/// and `version`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbPluginV1 {
    /// `TB_KIND_AUDIT` or `TB_KIND_STORAGE`.
    pub kind: u32,
    /// A short UTF-8 name for logs and errors, e.g. `postgres`.
    pub name: TbSlice,
    /// See [`TbInitFn`].
    pub init: TbInitFn,
    /// See [`TbFreeBufFn`].
    pub free_buf: TbFreeBufFn,
    /// The audit calls; non-null exactly when `kind` is `TB_KIND_AUDIT`.
    pub audit: *const TbAuditV1,
    /// The storage calls; non-null exactly when `kind` is `TB_KIND_STORAGE`.
    pub storage: *const TbStorageV1,
}

/// Version 2: the calls of an audit sink.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbAuditV2 {
    /// `sizeof(TbAuditV2)` as the plugin was compiled.
    pub struct_size: usize,
    /// Records one event (a UTF-8 JSON object, see `schema/audit-event.schema.json`).
    /// Durable (or handed to a durable system) on return. Required.
    pub record: TbRecordFn,
    /// Makes every recorded event durable. Required.
    pub flush: TbHandleFn,
    /// Flushes and frees the handle. Required.
    pub close: TbHandleFn,
}

/// Version 2: the calls of a storage backend, over opaque bytes. Versions
/// are positive, change on every write of a key, and never repeat for a key
/// (not even after it is deleted and written again).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbStorageV2 {
    /// `sizeof(TbStorageV2)` as the plugin was compiled.
    pub struct_size: usize,
    /// See [`TbGetFn`]. Required.
    pub get: TbGetFn,
    /// See [`TbPutFn`]. Required.
    pub put: TbPutFn,
    /// See [`TbDeleteFn`]. Required.
    pub delete: TbDeleteFn,
    /// See [`TbListFn`]. Required.
    pub list: TbListFn,
    /// See [`TbCasFn`]. Required.
    pub compare_and_swap: TbCasFn,
    /// See [`TbWaitFn`]. Optional: may be null.
    pub wait_for_change: TbWaitFn,
    /// Frees the handle. Required.
    pub close: TbHandleFn,
    /// Optional (appended within version 2): see [`TbChangesFn`]. Absent
    /// (an older `struct_size`) or null: the broker re-reads everything.
    pub changes_since: TbChangesFn,
}

/// Version 2: what `twilio_broker_plugin_v2` returns, a static table that
/// lives as long as the library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TbPluginV2 {
    /// `sizeof(TbPluginV2)` as the plugin was compiled.
    pub struct_size: usize,
    /// `TB_KIND_AUDIT` or `TB_KIND_STORAGE`.
    pub kind: u32,
    /// A short printable ASCII name for logs and errors, e.g. `postgres`
    /// (1 to 64 bytes). Required.
    pub name: TbSlice,
    /// See [`TbInitFn`]. Required.
    pub init: TbInitFn,
    /// See [`TbFreeBufFn`]. Required.
    pub free_buf: TbFreeBufFn,
    /// The audit calls; non-null exactly when `kind` is `TB_KIND_AUDIT`.
    pub audit: *const TbAuditV2,
    /// The storage calls; non-null exactly when `kind` is `TB_KIND_STORAGE`.
    pub storage: *const TbStorageV2,
    /// Optional (the first field appended within version 2): the plugin's own
    /// version, printable ASCII up to 64 bytes (e.g. `1.4.2`), shown by
    /// `plugin check` and logged at load. `{NULL, 0}` when it has none.
    pub version: TbSlice,
}

// SAFETY: a plugin table is immutable static data; the raw pointers in it
// point at other immutable statics of the same library.
#[allow(unsafe_code)]
unsafe impl Sync for TbPluginV1 {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for TbPluginV2 {}
// SAFETY: as above; plain data.
#[allow(unsafe_code)]
unsafe impl Sync for TbSlice {}

#[doc(hidden)]
pub mod glue;
