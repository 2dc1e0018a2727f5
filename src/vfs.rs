//! The read-only SQLite VFS that lets a read open the vault's database where
//! it lies, inside the encrypted file, instead of decrypting all of it
//! (issue 20, DESIGN v2 "Performance"). SQLite asks this VFS for byte
//! ranges; the VFS asks a [`Pages`] (in `crypto::payload`: age's seekable
//! reader with a small cache of decrypted chunks) and copies what it
//! returns. What decrypts, authenticates and caches lives there, in safe
//! code; this module is only the C glue, and the one module of the crate
//! that may use `unsafe` (the crate is `#![deny(unsafe_code)]`).
//!
//! Why it is sound:
//!
//! - The VFS structure is built once, leaked (it lives as long as the
//!   process, as SQLite requires of a registered VFS) and registered once
//!   under a `OnceLock`. Its name and the I/O method table are `static`.
//! - A database file is opened only under a name that [`open`] has just put
//!   into `PENDING` with its `Pages`; `x_open` moves that `Pages` into a
//!   `Box` whose raw pointer it stores in SQLite's `sqlite3_file`, which
//!   SQLite allocated with `szOsFile = size_of::<File>()` bytes and which it
//!   passes back, unmoved, to every method until `x_close`. `x_close` turns
//!   the pointer back into the `Box` exactly once (and nulls it), so the
//!   `Pages` (and the plaintext it caches, zeroized on drop) is freed once.
//!   Any other file SQLite might want (a journal, a temporary file) is
//!   refused with `SQLITE_CANTOPEN`, leaving `pMethods` null so that SQLite
//!   does not call `x_close` on it.
//! - SQLite calls a file's methods from one thread at a time (a connection
//!   is used by one thread: rusqlite's `Connection` is not `Sync`), so the
//!   `&mut` made from the pointer is never aliased. `Pages: Send` lets a
//!   connection move to another thread.
//! - Buffers SQLite hands in (`x_read`'s output, `x_full_pathname`'s,
//!   `x_randomness`') are written only within the length it gives, after
//!   checking that length is not negative.
//! - No Rust panic crosses into C: every callback that runs our code runs it
//!   under `catch_unwind` and reports a panic as an I/O error.
//! - Nothing is ever written: `x_write`, `x_truncate` and `x_delete` fail,
//!   and connections are opened `SQLITE_OPEN_READONLY` with `immutable=1`
//!   (no locks, no journal, no WAL looked for).

#![allow(unsafe_code)]

use std::{
    ffi::{CStr, c_char, c_int, c_void},
    io,
    panic::{AssertUnwindSafe, catch_unwind},
    ptr,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use rusqlite::{Connection, OpenFlags, ffi};

/// What the VFS reads a database from: `len` bytes, read at any offset.
/// Every byte it returns must be authenticated (`crypto::payload::Chunks`).
pub(crate) trait Pages: Send {
    /// The database's length in bytes.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (all within `len`).
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// The name this VFS is registered under.
const VFS_NAME: &CStr = c"vault-ro";

/// Databases [`open`] is about to open, by the name it gave them, until
/// `x_open` takes them.
static PENDING: Mutex<Vec<(String, Box<dyn Pages>)>> = Mutex::new(Vec::new());

/// Names made unique within the process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Opens the database that `pages` holds, read only, through this VFS.
pub(crate) fn open(pages: Box<dyn Pages>) -> rusqlite::Result<Connection> {
    register()?;
    let name = format!("vault-ro-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    pending().push((name.clone(), pages));
    let conn = Connection::open_with_flags_and_vfs(
        format!("file:{name}?immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS_NAME,
    );
    // Not taken when the open failed before reaching the file.
    pending().retain(|(n, _)| *n != name);
    conn
}

fn pending() -> std::sync::MutexGuard<'static, Vec<(String, Box<dyn Pages>)>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

fn take_pending(name: &str) -> Option<Box<dyn Pages>> {
    let mut p = pending();
    let i = p.iter().position(|(n, _)| n == name)?;
    Some(p.swap_remove(i).1)
}

/// Registers the VFS, once per process.
fn register() -> rusqlite::Result<()> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    let rc = *REGISTERED.get_or_init(|| {
        let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
            iVersion: 2,
            szOsFile: std::mem::size_of::<File>() as c_int,
            mxPathname: 256,
            pNext: ptr::null_mut(),
            zName: VFS_NAME.as_ptr(),
            pAppData: ptr::null_mut(),
            xOpen: Some(x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            xDlOpen: Some(x_dl_open),
            xDlError: Some(x_dl_error),
            xDlSym: Some(x_dl_sym),
            xDlClose: Some(x_dl_close),
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: Some(x_current_time_int64),
            xSetSystemCall: None,
            xGetSystemCall: None,
            xNextSystemCall: None,
        }));
        // SAFETY: `vfs` is a fully initialised `sqlite3_vfs` that lives for
        // the rest of the process (leaked), with a 'static name; SQLite
        // keeps the pointer and never frees it. Registered once (OnceLock).
        unsafe { ffi::sqlite3_vfs_register(vfs, 0) }
    });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

/// SQLite's file object for this VFS: its base structure first (SQLite
/// reads `pMethods` from there), then our state.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    pages: *mut Box<dyn Pages>,
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Runs `f`, turning a panic into `SQLITE_IOERR`.
fn guarded(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(ffi::SQLITE_IOERR)
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let file = file.cast::<File>();
    // SAFETY: SQLite passes a buffer of `szOsFile` bytes, suitably aligned
    // for any type, for this file; nulling `pMethods` first means "not
    // opened" to SQLite whatever happens below.
    unsafe {
        ptr::write(
            file,
            File {
                base: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
                pages: ptr::null_mut(),
            },
        )
    };
    if name.is_null() || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: a non-null `zName` is a NUL-terminated string SQLite owns for
    // as long as the file is open (we copy what we need now).
    let name = unsafe { CStr::from_ptr(name) };
    let Some(pages) = name.to_str().ok().and_then(take_pending) else {
        return ffi::SQLITE_CANTOPEN;
    };
    // SAFETY: `file` was initialised just above and SQLite owns it until
    // `x_close`; `out_flags` may be null, otherwise points to an int.
    unsafe {
        (*file).pages = Box::into_raw(Box::new(pages));
        (*file).base.pMethods = &METHODS;
        if !out_flags.is_null() {
            *out_flags = ffi::SQLITE_OPEN_READONLY;
        }
    }
    ffi::SQLITE_OK
}

/// The state of an open `file`, or `None` once closed.
///
/// # Safety
/// `file` must be a file `x_open` opened, not used by another thread now.
unsafe fn pages<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a mut Box<dyn Pages>> {
    // SAFETY: the caller's promise: `file` is our `File`, and its `pages`
    // is null or the live `Box` `x_open` made, used by this thread only.
    unsafe { (*file.cast::<File>()).pages.as_mut() }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let file = file.cast::<File>();
    // SAFETY: SQLite calls `xClose` once, on a file `x_open` opened; the
    // pointer is taken and nulled, so the `Box` is rebuilt exactly once.
    let pages = unsafe { std::mem::replace(&mut (*file).pages, ptr::null_mut()) };
    if !pages.is_null() {
        guarded(|| {
            // SAFETY: `pages` came from `Box::into_raw` in `x_open`, and
            // was taken out of the file above: rebuilt once.
            drop(unsafe { Box::from_raw(pages) });
            ffi::SQLITE_OK
        })
    } else {
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (Ok(amount), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
        return ffi::SQLITE_IOERR_READ;
    };
    // SAFETY: SQLite hands a buffer of `amount` writable bytes, which it
    // does not touch while we fill it.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount) };
    // SAFETY: an open file of ours, used by this thread (see module doc).
    let Some(pages) = (unsafe { pages(file) }) else {
        return ffi::SQLITE_IOERR_READ;
    };
    guarded(|| read_at(pages.as_mut(), buf, offset))
}

/// `x_read` in safe terms: what lies past the end reads as zeros and says
/// so (`SQLITE_IOERR_SHORT_READ`, as SQLite requires).
fn read_at(pages: &mut dyn Pages, buf: &mut [u8], offset: u64) -> c_int {
    let len = pages.len();
    let have = usize::try_from(len.saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    let (inside, past) = buf.split_at_mut(have);
    if !inside.is_empty() && pages.read_exact_at(inside, offset).is_err() {
        return ffi::SQLITE_IOERR_READ;
    }
    if past.is_empty() {
        ffi::SQLITE_OK
    } else {
        past.fill(0);
        ffi::SQLITE_IOERR_SHORT_READ
    }
}

unsafe extern "C" fn x_write(
    _file: *mut ffi::sqlite3_file,
    _buf: *const c_void,
    _amount: c_int,
    _offset: ffi::sqlite3_int64,
) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_truncate(_file: *mut ffi::sqlite3_file, _size: ffi::sqlite3_int64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: an open file of ours, used by this thread.
    let Some(pages) = (unsafe { pages(file) }) else {
        return ffi::SQLITE_IOERR_FSTAT;
    };
    let Ok(len) = i64::try_from(pages.len()) else {
        return ffi::SQLITE_IOERR_FSTAT;
    };
    // SAFETY: SQLite passes a valid pointer for the result.
    unsafe { *size = len };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_lock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    // Nothing else writes what this VFS reads.
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes a valid pointer for the result.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(
    _file: *mut ffi::sqlite3_file,
    _op: c_int,
    _arg: *mut c_void,
) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    4096
}

unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_IMMUTABLE
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _sync_dir: c_int,
) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _flags: c_int,
    out: *mut c_int,
) -> c_int {
    // No journal, no WAL: nothing but the database exists.
    // SAFETY: SQLite passes a valid pointer for the result.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    if name.is_null() || out.is_null() {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `name` is a NUL-terminated string SQLite owns.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes_with_nul();
    let Ok(room) = usize::try_from(n_out) else {
        return ffi::SQLITE_CANTOPEN;
    };
    if bytes.len() > room {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `out` has `n_out` writable bytes, and `bytes` fits (checked);
    // the two do not overlap (SQLite's own buffer against its input).
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), out, bytes.len()) };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_dl_open(_vfs: *mut ffi::sqlite3_vfs, _name: *const c_char) -> *mut c_void {
    // No extensions are ever loaded.
    ptr::null_mut()
}

unsafe extern "C" fn x_dl_error(_vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    if n > 0 && !out.is_null() {
        // SAFETY: `out` has `n` > 0 writable bytes: an empty message.
        unsafe { *out = 0 };
    }
}

type DlSym = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

unsafe extern "C" fn x_dl_sym(
    _vfs: *mut ffi::sqlite3_vfs,
    _handle: *mut c_void,
    _symbol: *const c_char,
) -> Option<DlSym> {
    None
}

unsafe extern "C" fn x_dl_close(_vfs: *mut ffi::sqlite3_vfs, _handle: *mut c_void) {}

unsafe extern "C" fn x_randomness(
    _vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let Ok(n) = usize::try_from(n) else {
        return 0;
    };
    if out.is_null() {
        return 0;
    }
    // SAFETY: SQLite hands `n` writable bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(out.cast::<u8>(), n) };
    guarded(|| {
        if getrandom::fill(buf).is_err() {
            buf.fill(0);
        }
        0
    });
    c_int::try_from(n).unwrap_or(0)
}

unsafe extern "C" fn x_sleep(_vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let micros = u64::try_from(micros).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_micros(micros));
    c_int::try_from(micros).unwrap_or(c_int::MAX)
}

/// Milliseconds since the Julian epoch, as SQLite counts time.
fn julian_millis() -> i64 {
    const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    UNIX_EPOCH_JULIAN_MS + since
}

unsafe extern "C" fn x_current_time(_vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: SQLite passes a valid pointer for the result.
    unsafe { *out = julian_millis() as f64 / 86_400_000.0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_current_time_int64(
    _vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes a valid pointer for the result.
    unsafe { *out = julian_millis() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_get_last_error(
    _vfs: *mut ffi::sqlite3_vfs,
    _n: c_int,
    _out: *mut c_char,
) -> c_int {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes in memory, failing reads that touch `bad`.
    struct Mem {
        bytes: Vec<u8>,
        bad: Option<std::ops::Range<u64>>,
    }

    impl Pages for Mem {
        fn len(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let end = offset + buf.len() as u64;
            if let Some(bad) = &self.bad
                && offset < bad.end
                && bad.start < end
            {
                return Err(io::Error::other("unauthenticated"));
            }
            let at = offset as usize;
            buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
            Ok(())
        }
    }

    fn database(rows: usize) -> Vec<u8> {
        let mut db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        for i in 0..rows {
            db.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![i as i64, "x".repeat(200)],
            )
            .unwrap();
        }
        db.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
    }

    #[test]
    fn a_database_opened_through_the_vfs_answers_and_stays_read_only() {
        let bytes = database(2000);
        let conn = open(Box::new(Mem { bytes, bad: None })).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2000);
        let v: String = conn
            .query_row("SELECT v FROM t WHERE k = 1234", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v.len(), 200);
        let err = conn.execute("DELETE FROM t", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        // Many at once, and nothing left pending.
        let others: Vec<_> = (0..5)
            .map(|_| {
                open(Box::new(Mem {
                    bytes: database(3),
                    bad: None,
                }))
                .unwrap()
            })
            .collect();
        drop(others);
        drop(conn);
        assert!(pending().is_empty());
    }

    #[test]
    fn a_page_that_fails_to_read_is_an_io_error_not_a_panic() {
        let bytes = database(2000);
        let len = bytes.len() as u64;
        let conn = open(Box::new(Mem {
            bytes,
            bad: Some(len / 2..len / 2 + 1),
        }))
        .unwrap();
        let err = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::SystemIoFailure),
            "{err}"
        );
        // A page before the damage still reads.
        let v: String = conn
            .query_row("SELECT v FROM t WHERE k = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v.len(), 200);
    }

    #[test]
    fn reads_past_the_end_are_zeros_and_short() {
        let mut mem = Mem {
            bytes: vec![7; 10],
            bad: None,
        };
        let mut buf = [1u8; 8];
        assert_eq!(read_at(&mut mem, &mut buf, 6), ffi::SQLITE_IOERR_SHORT_READ);
        assert_eq!(buf, [7, 7, 7, 7, 0, 0, 0, 0]);
        assert_eq!(
            read_at(&mut mem, &mut buf, 100),
            ffi::SQLITE_IOERR_SHORT_READ
        );
        assert_eq!(buf, [0; 8]);
        assert_eq!(read_at(&mut mem, &mut buf, 0), ffi::SQLITE_OK);
    }

    #[test]
    fn only_a_pending_database_opens() {
        register().unwrap();
        let err = Connection::open_with_flags_and_vfs(
            "file:nothing?immutable=1",
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            VFS_NAME,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen),
            "{err}"
        );
    }
}
