//! The operating-system calls the twilio-broker daemon needs that have no
//! safe wrapper in a well-kept crate: scrubbing a secret out of the
//! process's original environment block, refusing core dumps and ptrace,
//! locking key memory into RAM, the umask around a socket's `bind`, and
//! taking the sockets of systemd socket activation.
//!
//! Each function is safe to call; the `unsafe` inside is small and says why
//! it is sound. Linux is the target; elsewhere the hardening calls report
//! `Unsupported`.

use std::ffi::CStr;
use std::io;

use zeroize::Zeroizing;

/// Reads the environment variable `name`, then erases it: its bytes in the
/// process's original environment block (what `/proc/PID/environ` shows,
/// which `std::env::remove_var` does not change) are overwritten with zeros,
/// and it is removed so that no child process inherits it.
///
/// Refuses (`Err`) unless the process has exactly one thread: the
/// environment must not be read or written concurrently.
pub fn take_env_secret(name: &str) -> io::Result<Option<Zeroizing<String>>> {
    if thread_count()? != 1 {
        return Err(io::Error::other(format!(
            "cannot scrub {name} from the environment once threads are running"
        )));
    }
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    let value = Zeroizing::new(
        value
            .into_string()
            .map_err(|_| io::Error::other(format!("{name} is not valid UTF-8")))?,
    );
    let prefix = format!("{name}=");
    // Find the entry (name and value) in the original block first: after
    // `remove_var` it is no longer listed, but its bytes are still there.
    let mut entries: Vec<(*mut libc::c_char, usize)> = Vec::new();
    // SAFETY: the process has one thread (checked above), so nothing else
    // reads or writes the environment meanwhile. `environ` is a
    // null-terminated array of pointers to NUL-terminated strings owned by
    // the process; each entry is only read up to its NUL.
    unsafe {
        let mut entry = environ;
        while !(*entry).is_null() {
            let bytes = CStr::from_ptr(*entry).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                entries.push((*entry, bytes.len()));
            }
            entry = entry.add(1);
        }
    }
    // SAFETY: single-threaded (checked above), as `remove_var` requires.
    unsafe { std::env::remove_var(name) };
    for (start, len) in entries {
        // SAFETY: `start..start+len` was a live NUL-terminated entry of the
        // environment block found above; unsetenv only unlinks entries and
        // never frees the block, so the bytes are still ours to overwrite.
        unsafe { std::ptr::write_bytes(start, 0, len) };
    }
    Ok(Some(value))
}

unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// How many threads this process has (from `/proc/self/status`).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Makes the process non-dumpable (no core dump, no ptrace by other
/// processes of the same user, `/proc/PID/mem` and `environ` owned by root)
/// and sets its core size limit to 0.
pub fn refuse_core_dumps() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when the process is dumpable (`PR_GET_DUMPABLE`).
pub fn is_dumpable() -> io::Result<bool> {
    // SAFETY: prctl(PR_GET_DUMPABLE) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc != 0)
}

/// Memory locked into RAM (never swapped) while this guard lives.
#[derive(Debug)]
pub struct Locked {
    addr: usize,
    len: usize,
}

/// Locks the pages holding `bytes` into RAM. The caller keeps `bytes` at a
/// stable address (boxed) for as long as the guard lives. A failure (for
/// example `RLIMIT_MEMLOCK` reached) is returned for the caller to log;
/// the memory stays usable either way.
pub fn lock_in_ram(bytes: &[u8]) -> io::Result<Locked> {
    // SAFETY: mlock only changes how the kernel pages these bytes; the
    // range is a live borrowed slice.
    let rc = unsafe { libc::mlock(bytes.as_ptr().cast(), bytes.len()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Locked {
        addr: bytes.as_ptr() as usize,
        len: bytes.len(),
    })
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: munlock on the range mlock accepted; unlocking memory that
        // may since have been freed is harmless (the kernel only adjusts page
        // flags of mapped pages in the range).
        unsafe { libc::munlock(self.addr as *const libc::c_void, self.len) };
    }
}

/// Runs `f` with the process umask set to `mask`, then restores it. Used to
/// create a Unix socket with no window in which it is more open than asked.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask takes and returns a plain mode value.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let result = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    result
}

/// A listening socket passed by systemd socket activation.
#[derive(Debug)]
pub struct ActivatedSocket {
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=`), if given.
    pub name: Option<String>,
    /// The socket; close-on-exec.
    pub fd: std::os::fd::OwnedFd,
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Takes the sockets systemd passed by socket activation: `LISTEN_FDS`
/// descriptors from 3 on, when `LISTEN_PID` is this process, named by
/// `LISTEN_FDNAMES` (colon-separated). None without socket activation.
/// Only the first call takes them (a descriptor is owned once); later calls
/// return none. Each is made close-on-exec.
pub fn take_listen_fds() -> io::Result<Vec<ActivatedSocket>> {
    use std::os::fd::FromRawFd as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let (Some(pid), Some(count)) = (
        std::env::var_os("LISTEN_PID"),
        std::env::var_os("LISTEN_FDS"),
    ) else {
        return Ok(Vec::new());
    };
    if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        // Meant for another process (an inherited environment).
        return Ok(Vec::new());
    }
    let count: i32 = count
        .to_str()
        .and_then(|c| c.parse().ok())
        .filter(|c| (0..=1024).contains(c))
        .ok_or_else(|| io::Error::other("LISTEN_FDS is not a number of descriptors"))?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut sockets = Vec::new();
    for i in 0..count {
        let fd = LISTEN_FDS_START + i;
        // SAFETY: fcntl(F_GETFD) only reads the flags of a descriptor number;
        // it fails with EBADF when nothing is open there.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(io::Error::other(format!(
                "LISTEN_FDS says {count} sockets, but descriptor {fd} is not open: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: as above, setting a flag bit on an open descriptor.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID
        // is ours), it is open (F_GETFD succeeded), and TAKEN makes this the
        // only place that ever owns it.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        sockets.push(ActivatedSocket {
            name: names.get(i as usize).filter(|n| !n.is_empty()).cloned(),
            fd: owned,
        });
    }
    Ok(sockets)
}

/// Copies everything `source` yields into a new anonymous file (`memfd`)
/// and seals it (`F_SEAL_WRITE`, `F_SEAL_SHRINK`, `F_SEAL_GROW`,
/// `F_SEAL_SEAL`): from then on no one, this process included, can change
/// its bytes, so what was read back from it (hashed) is what a later
/// `dlopen("/proc/self/fd/N")` maps. The descriptor is close-on-exec.
#[cfg(target_os = "linux")]
pub fn sealed_copy(name: &str, source: &mut impl io::Read) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd as _;
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::other("NUL in memfd name"))?;
    // SAFETY: `name` is a valid NUL-terminated string; the flags are plain
    // bits; the call returns a new descriptor or -1.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    io::copy(source, &mut file)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
    Ok(file)
}

/// Not available off Linux.
#[cfg(not(target_os = "linux"))]
pub fn sealed_copy(_name: &str, _source: &mut impl io::Read) -> io::Result<std::fs::File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "memfd is Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_mode(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        let file = std::fs::File::create(path).expect("created");
        file.metadata().expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn umask_applies_inside_and_is_restored_after() {
        let dir = std::env::temp_dir().join(format!("tb-system-umask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (inside, after) = with_umask(0o022, || {
            let inside = with_umask(0o177, || create_mode(&dir.join("inside")));
            (inside, create_mode(&dir.join("after")))
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(inside, 0o600);
        assert_eq!(after, 0o644, "the outer umask came back");
    }

    #[test]
    fn key_memory_can_be_locked_and_unlocked() {
        // mlock may be refused by a tight RLIMIT_MEMLOCK; a success must be
        // undone on drop without a fault.
        let key = Box::new([7u8; 32]);
        match lock_in_ram(key.as_slice()) {
            Ok(guard) => drop(guard),
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::ENOMEM), "{err}"),
        }
    }

    #[test]
    fn the_environment_is_not_scrubbed_with_threads_running() {
        // The test harness runs tests on threads: refused, nothing touched.
        let err = take_env_secret("PATH").expect_err("refused");
        assert!(err.to_string().contains("threads"), "{err}");
        assert!(std::env::var_os("PATH").is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sealed_copy_cannot_be_changed_even_through_proc() {
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;
        let mut file = sealed_copy("test", &mut &b"library bytes"[..]).expect("memfd");
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("opens for writing");
        assert!(writer.write_all(b"evil").is_err(), "sealed against writes");
        assert!(file.set_len(0).is_err(), "sealed against shrinking");
        let mut read = Vec::new();
        file.read_to_end(&mut read).expect("read");
        assert_eq!(read, b"library bytes");
    }
}
