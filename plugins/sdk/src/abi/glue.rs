//! The plugin side of the ABI for Rust plugins: `extern "C"` functions,
//! generic over the plugin type, that the export macros put in the tables.
//!
//! Every function here is a boundary: it checks the pointers it is given,
//! turns them into safe Rust values, calls the plugin's safe trait method
//! inside `catch_unwind` (a panic must never unwind into the broker), and
//! turns the result into a status code and owned buffers.
#![allow(unsafe_code)]

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::*;
use crate::audit::AuditPlugin;
use crate::storage::{Cas, StoragePlugin};
use crate::{ErrorKind, PluginError};

/// Hands `bytes` to the host as a plugin-owned buffer (freed by [`free_buf`]).
pub fn buf_from(bytes: Vec<u8>) -> TbBuf {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    TbBuf {
        ptr: Box::into_raw(boxed).cast::<u8>(),
        len,
    }
}

/// The plugin table's `free_buf`, for buffers made by [`buf_from`].
///
/// # Safety
/// `buf` must come from [`buf_from`] and be freed once.
pub unsafe extern "C" fn free_buf(buf: TbBuf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: `buf_from` leaked a `Box<[u8]>` of exactly `len` bytes at `ptr`.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.ptr, buf.len)) });
}

/// The bytes of a borrowed slice.
///
/// # Safety
/// `s` must describe `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(s: TbSlice) -> Result<&'a [u8], PluginError> {
    if s.len == 0 {
        return Ok(&[]);
    }
    if s.ptr.is_null() {
        return Err(PluginError::invalid(
            "a null pointer with a non-zero length",
        ));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(s.ptr, s.len) })
}

/// A borrowed slice as UTF-8 text; `what` names it in the error.
///
/// # Safety
/// As for [`bytes`].
unsafe fn text<'a>(s: TbSlice, what: &str) -> Result<&'a str, PluginError> {
    // SAFETY: forwarded from the caller.
    let raw = unsafe { bytes(s) }?;
    std::str::from_utf8(raw).map_err(|_| PluginError::invalid(format!("the {what} is not UTF-8")))
}

/// The plugin value behind a handle.
///
/// # Safety
/// `handle` must come from this library's `init` for the same `T` and not be closed.
unsafe fn handle<'a, T>(handle: *mut c_void) -> Result<&'a T, PluginError> {
    if handle.is_null() {
        return Err(PluginError::invalid("a null handle"));
    }
    // SAFETY: `init` made the handle with `Box::into_raw(Box::<T>::new(..))`.
    Ok(unsafe { &*handle.cast::<T>() })
}

/// Writes `value` through `out` when it is not null.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn write<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: checked non-null; the caller guarantees validity.
        unsafe { out.write(value) };
    }
}

fn status_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Invalid => TB_STATUS_INVALID,
        ErrorKind::Unavailable => TB_STATUS_UNAVAILABLE,
        ErrorKind::Failed => TB_STATUS_ERROR,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs `f`, catching panics; errors and panics become a status code and a
/// message in `error_out`.
fn guarded(error_out: *mut TbBuf, f: impl FnOnce() -> Result<i32, PluginError>) -> i32 {
    let (status, message) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => return status,
        Ok(Err(err)) => (status_of(err.kind), err.message),
        Err(panic) => (TB_STATUS_PANICKED, panic_message(panic.as_ref()).to_owned()),
    };
    // SAFETY: the host passes a valid (or null) `error_out` for every call.
    unsafe { write(error_out, buf_from(message.into_bytes())) };
    status
}

fn init_with<T>(
    config: TbSlice,
    handle_out: *mut *mut c_void,
    error_out: *mut TbBuf,
    init: fn(&serde_json::Value) -> Result<T, PluginError>,
) -> i32 {
    guarded(error_out, || {
        if handle_out.is_null() {
            return Err(PluginError::invalid("a null handle_out"));
        }
        // SAFETY: the host lends `config` for the call.
        let text = unsafe { text(config, "configuration") }?;
        let config: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            PluginError::invalid(format!("the configuration is not valid JSON: {e}"))
        })?;
        let plugin = init(&config)?;
        let raw = Box::into_raw(Box::new(plugin)).cast::<c_void>();
        // SAFETY: checked non-null above.
        unsafe { handle_out.write(raw) };
        Ok(TB_STATUS_OK)
    })
}

fn close_with<T>(
    raw: *mut c_void,
    error_out: *mut TbBuf,
    close: fn(T) -> Result<(), PluginError>,
) -> i32 {
    guarded(error_out, || {
        if raw.is_null() {
            return Err(PluginError::invalid("a null handle"));
        }
        // SAFETY: `init` boxed a `T`; the host closes a handle once, when no
        // other call is running.
        let plugin = unsafe { Box::from_raw(raw.cast::<T>()) };
        close(*plugin)?;
        Ok(TB_STATUS_OK)
    })
}

// ---- audit sinks ----

/// `init` of an audit sink.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn audit_init<T: AuditPlugin>(
    config: TbSlice,
    handle_out: *mut *mut c_void,
    error_out: *mut TbBuf,
) -> i32 {
    init_with(config, handle_out, error_out, T::init)
}

/// `record` of an audit sink: checks the event is JSON, then records it.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn audit_record<T: AuditPlugin>(
    raw: *mut c_void,
    event: TbSlice,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (sink, event) = unsafe { (handle::<T>(raw)?, text(event, "event")?) };
        serde_json::from_str::<serde::de::IgnoredAny>(event)
            .map_err(|e| PluginError::invalid(format!("the event is not valid JSON: {e}")))?;
        sink.record(event)?;
        Ok(TB_STATUS_OK)
    })
}

/// `flush` of an audit sink.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn audit_flush<T: AuditPlugin>(
    raw: *mut c_void,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        unsafe { handle::<T>(raw) }?.flush()?;
        Ok(TB_STATUS_OK)
    })
}

/// `close` of an audit sink.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn audit_close<T: AuditPlugin>(
    raw: *mut c_void,
    error_out: *mut TbBuf,
) -> i32 {
    close_with(raw, error_out, T::close)
}

/// The audit table for `T`.
pub const fn audit_table<T: AuditPlugin>() -> TbAuditV2 {
    TbAuditV2 {
        struct_size: size_of::<TbAuditV2>(),
        record: Some(audit_record::<T>),
        flush: Some(audit_flush::<T>),
        close: Some(audit_close::<T>),
    }
}

/// Borrowed static text as a slice.
const fn static_slice(text: &'static str) -> TbSlice {
    TbSlice {
        ptr: text.as_ptr(),
        len: text.len(),
    }
}

/// The plugin table of an audit sink `T`, pointing at `audit` (a static);
/// `version` is the plugin crate's own version.
pub const fn audit_plugin<T: AuditPlugin>(
    audit: &'static TbAuditV2,
    version: &'static str,
) -> TbPluginV2 {
    TbPluginV2 {
        struct_size: size_of::<TbPluginV2>(),
        kind: TB_KIND_AUDIT,
        name: static_slice(T::NAME),
        init: Some(audit_init::<T>),
        free_buf: Some(free_buf),
        audit,
        storage: std::ptr::null(),
        version: static_slice(version),
    }
}

// ---- storage backends ----

/// `init` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_init<T: StoragePlugin>(
    config: TbSlice,
    handle_out: *mut *mut c_void,
    error_out: *mut TbBuf,
) -> i32 {
    init_with(config, handle_out, error_out, T::init)
}

/// `get` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_get<T: StoragePlugin>(
    raw: *mut c_void,
    key: TbSlice,
    value_out: *mut TbBuf,
    version_out: *mut u64,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, key) = unsafe { (handle::<T>(raw)?, text(key, "key")?) };
        match store.get(key)? {
            Some(found) => {
                // SAFETY: per the ABI rules, out parameters are valid or null.
                unsafe {
                    write(version_out, found.version);
                    write(value_out, buf_from(found.value));
                }
                Ok(TB_STATUS_OK)
            }
            None => Ok(TB_STATUS_NOT_FOUND),
        }
    })
}

/// `put` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_put<T: StoragePlugin>(
    raw: *mut c_void,
    key: TbSlice,
    value: TbSlice,
    version_out: *mut u64,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, key, value) = unsafe { (handle::<T>(raw)?, text(key, "key")?, bytes(value)?) };
        let version = store.put(key, value)?;
        // SAFETY: per the ABI rules.
        unsafe { write(version_out, version) };
        Ok(TB_STATUS_OK)
    })
}

/// `delete` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_delete<T: StoragePlugin>(
    raw: *mut c_void,
    key: TbSlice,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, key) = unsafe { (handle::<T>(raw)?, text(key, "key")?) };
        Ok(if store.delete(key)? {
            TB_STATUS_OK
        } else {
            TB_STATUS_NOT_FOUND
        })
    })
}

/// `list` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_list<T: StoragePlugin>(
    raw: *mut c_void,
    prefix: TbSlice,
    entries_out: *mut TbBuf,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, prefix) = unsafe { (handle::<T>(raw)?, text(prefix, "prefix")?) };
        let entries = store.list(prefix)?;
        let encoded = crate::wire::encode_entries(entries.iter().map(|(k, v)| (k.as_str(), v)));
        // SAFETY: per the ABI rules.
        unsafe { write(entries_out, buf_from(encoded)) };
        Ok(TB_STATUS_OK)
    })
}

/// `compare_and_swap` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_cas<T: StoragePlugin>(
    raw: *mut c_void,
    key: TbSlice,
    expected_version: u64,
    value: TbSlice,
    version_out: *mut u64,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, key, value) = unsafe { (handle::<T>(raw)?, text(key, "key")?, bytes(value)?) };
        let (status, version) = match store.compare_and_swap(key, expected_version, value)? {
            Cas::Swapped { version } => (TB_STATUS_OK, version),
            Cas::Conflict { current } => (TB_STATUS_CONFLICT, current),
        };
        // SAFETY: per the ABI rules.
        unsafe { write(version_out, version) };
        Ok(status)
    })
}

/// `wait_for_change` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_wait<T: StoragePlugin>(
    raw: *mut c_void,
    after: u64,
    timeout_ms: u32,
    generation_out: *mut u64,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let store = unsafe { handle::<T>(raw) }?;
        match store.wait_for_change(after, Duration::from_millis(u64::from(timeout_ms)))? {
            Some(generation) => {
                // SAFETY: per the ABI rules.
                unsafe { write(generation_out, generation) };
                Ok(TB_STATUS_OK)
            }
            None => Ok(TB_STATUS_UNSUPPORTED),
        }
    })
}

/// `changes_since` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_changes<T: StoragePlugin>(
    raw: *mut c_void,
    prefix: TbSlice,
    cursor: u64,
    entries_out: *mut TbBuf,
    cursor_out: *mut u64,
    error_out: *mut TbBuf,
) -> i32 {
    guarded(error_out, || {
        // SAFETY: per the ABI rules.
        let (store, prefix) = unsafe { (handle::<T>(raw)?, text(prefix, "prefix")?) };
        let Some(changes) = store.changes_since(prefix, cursor)? else {
            return Ok(TB_STATUS_UNSUPPORTED);
        };
        let encoded = crate::wire::encode_changes(
            changes
                .entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_ref())),
        );
        // SAFETY: per the ABI rules.
        unsafe {
            write(cursor_out, changes.cursor);
            write(entries_out, buf_from(encoded));
        }
        Ok(TB_STATUS_OK)
    })
}

/// `close` of a storage backend.
///
/// # Safety
/// Called by the host per the ABI rules in [`crate::abi`].
pub unsafe extern "C" fn storage_close<T: StoragePlugin>(
    raw: *mut c_void,
    error_out: *mut TbBuf,
) -> i32 {
    close_with(raw, error_out, T::close)
}

/// The storage table for `T`.
pub const fn storage_table<T: StoragePlugin>() -> TbStorageV2 {
    TbStorageV2 {
        struct_size: size_of::<TbStorageV2>(),
        get: Some(storage_get::<T>),
        put: Some(storage_put::<T>),
        delete: Some(storage_delete::<T>),
        list: Some(storage_list::<T>),
        compare_and_swap: Some(storage_cas::<T>),
        wait_for_change: Some(storage_wait::<T>),
        close: Some(storage_close::<T>),
        changes_since: Some(storage_changes::<T>),
    }
}

/// The plugin table of a storage backend `T`, pointing at `storage` (a
/// static); `version` is the plugin crate's own version.
pub const fn storage_plugin<T: StoragePlugin>(
    storage: &'static TbStorageV2,
    version: &'static str,
) -> TbPluginV2 {
    TbPluginV2 {
        struct_size: size_of::<TbPluginV2>(),
        kind: TB_KIND_STORAGE,
        name: static_slice(T::NAME),
        init: Some(storage_init::<T>),
        free_buf: Some(free_buf),
        audit: std::ptr::null(),
        storage,
        version: static_slice(version),
    }
}
