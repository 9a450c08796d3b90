//! The unsafe core of the host: a validated plugin table and a live handle,
//! with one safe method per ABI call. Each method passes borrowed slices,
//! initialises every out parameter, copies and frees every buffer the plugin
//! returns (whatever the status), and checks the answer against what the ABI
//! allows for that call. Nothing here is async or knows about time-outs:
//! [`super::guard`] runs these methods off the executor.

use std::ffi::c_void;

use twilio_broker_plugin_sdk::abi::*;
use twilio_broker_plugin_sdk::{Cas, Changes, Versioned, wire};

use super::PluginError;

/// The largest buffer the host reads from a plugin (1 GiB); a longer length
/// is garbage and is never dereferenced.
const MAX_BUF: usize = 1 << 30;
/// The longest plugin error message kept, in characters.
const MAX_MESSAGE: usize = 500;
/// The longest plugin name, in bytes.
const MAX_NAME: usize = 64;

const NO_BUF: TbBuf = TbBuf {
    ptr: std::ptr::null_mut(),
    len: 0,
};

fn slice(bytes: &[u8]) -> TbSlice {
    TbSlice {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    }
}

/// The calls of an audit sink, all present.
#[derive(Clone, Copy)]
struct AuditCalls {
    record: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf) -> i32,
    flush: unsafe extern "C" fn(*mut c_void, *mut TbBuf) -> i32,
    close: unsafe extern "C" fn(*mut c_void, *mut TbBuf) -> i32,
}

/// The calls of a storage backend; all present but `wait` and `changes`.
#[derive(Clone, Copy)]
struct StorageCalls {
    get: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf, *mut u64, *mut TbBuf) -> i32,
    put: unsafe extern "C" fn(*mut c_void, TbSlice, TbSlice, *mut u64, *mut TbBuf) -> i32,
    delete: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf) -> i32,
    list: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf, *mut TbBuf) -> i32,
    cas: unsafe extern "C" fn(*mut c_void, TbSlice, u64, TbSlice, *mut u64, *mut TbBuf) -> i32,
    wait: TbWaitFn,
    close: unsafe extern "C" fn(*mut c_void, *mut TbBuf) -> i32,
    changes: TbChangesFn,
}

#[derive(Clone, Copy)]
enum Calls {
    Audit(AuditCalls),
    Storage(StorageCalls),
}

/// A plugin table that passed validation, before `init`.
#[derive(Clone)]
pub(super) struct Table {
    /// The plugin's name, from its table.
    pub(super) name: String,
    /// The plugin's own version, from its table (ABI version 2, optional).
    pub(super) version: Option<String>,
    init: unsafe extern "C" fn(TbSlice, *mut *mut c_void, *mut TbBuf) -> i32,
    free_buf: unsafe extern "C" fn(TbBuf),
    calls: Calls,
}

/// A short printable ASCII label from a table (`None` when empty).
///
/// # Safety
/// `s` must be empty or point at `len` static bytes of a loaded library.
unsafe fn label(s: TbSlice, what: &str) -> Result<Option<String>, String> {
    if s.len == 0 {
        return Ok(None);
    }
    if s.ptr.is_null() || s.len > MAX_NAME {
        return Err(format!(
            "the plugin {what} must be at most {MAX_NAME} bytes"
        ));
    }
    // SAFETY: a static label of `len` bytes in the library.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes)
        .ok()
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
        .map(|n| Some(n.to_owned()))
        .ok_or_else(|| format!("the plugin {what} is not printable ASCII"))
}

fn need<T>(f: Option<T>, what: &str) -> Result<T, String> {
    f.ok_or_else(|| format!("the table has no `{what}` function"))
}

/// The most bytes a version 2 table may claim in `struct_size`: more is
/// garbage, not a newer header.
const MAX_TABLE: usize = 4096;

/// A table's fields as the host reads them, whatever the ABI version.
struct Fields {
    kind: u32,
    name: TbSlice,
    init: TbInitFn,
    free_buf: TbFreeBufFn,
    /// `None`: the table has no audit table.
    audit: Option<AuditFields>,
    /// `None`: the table has no storage table.
    storage: Option<TbStorageV2>,
    version: TbSlice,
}

struct AuditFields {
    record: TbRecordFn,
    flush: TbHandleFn,
    close: TbHandleFn,
}

/// Reads a version 2 table of `struct_size` bytes into a `T`: the fields the
/// plugin's header had are copied, the fields appended since (which are
/// optional by the ABI's rules) stay zero, i.e. null / empty; the fields a
/// newer header appended beyond `T` are not read.
///
/// # Safety
/// `ptr` must be non-null and point at a table that starts with a `size_t`
/// `struct_size` and has that many readable bytes. `T` must be a table type
/// of [`twilio_broker_plugin_sdk::abi`], for which all-zero bytes are valid
/// (null pointers, `None` functions, zero numbers).
unsafe fn read_sized<T: Copy>(ptr: *const T, min: usize, what: &str) -> Result<T, String> {
    // SAFETY: every version 2 table starts with `struct_size`.
    let size = unsafe { ptr.cast::<usize>().read() };
    if size < min {
        return Err(format!(
            "{what}.struct_size is {size}, smaller than the {min} bytes of the first ABI version \
             2 {what} (set it to sizeof({what}))"
        ));
    }
    if size > MAX_TABLE {
        return Err(format!(
            "{what}.struct_size is {size}, more than any {what} can be"
        ));
    }
    let mut out = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the plugin vouches for `size` readable bytes; at most
    // `size_of::<T>()` are written into `out`; all-zero is a valid `T` and
    // the copied bytes are the plugin's values of the same fields.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr.cast::<u8>(),
            out.as_mut_ptr().cast::<u8>(),
            size.min(size_of::<T>()),
        );
        Ok(out.assume_init())
    }
}

/// The size of the first version 2 `TbPluginV2`: up to and including
/// `storage` (`version` was appended after it).
const PLUGIN_V2_MIN: usize =
    std::mem::offset_of!(TbPluginV2, storage) + size_of::<*const TbStorageV2>();
/// The size of the first version 2 `TbAuditV2`.
const AUDIT_V2_MIN: usize = size_of::<TbAuditV2>();
/// The size of the first version 2 `TbStorageV2`: up to and including
/// `close` (`changes_since` was appended after it).
const STORAGE_V2_MIN: usize = std::mem::offset_of!(TbStorageV2, close) + size_of::<TbHandleFn>();

impl Table {
    /// Checks a version 1 plugin table (exact-match structs).
    ///
    /// # Safety
    /// `table` must point at a `TbPluginV1` of a library that stays loaded.
    pub(super) unsafe fn validate_v1(table: *const TbPluginV1) -> Result<Table, String> {
        if table.is_null() {
            return Err("the plugin table pointer is null".into());
        }
        // SAFETY: non-null, and the caller vouches for the table.
        let t = unsafe { *table };
        let audit = match t.audit.is_null() {
            true => None,
            // SAFETY: non-null pointer to a static table of the library.
            false => Some(unsafe { *t.audit }).map(|a| AuditFields {
                record: a.record,
                flush: a.flush,
                close: a.close,
            }),
        };
        let storage = match t.storage.is_null() {
            true => None,
            // SAFETY: non-null pointer to a static table of the library.
            false => Some(unsafe { *t.storage }).map(|s| TbStorageV2 {
                struct_size: size_of::<TbStorageV2>(),
                get: s.get,
                put: s.put,
                delete: s.delete,
                list: s.list,
                compare_and_swap: s.compare_and_swap,
                wait_for_change: s.wait_for_change,
                close: s.close,
                changes_since: None,
            }),
        };
        // SAFETY: the names of a live table.
        unsafe {
            Table::check(Fields {
                kind: t.kind,
                name: t.name,
                init: t.init,
                free_buf: t.free_buf,
                audit,
                storage,
                version: TbSlice {
                    ptr: std::ptr::null(),
                    len: 0,
                },
            })
        }
    }

    /// Checks a version 2 plugin table, reading each sub-table by its
    /// `struct_size` (see [`read_sized`]).
    ///
    /// # Safety
    /// `table` must point at a `TbPluginV2` of a library that stays loaded.
    pub(super) unsafe fn validate_v2(table: *const TbPluginV2) -> Result<Table, String> {
        if table.is_null() {
            return Err("the plugin table pointer is null".into());
        }
        // SAFETY: non-null, and the caller vouches for the table.
        let t = unsafe { read_sized(table, PLUGIN_V2_MIN, "TbPluginV2") }?;
        let audit = match t.audit.is_null() {
            true => None,
            // SAFETY: non-null pointer to a static table of the library.
            false => Some(unsafe { read_sized(t.audit, AUDIT_V2_MIN, "TbAuditV2") }?).map(|a| {
                AuditFields {
                    record: a.record,
                    flush: a.flush,
                    close: a.close,
                }
            }),
        };
        let storage = match t.storage.is_null() {
            true => None,
            // SAFETY: non-null pointer to a static table of the library.
            false => Some(unsafe { read_sized(t.storage, STORAGE_V2_MIN, "TbStorageV2") }?),
        };
        // SAFETY: the names of a live table.
        unsafe {
            Table::check(Fields {
                kind: t.kind,
                name: t.name,
                init: t.init,
                free_buf: t.free_buf,
                audit,
                storage,
                version: t.version,
            })
        }
    }

    /// Checks a table's fields: known kind, a printable name (and version),
    /// every required function present.
    ///
    /// # Safety
    /// `name` and `version` must be empty or point at static bytes of a
    /// library that stays loaded.
    unsafe fn check(t: Fields) -> Result<Table, String> {
        // SAFETY: forwarded from the caller.
        let name = unsafe { label(t.name, "name") }?
            .ok_or_else(|| format!("the plugin name must be 1 to {MAX_NAME} bytes"))?;
        // SAFETY: forwarded from the caller.
        let version = unsafe { label(t.version, "version") }?;
        let calls = match (t.kind, t.audit, t.storage) {
            (TB_KIND_AUDIT, Some(a), None) => Calls::Audit(AuditCalls {
                record: need(a.record, "audit.record")?,
                flush: need(a.flush, "audit.flush")?,
                close: need(a.close, "audit.close")?,
            }),
            (TB_KIND_STORAGE, None, Some(s)) => Calls::Storage(StorageCalls {
                get: need(s.get, "storage.get")?,
                put: need(s.put, "storage.put")?,
                delete: need(s.delete, "storage.delete")?,
                list: need(s.list, "storage.list")?,
                cas: need(s.compare_and_swap, "storage.compare_and_swap")?,
                wait: s.wait_for_change,
                close: need(s.close, "storage.close")?,
                changes: s.changes_since,
            }),
            (TB_KIND_AUDIT | TB_KIND_STORAGE, _, _) => {
                return Err("exactly the table of the plugin's kind must be set".into());
            }
            (other, _, _) => return Err(format!("unknown plugin kind {other}")),
        };
        Ok(Table {
            name,
            version,
            init: need(t.init, "init")?,
            free_buf: need(t.free_buf, "free_buf")?,
            calls,
        })
    }

    /// The kind the table declares.
    pub(super) fn kind(&self) -> super::PluginKind {
        match self.calls {
            Calls::Audit(_) => super::PluginKind::Audit,
            Calls::Storage(_) => super::PluginKind::Storage,
        }
    }

    /// Calls `init` with the config JSON; the plugin is live afterwards.
    pub(super) fn init(self, config_json: &str) -> Result<RawPlugin, PluginError> {
        let mut handle: *mut c_void = std::ptr::null_mut();
        let mut error = NO_BUF;
        // SAFETY: a validated table; the config slice outlives the call.
        let status = unsafe { (self.init)(slice(config_json.as_bytes()), &mut handle, &mut error) };
        let plugin = RawPlugin {
            name: self.name,
            handle: handle.cast(),
            free_buf: self.free_buf,
            calls: self.calls,
        };
        plugin.outcome("init", status, error, &[TB_STATUS_OK])?;
        if plugin.handle.is_null() {
            return Err(plugin.garbage("init", "success without a handle"));
        }
        Ok(plugin)
    }
}

/// A live plugin: its handle and calls.
pub(super) struct RawPlugin {
    /// The plugin's name, from its table.
    pub(super) name: String,
    handle: *mut c_void,
    free_buf: unsafe extern "C" fn(TbBuf),
    calls: Calls,
}

// SAFETY: the ABI requires a plugin handle to be usable from any thread, and
// every call but `close` to be callable concurrently; `close` is called only
// when no other call runs (see `guard::Guard::exclusive`). The function
// pointers point into a library that is never unloaded.
unsafe impl Send for RawPlugin {}
// SAFETY: as above.
unsafe impl Sync for RawPlugin {}

impl RawPlugin {
    fn garbage(&self, op: &'static str, what: impl Into<String>) -> PluginError {
        PluginError::Garbage {
            plugin: self.name.clone(),
            op,
            what: what.into(),
        }
    }

    /// Copies a buffer the plugin returned and hands it back for freeing.
    /// `Ok(None)` when the plugin returned none.
    fn take(&self, op: &'static str, buf: TbBuf) -> Result<Option<Vec<u8>>, PluginError> {
        if buf.ptr.is_null() {
            return match buf.len {
                0 => Ok(None),
                n => Err(self.garbage(op, format!("a null buffer of length {n}"))),
            };
        }
        if buf.len > MAX_BUF {
            // SAFETY: the plugin's own buffer goes back to it, unread.
            unsafe { (self.free_buf)(buf) };
            return Err(self.garbage(op, format!("a buffer of {} bytes", buf.len)));
        }
        // SAFETY: the ABI says `ptr` holds `len` bytes until freed.
        let copy = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        // SAFETY: the plugin's buffer, returned once.
        unsafe { (self.free_buf)(buf) };
        Ok(Some(copy))
    }

    /// Frees the error buffer and checks `status`: one of `allowed`, or a
    /// failure status (turned into [`PluginError::Failed`]), or garbage.
    fn outcome(
        &self,
        op: &'static str,
        status: i32,
        error: TbBuf,
        allowed: &[i32],
    ) -> Result<i32, PluginError> {
        let message = self.take(op, error)?;
        if allowed.contains(&status) {
            return Ok(status);
        }
        let kind = match status {
            TB_STATUS_INVALID => "invalid input",
            TB_STATUS_UNAVAILABLE => "unavailable",
            TB_STATUS_ERROR => "error",
            TB_STATUS_PANICKED => "panicked",
            other => {
                return Err(self.garbage(op, format!("status {other} is not a valid answer")));
            }
        };
        let message = message.map_or_else(|| "(no message)".to_owned(), |m| sanitize(&m));
        Err(PluginError::Failed {
            plugin: self.name.clone(),
            op,
            reason: format!("{kind}: {message}"),
        })
    }

    fn audit(&self) -> AuditCalls {
        match self.calls {
            Calls::Audit(calls) => calls,
            // `PluginAuditSink` is only built from an audit table.
            Calls::Storage(_) => unreachable!("audit call on a storage plugin"),
        }
    }

    fn storage(&self) -> StorageCalls {
        match self.calls {
            Calls::Storage(calls) => calls,
            // `PluginStore` is only built from a storage table.
            Calls::Audit(_) => unreachable!("storage call on an audit plugin"),
        }
    }

    /// Audit `record`.
    pub(super) fn record(&self, event_json: &[u8]) -> Result<(), PluginError> {
        let mut error = NO_BUF;
        // SAFETY: a live handle; the event slice outlives the call.
        let status = unsafe { (self.audit().record)(self.handle, slice(event_json), &mut error) };
        self.outcome("record", status, error, &[TB_STATUS_OK])?;
        Ok(())
    }

    /// Audit `flush`.
    pub(super) fn flush(&self) -> Result<(), PluginError> {
        let mut error = NO_BUF;
        // SAFETY: a live handle.
        let status = unsafe { (self.audit().flush)(self.handle, &mut error) };
        self.outcome("flush", status, error, &[TB_STATUS_OK])?;
        Ok(())
    }

    /// `close` of either kind. The handle is dead afterwards.
    ///
    /// # Safety
    /// No other call may be running or start afterwards.
    pub(super) unsafe fn close(&self) -> Result<(), PluginError> {
        let close = match self.calls {
            Calls::Audit(calls) => calls.close,
            Calls::Storage(calls) => calls.close,
        };
        let mut error = NO_BUF;
        // SAFETY: a live handle, closed once with no call running.
        let status = unsafe { close(self.handle, &mut error) };
        self.outcome("close", status, error, &[TB_STATUS_OK])?;
        Ok(())
    }

    /// Storage `get`.
    pub(super) fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        let (mut value, mut version, mut error) = (NO_BUF, 0u64, NO_BUF);
        // SAFETY: a live handle; the key slice outlives the call.
        let status = unsafe {
            (self.storage().get)(
                self.handle,
                slice(key.as_bytes()),
                &mut value,
                &mut version,
                &mut error,
            )
        };
        let value = self.take("get", value);
        let status = self.outcome("get", status, error, &[TB_STATUS_OK, TB_STATUS_NOT_FOUND])?;
        let value = value?;
        if status == TB_STATUS_NOT_FOUND {
            return Ok(None);
        }
        if version == 0 {
            return Err(self.garbage("get", "a value with version 0"));
        }
        Ok(Some(Versioned {
            value: value.unwrap_or_default(),
            version,
        }))
    }

    /// Storage `put`.
    pub(super) fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        let (mut version, mut error) = (0u64, NO_BUF);
        // SAFETY: a live handle; the slices outlive the call.
        let status = unsafe {
            (self.storage().put)(
                self.handle,
                slice(key.as_bytes()),
                slice(value),
                &mut version,
                &mut error,
            )
        };
        self.outcome("put", status, error, &[TB_STATUS_OK])?;
        if version == 0 {
            return Err(self.garbage("put", "version 0 for a write"));
        }
        Ok(version)
    }

    /// Storage `delete`.
    pub(super) fn delete(&self, key: &str) -> Result<bool, PluginError> {
        let mut error = NO_BUF;
        // SAFETY: a live handle; the key slice outlives the call.
        let status =
            unsafe { (self.storage().delete)(self.handle, slice(key.as_bytes()), &mut error) };
        let status = self.outcome(
            "delete",
            status,
            error,
            &[TB_STATUS_OK, TB_STATUS_NOT_FOUND],
        )?;
        Ok(status == TB_STATUS_OK)
    }

    /// Storage `list`.
    pub(super) fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        let (mut entries, mut error) = (NO_BUF, NO_BUF);
        // SAFETY: a live handle; the prefix slice outlives the call.
        let status = unsafe {
            (self.storage().list)(
                self.handle,
                slice(prefix.as_bytes()),
                &mut entries,
                &mut error,
            )
        };
        let entries = self.take("list", entries);
        self.outcome("list", status, error, &[TB_STATUS_OK])?;
        let entries = entries?.unwrap_or_default();
        wire::decode_entries(prefix, &entries).map_err(|what| self.garbage("list", what))
    }

    /// Storage `compare_and_swap`.
    pub(super) fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: &[u8],
    ) -> Result<Cas, PluginError> {
        let (mut version, mut error) = (0u64, NO_BUF);
        // SAFETY: a live handle; the slices outlive the call.
        let status = unsafe {
            (self.storage().cas)(
                self.handle,
                slice(key.as_bytes()),
                expected,
                slice(value),
                &mut version,
                &mut error,
            )
        };
        let op = "compare_and_swap";
        match self.outcome(op, status, error, &[TB_STATUS_OK, TB_STATUS_CONFLICT])? {
            TB_STATUS_OK if version == 0 || version == expected => Err(self.garbage(
                op,
                format!("a swap from version {expected} to version {version}"),
            )),
            TB_STATUS_OK => Ok(Cas::Swapped { version }),
            _ if version == expected => Err(self.garbage(
                op,
                format!("a conflict although the current version is the expected {expected}"),
            )),
            _ => Ok(Cas::Conflict { current: version }),
        }
    }

    /// Storage `changes_since`; `Ok(None)` when absent or unsupported.
    pub(super) fn changes_since(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<Option<Changes>, PluginError> {
        let Some(changes) = self.storage().changes else {
            return Ok(None);
        };
        let (mut entries, mut next, mut error) = (NO_BUF, 0u64, NO_BUF);
        // SAFETY: a live handle; the prefix slice outlives the call.
        let status = unsafe {
            changes(
                self.handle,
                slice(prefix.as_bytes()),
                cursor,
                &mut entries,
                &mut next,
                &mut error,
            )
        };
        let op = "changes_since";
        let entries = self.take(op, entries);
        let status = self.outcome(op, status, error, &[TB_STATUS_OK, TB_STATUS_UNSUPPORTED])?;
        let entries = entries?.unwrap_or_default();
        if status == TB_STATUS_UNSUPPORTED {
            return Ok(None);
        }
        if next == 0 {
            return Err(self.garbage(op, "cursor 0"));
        }
        let entries =
            wire::decode_changes(prefix, &entries).map_err(|what| self.garbage(op, what))?;
        Ok(Some(Changes {
            entries,
            cursor: next,
        }))
    }

    /// True when the plugin has a `wait_for_change` function.
    pub(super) fn can_wait(&self) -> bool {
        matches!(
            self.calls,
            Calls::Storage(StorageCalls { wait: Some(_), .. })
        )
    }

    /// Storage `wait_for_change`; `Ok(None)` when unsupported.
    pub(super) fn wait_for_change(
        &self,
        after: u64,
        timeout_ms: u32,
    ) -> Result<Option<u64>, PluginError> {
        let Some(wait) = self.storage().wait else {
            return Ok(None);
        };
        let (mut generation, mut error) = (0u64, NO_BUF);
        // SAFETY: a live handle.
        let status = unsafe { wait(self.handle, after, timeout_ms, &mut generation, &mut error) };
        let op = "wait_for_change";
        match self.outcome(op, status, error, &[TB_STATUS_OK, TB_STATUS_UNSUPPORTED])? {
            TB_STATUS_OK => Ok(Some(generation)),
            _ => Ok(None),
        }
    }
}

/// A plugin message made safe to log: lossy UTF-8, no control characters,
/// bounded length.
fn sanitize(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push_str("...");
    }
    out
}
