//! The unsafe core of the host: a validated plugin table and a live handle,
//! with one safe method per ABI call. Each method passes borrowed slices,
//! initialises every out parameter, copies and frees every buffer the plugin
//! returns (whatever the status), and checks the answer against what the ABI
//! allows for that call. Nothing here is async or knows about time-outs:
//! [`super::guard`] runs these methods off the executor.

use std::ffi::c_void;

use twilio_broker_plugin_sdk::abi::*;
use twilio_broker_plugin_sdk::{Cas, Versioned, wire};

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

/// The calls of a storage backend; all present but `wait`.
#[derive(Clone, Copy)]
struct StorageCalls {
    get: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf, *mut u64, *mut TbBuf) -> i32,
    put: unsafe extern "C" fn(*mut c_void, TbSlice, TbSlice, *mut u64, *mut TbBuf) -> i32,
    delete: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf) -> i32,
    list: unsafe extern "C" fn(*mut c_void, TbSlice, *mut TbBuf, *mut TbBuf) -> i32,
    cas: unsafe extern "C" fn(*mut c_void, TbSlice, u64, TbSlice, *mut u64, *mut TbBuf) -> i32,
    wait: TbWaitFn,
    close: unsafe extern "C" fn(*mut c_void, *mut TbBuf) -> i32,
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
    init: unsafe extern "C" fn(TbSlice, *mut *mut c_void, *mut TbBuf) -> i32,
    free_buf: unsafe extern "C" fn(TbBuf),
    calls: Calls,
}

fn need<T>(f: Option<T>, what: &str) -> Result<T, String> {
    f.ok_or_else(|| format!("the table has no `{what}` function"))
}

impl Table {
    /// Checks a plugin table: known kind, a printable name, every required
    /// function present.
    ///
    /// # Safety
    /// `table` must point at a `TbPluginV1` of a library that stays loaded.
    pub(super) unsafe fn validate(table: *const TbPluginV1) -> Result<Table, String> {
        if table.is_null() {
            return Err("the plugin table pointer is null".into());
        }
        // SAFETY: non-null, and the caller vouches for the table.
        let t = unsafe { *table };
        if t.name.ptr.is_null() || t.name.len == 0 || t.name.len > MAX_NAME {
            return Err(format!("the plugin name must be 1 to {MAX_NAME} bytes"));
        }
        // SAFETY: a static name of `len` bytes in the library.
        let name = unsafe { std::slice::from_raw_parts(t.name.ptr, t.name.len) };
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
            .ok_or("the plugin name is not printable ASCII")?
            .to_owned();
        let calls = match t.kind {
            TB_KIND_AUDIT if !t.audit.is_null() && t.storage.is_null() => {
                // SAFETY: non-null pointer to a static table of the library.
                let a = unsafe { *t.audit };
                Calls::Audit(AuditCalls {
                    record: need(a.record, "audit.record")?,
                    flush: need(a.flush, "audit.flush")?,
                    close: need(a.close, "audit.close")?,
                })
            }
            TB_KIND_STORAGE if !t.storage.is_null() && t.audit.is_null() => {
                // SAFETY: non-null pointer to a static table of the library.
                let s = unsafe { *t.storage };
                Calls::Storage(StorageCalls {
                    get: need(s.get, "storage.get")?,
                    put: need(s.put, "storage.put")?,
                    delete: need(s.delete, "storage.delete")?,
                    list: need(s.list, "storage.list")?,
                    cas: need(s.compare_and_swap, "storage.compare_and_swap")?,
                    wait: s.wait_for_change,
                    close: need(s.close, "storage.close")?,
                })
            }
            TB_KIND_AUDIT | TB_KIND_STORAGE => {
                return Err("exactly the table of the plugin's kind must be set".into());
            }
            other => return Err(format!("unknown plugin kind {other}")),
        };
        Ok(Table {
            name,
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
