//! Files on disk: the vault directory, atomic replacement of a file, the
//! writers' lock, and permission checks. Nothing here knows about age or
//! SQLite; it moves bytes that are already encrypted.

use std::{
    fs::{self, DirBuilder, File, OpenOptions, TryLockError},
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result, describe_io};

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

    pub(crate) fn acquire_within(path: &Path, timeout: Duration) -> Result<Self> {
        let file = open_lock(path)?;
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

/// Opens (creating if needed) a lock file, never through a symlink
/// (`O_NOFOLLOW`): with `--vault /tmp/shared/x`, another user could plant
/// `x.lock -> /etc/something` and have our `O_CREAT` make or open that
/// file. What is opened must be a regular file of our own (a FIFO or a
/// device there is refused, and `O_NONBLOCK` keeps the open itself from
/// waiting on one).
#[allow(clippy::disallowed_methods, reason = "fsio owns the lock file")]
fn open_lock(path: &Path) -> Result<File> {
    use rustix::fs::OFlags;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Error::new(format!(
                    "the lock file {} is a symbolic link, which vault does not follow",
                    path.display()
                ))
                .hint(format!(
                    "remove it (`rm {}`); vault creates the lock itself",
                    path.display()
                ))
            } else if e.raw_os_error() == Some(rustix::io::Errno::ISDIR.raw_os_error()) {
                Error::new(format!(
                    "the lock file {} is a directory, not a regular file",
                    path.display()
                ))
                .hint("move it aside; vault creates the lock itself")
            } else {
                Error::io("open lock file", path, e)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("open lock file", path, e))?;
    if !meta.is_file() {
        return Err(Error::new(format!(
            "the lock file {} is not a regular file",
            path.display()
        ))
        .hint("move it aside; vault creates the lock itself"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::new(format!(
            "the lock file {} belongs to uid {}, not to you ({me})",
            path.display(),
            meta.uid()
        ))
        .hint("another user made it: remove it if you own the directory, or keep the vault in a directory of your own"));
    }
    Ok(file)
}

/// What `doctor` finds at a lock file: free, held by a writer, or not
/// usable at all (read-only file system, permissions, a symlink), which a
/// writer would fail on too.
#[derive(Debug)]
pub(crate) enum LockState {
    Free,
    Held,
    Unusable(Error),
}

/// Looks at the lock without waiting and without keeping it.
pub(crate) fn probe_lock(path: &Path) -> LockState {
    let file = match open_lock(path) {
        Ok(f) => f,
        Err(e) => return LockState::Unusable(e),
    };
    match file.try_lock() {
        Ok(()) => LockState::Free,
        Err(TryLockError::WouldBlock) => LockState::Held,
        Err(TryLockError::Error(e)) => LockState::Unusable(Error::io("lock", path, e)),
    }
}

/// The file a vault or identity path stands for: a symlink is followed
/// (to its final target, which need not exist yet), so that reads, the
/// temporary file, the rename and the lock all happen beside the real
/// file, and a dotfile or sync-folder symlink keeps receiving updates
/// instead of being replaced by a regular file on the first write. Any
/// other path is returned as it is.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    // The kernel's own limit on a chain of links (MAXSYMLINKS).
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    fs::read_link(&current).map_err(|e| Error::io("resolve", &current, e))?;
                current = parent(&current).join(target);
            }
            _ => return Ok(current),
        }
    }
    Err(Error::new(format!(
        "{} is a chain of more than 40 symbolic links",
        path.display()
    ))
    .hint("point it at the vault file directly"))
}

/// Refuses a vault path that exists and is not a regular file (a device,
/// a FIFO, a directory): a write would rename a file over it, or read
/// from it.
pub(crate) fn refuse_non_regular(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(Error::new(if m.is_dir() {
            format!("{} is a directory, not a vault file", path.display())
        } else {
            format!("{} is not a regular file", path.display())
        })
        .hint("a vault file is a regular file; move this aside or pass another path with --vault")),
        _ => Ok(()),
    }
}

/// Refuses a `VAULT_DIR` that another user owns or that group or others
/// may write to: whoever can write there can swap `identity.age` or
/// `vault.age` for files of their own. A directory that does not exist yet
/// passes (`ensure_dir` creates it 0700).
pub(crate) fn check_vault_dir(dir: &Path) -> Result<()> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::new(format!(
            "the vault directory {} belongs to uid {}, not to you ({me})",
            dir.display(),
            meta.uid()
        ))
        .hint("use a vault directory of your own (VAULT_DIR / --vault-dir)"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::new(format!(
            "the vault directory {} may be written by other users (mode {:04o})",
            dir.display(),
            mode & 0o777
        ))
        .hint(format!("chmod 700 {}", dir.display())));
    }
    Ok(())
}

/// Finds `name` (`.env`, later `vault.toml`) in `start` or the nearest
/// folder above it, searching only where a file cannot have been planted
/// by another user (DESIGN "v2: Hardening", upward searches). It looks in
/// each folder from `start` up and stops:
///
/// - after the folder that holds `.git` (the top of a project), after
///   `$HOME`, and at `/`;
/// - *before* a folder not owned by the user or root, or writable by group
///   or others unless it is sticky and the user's own (so `/tmp` and
///   `/tmp/shared` stop it);
/// - at a file found but owned by another user: not used, with a warning
///   naming it.
///
/// `Err` says where the search stopped, for the caller's "not found";
/// `warn` gets the warnings (the caller owns the terminal).
pub(crate) fn find_upward(
    start: &Path,
    name: &str,
    warn: &mut dyn FnMut(&str),
) -> std::result::Result<PathBuf, String> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| fs::canonicalize(&h).unwrap_or_else(|_| PathBuf::from(h)));
    let me = rustix::process::geteuid().as_raw();
    search_upward(start, name, home.as_deref(), me, warn)
}

fn search_upward(
    start: &Path,
    name: &str,
    home: Option<&Path>,
    me: u32,
    warn: &mut dyn FnMut(&str),
) -> std::result::Result<PathBuf, String> {
    let start = fs::canonicalize(start)
        .or_else(|_| std::path::absolute(start))
        .unwrap_or_else(|_| start.to_path_buf());
    let mut dir = start.as_path();
    loop {
        let Ok(meta) = fs::metadata(dir) else {
            return Err(format!("{} cannot be read", dir.display()));
        };
        let owner_ok = meta.uid() == me || meta.uid() == 0;
        let mode = meta.mode();
        let shared = mode & 0o022 != 0 && !(mode & 0o1000 != 0 && meta.uid() == me);
        if !owner_ok || shared {
            let why = if owner_ok {
                "other users may write to it"
            } else {
                "another user owns it"
            };
            return Err(format!("the search stops before {}: {why}", dir.display()));
        }
        let candidate = dir.join(name);
        if let Ok(m) = fs::metadata(&candidate)
            && m.is_file()
        {
            if m.uid() != me {
                warn(&format!(
                    "{} belongs to uid {}, not to you ({me}), so it is not used",
                    candidate.display(),
                    m.uid()
                ));
                return Err(format!(
                    "the search stops at {}, which another user wrote",
                    candidate.display()
                ));
            }
            return Ok(candidate);
        }
        if dir.join(".git").exists() {
            return Err(format!(
                "the search stops at the top of the repository, {}",
                dir.display()
            ));
        }
        if Some(dir) == home {
            return Err(format!(
                "the search stops at your home directory, {}",
                dir.display()
            ));
        }
        match dir.parent() {
            Some(up) => dir = up,
            None => return Err("the search stops at /".to_string()),
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
    atomic_write_mode(target, 0o600, true, fill)
}

/// `atomic_write`, with the fsyncs only when `durable`: git's merge driver
/// replaces a temporary file git owns and syncs itself (DESIGN v2 "Git"),
/// and `cache/verified` is only a cache (a crash may lose it, which costs
/// only a slower next read). Both still get temp + rename: a reader sees
/// the old file or the whole new one, and a failure leaves the old file.
pub(crate) fn atomic_replace(
    target: &Path,
    durable: bool,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    atomic_write_mode(target, 0o600, durable, fill)
}

/// `atomic_write` of a file meant to be shared, not secret (a repository's
/// `.gitattributes` and `.gitignore`, which `vault git setup` appends to):
/// it keeps the mode of the file it replaces, else 0644. A symlink there
/// is followed, so the file it points to is the one changed.
pub(crate) fn write_shared(target: &Path, bytes: &[u8]) -> Result<()> {
    let target = resolve(target)?;
    let mode = fs::metadata(&target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    atomic_write_mode(&target, mode, true, |f| f.write_all(bytes))
}

fn atomic_write_mode(
    target: &Path,
    mode: u32,
    durable: bool,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let dir = parent(target);
    let (prefix, suffix) = temp_affixes(target);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .map_err(|e| Error::io_replacing("create a temporary file in", &dir, target, e))?;
    if mode != 0o600 {
        // `vault` runs with umask 077, which the mode given above went
        // through.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the mode of", tmp.path(), e))?;
    }
    let written = fill(tmp.as_file_mut())
        .and_then(|()| tmp.as_file_mut().flush())
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        });
    if let Err(e) = written {
        return Err(Error::io_replacing("write", target, target, e));
    }
    if !durable && exchange(tmp.path(), target) {
        // The file replaced is now at the temporary name, and goes with it
        // (a leftover is an old copy, removed as a stale temp later).
        let _ = tmp.close();
        return Ok(());
    }
    tmp.persist(target)
        .map_err(|e| Error::io_replacing("replace", target, target, e.error))?;
    if durable { sync_dir(&dir) } else { Ok(()) }
}

/// Swaps the written temporary file `tmp` with the regular file `target`
/// in one step, where the system can (Linux: `renameat2(RENAME_EXCHANGE)`):
/// `target` names the new file at once, as a rename over it would do. Only
/// for a write that is not fsynced (`git merge`'s result, the cache): ext4
/// flushes a file renamed over another to disk at the rename (its
/// `auto_da_alloc` guard for programs that do not fsync), about 2 ms for a
/// 1 MB vault, and an exchange is not a rename over anything. A durable
/// write has already fsynced, so it has nothing to flush. False (nothing
/// done) when `target` is not a regular file or the exchange is refused.
fn exchange(tmp: &Path, target: &Path) -> bool {
    if !fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        renameat_with(CWD, tmp, CWD, target, RenameFlags::EXCHANGE).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tmp;
        false
    }
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

/// `path` opened to append, created (0600) if missing: for a file another
/// program owns and reads after us, such as GitHub's `GITHUB_ENV`, never
/// for a vault file (those are replaced atomically). Opened apart from
/// `append_to`, so that a caller which prints something first (`export
/// --format github`'s masks) does so only once the file is sure to open.
#[allow(
    clippy::disallowed_methods,
    reason = "fsio is where files are opened for writing"
)]
pub(crate) fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// Appends `bytes` in one write to `file`, which `open_append` opened.
pub(crate) fn append_to(mut file: File, path: &Path, bytes: &[u8]) -> Result<()> {
    // A write cut short (a full disk, `ulimit -f`) must not leave half a
    // block behind (for `$GITHUB_ENV`, half a value under an unterminated
    // heredoc): the file is cut back to what it held.
    let before = file
        .metadata()
        .map_err(|e| Error::io("append to", path, e))?
        .len();
    file.write_all(bytes).map_err(|e| {
        let restored = file.set_len(before).is_ok();
        let e = Error::new(format!(
            "cannot append to {}: {}{}",
            path.display(),
            describe_io(&e),
            if restored {
                "; it holds what it held before"
            } else {
                ""
            }
        ));
        if restored {
            e.hint("free some disk space (or raise the file-size limit) and try again")
        } else {
            e.hint(format!(
                "its end may hold part of what was written: check {}",
                path.display()
            ))
        }
    })
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
    // A device is no input file: `/dev/zero` or `/dev/full` reads as an
    // endless run of zeros, which "larger than 256 MiB" misdescribes.
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
        return Err(
            Error::new(format!("{} is a device, not a file", path.display()))
                .hint("give a regular file (or a pipe)"),
        );
    }
    if meta.is_file() && meta.len() > MAX_INPUT {
        return Err(too_large(&path.display().to_string()));
    }
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
        return Err(too_large(source));
    }
    Ok(out)
}

fn too_large(source: &str) -> Error {
    Error::new(format!(
        "{source} is larger than {} MiB, more than any vault input can be",
        MAX_INPUT >> 20
    ))
}

/// Refuses a file that group or others may read: a passphrase file or an
/// identity must be as private as the key it is (ssh refuses such keys the
/// same way). A device (`/dev/null`) is no such file at all, and `chmod`
/// would be the wrong advice; a pipe (`<(pass show vault)`) is checked like
/// a file (an anonymous one is 0600).
pub(crate) fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        // Reading it says "is a directory", with the caller's hint.
        return Ok(());
    }
    if kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
        return Err(Error::new(format!(
            "{} is a device, not a file holding a key or passphrase",
            path.display()
        ))
        .hint("put it in a file of its own, readable only by you (chmod 600 FILE)"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::new(format!(
            "{} is not private: {} (mode {mode:04o})",
            path.display(),
            open_to_others(mode)
        ))
        .hint(format!("chmod 600 {}", path.display())));
    }
    Ok(())
}

/// What the group and other bits of `mode` let others do, in words:
/// `0640` "its group can read it", `0620` "its group can write it",
/// `0666` "its group and others can read and write it".
fn open_to_others(mode: u32) -> String {
    let verbs = |bits: u32| -> String {
        let v: Vec<&str> = [(4, "read"), (2, "write"), (1, "execute")]
            .into_iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, v)| v)
            .collect();
        match v.as_slice() {
            [one] => one.to_string(),
            [a, b] => format!("{a} and {b}"),
            [a, b, c] => format!("{a}, {b} and {c}"),
            _ => String::new(),
        }
    };
    let (group, other) = ((mode >> 3) & 7, mode & 7);
    match (group, other) {
        (g, o) if g == o => format!("its group and others can {} it", verbs(g)),
        (g, 0) => format!("its group can {} it", verbs(g)),
        (0, o) => format!("others can {} it", verbs(o)),
        (g, o) => format!(
            "its group can {} it and others can {} it",
            verbs(g),
            verbs(o)
        ),
    }
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
    fn open_modes_are_described_by_their_bits() {
        assert_eq!(open_to_others(0o640), "its group can read it");
        assert_eq!(open_to_others(0o620), "its group can write it");
        assert_eq!(open_to_others(0o604), "others can read it");
        assert_eq!(
            open_to_others(0o666),
            "its group and others can read and write it"
        );
        assert_eq!(
            open_to_others(0o674),
            "its group can read, write and execute it and others can read it"
        );
    }

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
    fn a_write_that_is_not_fsynced_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("work.age");
        fs::write(&target, b"old").unwrap();
        let before = fs::metadata(&target).unwrap().ino();
        atomic_replace(&target, false, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A new file in its place, as after a rename; nothing else left.
        assert_ne!(fs::metadata(&target).unwrap().ino(), before);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // No file there yet: made.
        let fresh = dir.path().join("fresh.age");
        atomic_replace(&fresh, false, |f| f.write_all(b"x")).unwrap();
        assert_eq!(fs::read(&fresh).unwrap(), b"x");
        // A directory in the way is not swapped out of its place.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(atomic_replace(&sub, false, |f| f.write_all(b"x")).is_err());
        assert!(sub.is_dir());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn an_exchange_swaps_the_two_files_or_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"new").unwrap();
        fs::write(&b, b"old").unwrap();
        let swapped = exchange(&a, &b);
        let (a_now, b_now) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        if swapped {
            assert_eq!(
                (a_now.as_slice(), b_now.as_slice()),
                (&b"old"[..], &b"new"[..])
            );
        } else {
            assert_eq!(
                (a_now.as_slice(), b_now.as_slice()),
                (&b"new"[..], &b"old"[..])
            );
        }
        // Linux file systems that vault's tests run on (ext4, tmpfs, xfs,
        // btrfs) all exchange.
        assert!(swapped || !cfg!(target_os = "linux"));
        // Never with a target that is not a regular file.
        fs::remove_file(&b).unwrap();
        assert!(!exchange(&a, &b));
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(!exchange(&a, &b));
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
    fn lock_is_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let lock = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = WriteLock::acquire(&lock).unwrap_err();
        assert!(err.message().contains("is a symbolic link"), "{err:?}");
        assert!(!target.exists(), "O_CREAT followed the link");
        assert!(matches!(probe_lock(&lock), LockState::Unusable(_)));
    }

    #[test]
    fn lock_must_be_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("x.lock");
        fs::create_dir(&lock).unwrap();
        assert!(WriteLock::acquire(&lock).is_err());
        assert!(matches!(
            probe_lock(&dir.path().join("free.lock")),
            LockState::Free
        ));
    }

    #[test]
    fn resolve_follows_chains_to_targets_that_need_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("sync/vault.age");
        fs::create_dir(dir.path().join("sync")).unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink("sync/vault.age", &b).unwrap();
        std::os::unix::fs::symlink(&b, &a).unwrap();
        assert_eq!(resolve(&a).unwrap(), dir.path().join("sync/vault.age"));
        assert_eq!(resolve(&real).unwrap(), real);
        let lp = dir.path().join("loop");
        std::os::unix::fs::symlink(&lp, &lp).unwrap();
        assert!(resolve(&lp).unwrap_err().message().contains("chain"));
    }

    #[test]
    fn vault_dir_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        check_vault_dir(dir.path()).unwrap();
        check_vault_dir(&dir.path().join("missing")).unwrap();
        for mode in [0o777, 0o720, 0o702, 0o1777] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            let err = check_vault_dir(dir.path()).unwrap_err();
            assert!(
                err.message().contains("may be written by other users"),
                "{mode:o}"
            );
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        check_vault_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_device_is_not_a_private_file() {
        let err = check_private(Path::new("/dev/null")).unwrap_err();
        assert!(err.message().contains("is a device"), "{err:?}");
        assert!(!err.hint_text().unwrap().contains("/dev/null"));
    }

    fn search(
        start: &Path,
        home: Option<&Path>,
    ) -> (std::result::Result<PathBuf, String>, Vec<String>) {
        let mut warnings = vec![];
        let me = rustix::process::geteuid().as_raw();
        let found = search_upward(start, ".env", home, me, &mut |w| {
            warnings.push(w.to_string())
        });
        (found, warnings)
    }

    fn mode(p: &Path, m: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn upward_search_finds_the_nearest_and_stops_where_design_says() {
        let t = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(t.path()).unwrap();
        let deep = root.join("a/b/c");
        fs::create_dir_all(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            mode(&root.join(d), 0o755);
        }
        fs::write(root.join(".env"), "A=1").unwrap();
        fs::write(root.join("a/.env"), "A=2").unwrap();
        // The nearest one, from any depth.
        assert_eq!(search(&deep, None).0.unwrap(), root.join("a/.env"));
        // Not above a repository's top...
        fs::create_dir(root.join("a/b/.git")).unwrap();
        let (found, _) = search(&deep, None);
        assert!(found.unwrap_err().contains("top of the repository"));
        fs::remove_dir(root.join("a/b/.git")).unwrap();
        // ... nor above $HOME.
        let (found, _) = search(&deep, Some(&root.join("a/b")));
        assert!(found.unwrap_err().contains("home directory"));
        // Not into a folder others may write to (the found one's folder
        // included), unless sticky and ours.
        mode(&root.join("a"), 0o777);
        let (found, _) = search(&deep, None);
        assert!(
            found.unwrap_err().contains("stops before"),
            "group/other-writable"
        );
        mode(&root.join("a"), 0o1777);
        assert_eq!(search(&deep, None).0.unwrap(), root.join("a/.env"));
        mode(&root.join("a"), 0o775);
        assert!(search(&deep, None).0.is_err());
    }

    /// As root, a folder or file can be given to another user to check the
    /// ownership rules; as anyone else this test has nothing to prove.
    #[test]
    fn upward_search_refuses_other_users_folders_and_files() {
        if rustix::process::geteuid().as_raw() != 0 {
            return;
        }
        let nobody = rustix::process::Uid::from_raw(65534);
        let t = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(t.path()).unwrap();
        let shared = root.join("shared");
        let proj = shared.join("proj");
        fs::create_dir_all(&proj).unwrap();
        mode(&shared, 0o755);
        mode(&proj, 0o755);
        fs::write(shared.join(".env"), "A=planted").unwrap();
        rustix::fs::chown(&shared, Some(nobody), None).unwrap();
        let (found, warnings) = search(&proj, None);
        assert!(found.unwrap_err().contains("another user owns it"));
        assert!(warnings.is_empty());
        // A file of another user's in a folder of ours: named, not used.
        fs::write(proj.join(".env"), "A=planted").unwrap();
        rustix::fs::chown(proj.join(".env"), Some(nobody), None).unwrap();
        let (found, warnings) = search(&proj, None);
        assert!(found.is_err());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("belongs to uid 65534"), "{warnings:?}");
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
