//! Files on disk: the vault directory, atomic replacement of a file, the
//! writers' lock, and permission checks. Nothing here knows about age or
//! SQLite; it moves bytes that are already encrypted.

use std::{
    fs::{self, DirBuilder, File, OpenOptions, TryLockError},
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// How long a writer waits for another writer before giving up.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates `dir` (and its parents) if needed; the last component gets 0700.
/// Idempotent, so concurrent first writes do not trip over each other.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("create directory", dir, e)),
    }
}

/// The exclusive advisory lock writers hold for a whole read-modify-write.
/// Released when dropped (closing the file releases the `flock`).
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

impl WriteLock {
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        Self::acquire_within(path, LOCK_TIMEOUT)
    }

    #[allow(clippy::disallowed_methods, reason = "fsio owns the lock file")]
    pub(crate) fn acquire_within(path: &Path, timeout: Duration) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(WriteLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::new(format!(
                        "another `vault` process has held the lock on {} for more than {} s",
                        path.display(),
                        timeout.as_secs()
                    ))
                    .hint("wait for the other write to finish and try again; `fuser -v` on the lock file shows who holds it"));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
            }
        }
    }
}

/// The prefix and suffix of the temporary files `atomic_write` makes for
/// `target`: `.vault.age.XXXXXX.tmp` beside `vault.age`.
fn temp_affixes(target: &Path) -> (String, &'static str) {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (format!(".{name}."), ".tmp")
}

/// Replaces `target` with what `fill` writes, so that at every moment the
/// path holds either the old file or the complete new one: a temp file in the
/// same directory (0600), fsync, rename, fsync of the directory. On any error
/// the temp file is removed and `target` is untouched.
pub(crate) fn atomic_write(
    target: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let dir = parent(target);
    let (prefix, suffix) = temp_affixes(target);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(|e| Error::io("create a temporary file in", &dir, e))?;
    let written = fill(tmp.as_file_mut())
        .and_then(|()| tmp.as_file_mut().flush())
        .and_then(|()| tmp.as_file().sync_all());
    if let Err(e) = written {
        return Err(Error::io("write", target, e));
    }
    tmp.persist(target)
        .map_err(|e| Error::io("replace", target, e.error))?;
    sync_dir(&dir)
}

/// Removes temp files a killed writer left beside `target`. Only called with
/// the write lock held, when no other writer can have one open.
pub(crate) fn remove_stale_temps(target: &Path) {
    let dir = parent(target);
    let (prefix, suffix) = temp_affixes(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(suffix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Temp files beside `target` (for `doctor` and tests).
pub fn stale_temps(target: &Path) -> Vec<PathBuf> {
    let dir = parent(target);
    let (prefix, suffix) = temp_affixes(target);
    fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(suffix)
        })
        .map(|e| e.path())
        .collect()
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Appends `bytes` to `path` in one write, creating it (0600) if missing:
/// for a file another program owns and reads after us, such as GitHub's
/// `GITHUB_ENV`, never for a vault file (those are replaced atomically).
#[allow(
    clippy::disallowed_methods,
    reason = "fsio is where files are opened for writing"
)]
pub(crate) fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("append to", path, e))
}

pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The most `vault` reads from one input file or stdin. Far above any real
/// `.env`, JSON or key file (a bulk import of 100,000 secrets is well under
/// it), and low enough that `--from-json /dev/zero` fails instead of eating
/// all memory.
pub(crate) const MAX_INPUT: u64 = 256 << 20;

/// How long a named pipe with no writer is given for one to show up: long
/// enough for a writer that is opening its end right now, short enough that
/// a forgotten `mkfifo` does not look like a hang.
pub(crate) const FIFO_WRITER_WAIT: Duration = Duration::from_secs(1);

/// Opens `path` for reading without ever blocking in `open`: a named pipe
/// with no writer opens at once instead of waiting forever.
#[allow(clippy::disallowed_methods, reason = "fsio is where files are opened")]
fn open_nonblocking(path: &Path) -> Result<(File, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| Error::io("read", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if meta.is_dir() {
        return Err(Error::new(format!(
            "{} is a directory, not a file",
            path.display()
        )));
    }
    Ok((file, meta))
}

/// Back to ordinary blocking reads once we know someone is writing.
fn set_blocking(file: &File, path: &Path) -> Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    fcntl_getfl(file)
        .and_then(|fl| fcntl_setfl(file, fl - OFlags::NONBLOCK))
        .map_err(|e| Error::io("read", path, e.into()))
}

/// Opens a file that must be a regular file (the vault, which is read with
/// seeks): a directory, a pipe or a device there is refused, never waited on.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let (file, meta) = open_nonblocking(path)?;
    if !meta.is_file() {
        return Err(
            Error::new(format!("{} is not a regular file", path.display()))
                .hint("move it aside; `vault doctor` checks the vault's files"),
        );
    }
    set_blocking(&file, path)?;
    Ok(file)
}

/// Reads a whole file with an error that names it. Regular files and pipes
/// (`--from-json <(cmd)` is a legitimate use) are read; a named pipe that no
/// one writes to is an error after a moment, not a hang.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let (file, meta) = open_nonblocking(path)?;
    let mut start = vec![];
    if meta.file_type().is_fifo() {
        wait_for_writer(&file, path, &mut start)?;
    }
    set_blocking(&file, path)?;
    read_all(file, start, &path.display().to_string(), |e| {
        Error::io("read", path, e)
    })
}

/// A nonblocking read tells a pipe with a writer (data, or `WouldBlock`)
/// from one without (end of file at once). Without one, wait a moment for
/// a writer that is still opening its end (poll reports neither data nor
/// hang-up on a pipe that has never had a writer).
fn wait_for_writer(file: &File, path: &Path, start: &mut Vec<u8>) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut buf = [0u8; 8192];
    match (&*file).read(&mut buf) {
        Ok(0) => {}
        Ok(n) => {
            start.extend_from_slice(&buf[..n]);
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(Error::io("read", path, e)),
    }
    let wait = Timespec {
        tv_sec: FIFO_WRITER_WAIT.as_secs() as _,
        tv_nsec: FIFO_WRITER_WAIT.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(file, PollFlags::IN)];
    match poll(&mut fds, Some(&wait)) {
        Ok(0) => Err(Error::new(format!(
            "{} is a named pipe and nothing is writing to it",
            path.display()
        ))
        .hint("start the command that writes to it first, or pass a regular file")),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::io("read", path, e.into())),
    }
}

/// Reads `r` to the end after `start`, refusing more than `MAX_INPUT`
/// bytes; `io_error` words a failed read.
pub(crate) fn read_all(
    r: impl Read,
    start: Vec<u8>,
    source: &str,
    io_error: impl FnOnce(io::Error) -> Error,
) -> Result<Vec<u8>> {
    let mut out = start;
    r.take(MAX_INPUT + 1 - out.len() as u64)
        .read_to_end(&mut out)
        .map_err(io_error)?;
    if out.len() as u64 > MAX_INPUT {
        return Err(Error::new(format!(
            "{source} is larger than {} MiB, more than any vault input can be",
            MAX_INPUT >> 20
        )));
    }
    Ok(out)
}

/// Refuses a file that group or others may read: a passphrase file must be
/// as private as the key it unlocks (ssh refuses such keys the same way).
pub(crate) fn check_private(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::new(format!(
            "{} is readable by other users (mode {mode:04o})",
            path.display()
        ))
        .hint(format!("chmod 600 {}", path.display())));
    }
    Ok(())
}

/// Writes a test fixture in place (unit tests only: the product writes
/// through `atomic_write`).
#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "fsio's test helper")]
pub(crate) fn write_fixture(path: &Path, bytes: impl AsRef<[u8]>) {
    fs::write(path, bytes).expect("write a test fixture");
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "fsio's own tests")]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vault.age");
        fs::write(&target, b"old").unwrap();
        atomic_write(&target, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(stale_temps(&target).is_empty());
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vault.age");
        fs::write(&target, b"old").unwrap();
        let err = atomic_write(&target, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.message().contains("cannot write"));
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(stale_temps(&target).is_empty());
    }

    #[test]
    fn stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vault.age");
        let stale = dir.path().join(".vault.age.abc123.tmp");
        fs::write(&stale, b"x").unwrap();
        fs::write(dir.path().join("other.tmp"), b"x").unwrap();
        assert_eq!(stale_temps(&target), vec![stale.clone()]);
        remove_stale_temps(&target);
        assert!(!stale.exists());
        assert!(dir.path().join("other.tmp").exists());
    }

    #[test]
    fn lock_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.lock");
        let _held = WriteLock::acquire(&path).unwrap();
        let err = WriteLock::acquire_within(&path, Duration::from_millis(100)).unwrap_err();
        assert!(err.message().contains("held the lock"), "{err:?}");
    }
}
