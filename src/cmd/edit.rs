//! `vault secret edit NAME`: the secret as a dotenv file in the user's
//! editor, and the result saved as a new version (DESIGN v2 "Files,
//! editing, generating").
//!
//! The plaintext file is the one place where `vault` puts values in a file,
//! so it goes only where a file is memory: a fresh 0700 directory on a
//! tmpfs (`/dev/shm`, else `$XDG_RUNTIME_DIR`; neither a tmpfs is a
//! refusal, never a fallback to disk), overwritten and removed whatever
//! happens. The editor gets the file's path, never a value. The secret is
//! re-read under the write lock: if someone changed it while the editor
//! was open, nothing is saved (no lost update).

use std::{
    fs::{self, File, OpenOptions},
    io::{Seek, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use zeroize::Zeroizing;

use crate::output::note;
use crate::{
    context::Context,
    dotenv,
    error::{Error, Result},
    names::{EnvKey, SecretName, SecretValue},
    store::{self, history},
    unlock,
    vault::{self, Vault},
};

/// `statfs`'s `f_type` of a tmpfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;

pub(crate) fn run(ctx: &Context, name: &str) -> Result<()> {
    let name = SecretName::parse(name)?;
    if !crate::term::have_terminal() {
        return Err(Error::new("`vault secret edit` needs a terminal for the editor")
            .hint(format!(
                "without one, use `vault secret set {name} KEY…` (values from stdin) or `vault secret create {name} --force --from-dotenv FILE`"
            )));
    }
    let base = private_tmpfs()?;
    // Ctrl-C reaches the editor and us alike, and a signal that killed us
    // would leave the file behind: catch them while the file exists (a
    // handled signal resets to the default in the editor, on exec). After
    // Ctrl-C (which an editor such as vim takes for itself) the editor
    // finishes, then we clean up and stop. SIGTERM, SIGHUP and SIGQUIT
    // mean we are being ended (a closed terminal, `script` or a session
    // manager, which send SIGKILL a moment later): the editor is told to
    // end too and the file is wiped at once, not when the editor exits.
    // SIGKILL cannot be caught.
    let interrupted = Arc::new(AtomicBool::new(false));
    let ending = Arc::new(AtomicBool::new(false));
    let mut handlers: Vec<_> = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
        .into_iter()
        .filter_map(|sig| signal_hook::flag::register(sig, Arc::clone(&interrupted)).ok())
        .collect();
    handlers.extend(
        [SIGTERM, SIGHUP, SIGQUIT]
            .into_iter()
            .filter_map(|sig| signal_hook::flag::register(sig, Arc::clone(&ending)).ok()),
    );
    let stopped = || {
        interrupted
            .load(Ordering::Relaxed)
            .then(|| Error::new(format!("interrupted: nothing changed in `{name}`")))
    };
    let result = edit(ctx, &name, &base, &stopped, &ending);
    for id in handlers {
        signal_hook::low_level::unregister(id);
    }
    result
}

fn edit(
    ctx: &Context,
    name: &SecretName,
    base: &Path,
    stopped: &dyn Fn() -> Option<Error>,
    ending: &AtomicBool,
) -> Result<()> {
    // Unlocked once, for the read and the write: a passphrase is asked
    // once per edit, not again after the editor closes.
    let keys = unlock::for_read(ctx)?;
    let before = store::entries(Vault::open(&ctx.paths, &keys)?.conn(), &ctx.scope.env, name)?;
    let mut scratch = Scratch::new(base, name)?;
    scratch.fill(name, &before)?;
    let after = loop {
        let ran = run_editor(&scratch.path, ending);
        // Whatever file the editor left there holds values too.
        scratch.hold();
        if let Some(e) = stopped() {
            return Err(e);
        }
        ran?;
        match read_back(&scratch.path, &scratch.shown) {
            Ok(after) => break after,
            Err(e) => {
                crate::term::warn(e.message());
                let answer = crate::term::line_or_end("Edit again? [Y/n] ")?;
                if let Some(e) = stopped() {
                    return Err(e);
                }
                // The end of input (Ctrl-D, a hung-up terminal) is "no":
                // asking again would loop for ever.
                let again =
                    answer.is_some_and(|a| !matches!(a.trim().to_lowercase().as_str(), "n" | "no"));
                if !again {
                    return Err(Error::new(format!(
                        "nothing changed in `{name}`: {}",
                        e.message()
                    ))
                    .hint(format!(
                        "`vault secret edit {name}` starts again from the saved keys"
                    )));
                }
            }
        }
    };
    drop(scratch);
    let change = history::diff(&before, &after);
    if change.is_empty() {
        note!("No changes to `{name}`");
        return Ok(());
    }
    crate::fsio::check_vault_dir(&ctx.paths.dir)?;
    vault::write(&ctx.paths, vault::WriteKeys::Existing(keys), |db| {
        if store::entries(db, &ctx.scope.env, name)? != before {
            return Err(Error::new(format!(
                "`{name}` was changed by someone else while you edited it; nothing saved"
            ))
            .hint(format!(
                "`vault secret history {name}` shows the change; edit again to apply yours on top"
            )));
        }
        store::replace(db, &ctx.scope.env, name, &after)
    })?;
    note!("Saved `{name}`: {}", change.summary());
    Ok(())
}

/// The first of `/dev/shm` and `$XDG_RUNTIME_DIR` that is a tmpfs.
fn private_tmpfs() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/dev/shm")];
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(d));
    }
    candidates
        .into_iter()
        .find(|d| d.is_dir() && is_tmpfs(d))
        .ok_or_else(|| {
            Error::new("neither /dev/shm nor $XDG_RUNTIME_DIR is a tmpfs, so there is nowhere to edit without writing values to disk")
                .hint("mount a tmpfs on /dev/shm, or set XDG_RUNTIME_DIR to one; `vault secret set` changes keys without an editor")
        })
}

// `f_type` is an i64 here and a u32 or i32 on other architectures.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn is_tmpfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

/// The directory and file the editor works on; overwritten and removed
/// when dropped, on every path out (errors and panics included).
struct Scratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    /// How errors name the file: `NAME.env`, not the random directory.
    shown: String,
    /// Every file that was at `path` (the one vault wrote, and each the
    /// editor left there), open: an editor that saves by writing a new
    /// file and renaming it over (vim) unlinks the old one with every
    /// value in it, and only an open descriptor can still wipe it.
    held: Vec<File>,
}

impl Scratch {
    fn new(base: &Path, name: &SecretName) -> Result<Scratch> {
        // A random name, 0700 whatever the umask.
        let dir = tempfile::Builder::new()
            .prefix("vault-edit-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(base)
            .map_err(|e| Error::io("create a directory in", base, e))?;
        let path = dir.path().join(format!("{name}.env"));
        Ok(Scratch {
            dir: Some(dir),
            path,
            shown: format!("{name}.env"),
            held: vec![],
        })
    }

    /// Keeps the file now at `path` open, to wipe it at the end (once per
    /// file: the same inode is not held twice).
    #[allow(
        clippy::disallowed_methods,
        reason = "the scratch file, opened only to be wiped later"
    )]
    fn hold(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(f) = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.path)
        else {
            return;
        };
        let Ok(meta) = f.metadata() else { return };
        let seen = self.held.iter().any(|h| {
            h.metadata()
                .is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
        });
        if meta.is_file() && !seen {
            self.held.push(f);
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the one plaintext file vault writes: on a tmpfs, never renamed into place"
    )]
    fn fill(&mut self, name: &SecretName, entries: &[(EnvKey, SecretValue)]) -> Result<()> {
        let pairs: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let mut text = Zeroizing::new(format!(
            "# vault secret edit {name}: one KEY=VALUE per line, as in a .env file.\n\
             # Values are literal ($ is not expanded). Save and quit to apply;\n\
             # leave it unchanged to change nothing. Lines starting with # are ignored.\n"
        ));
        text.push_str(&dotenv::render_dotenv(&pairs));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| Error::io("create", &self.path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.held.push(f);
        Ok(())
    }
}

impl Drop for Scratch {
    #[allow(
        clippy::disallowed_methods,
        reason = "overwriting the scratch files in place is the point"
    )]
    fn drop(&mut self) {
        // Overwrite before removing: the pages of a removed tmpfs file go
        // back to the kernel unwiped. Every file that was at the path (held
        // open, even if the editor has unlinked it; a hard link to it is
        // wiped with it), then whatever else the editor left beside it
        // (backup and swap files), by name, never through a symlink.
        for f in &mut self.held {
            wipe(f);
        }
        if let Some(dir) = &self.dir
            && let Ok(entries) = fs::read_dir(dir.path())
        {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file())
                    && let Ok(mut f) = OpenOptions::new()
                        .write(true)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(entry.path())
                {
                    wipe(&mut f);
                }
            }
        }
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Overwrites all of `f` with zeros, in place.
fn wipe(f: &mut File) {
    let len = f.metadata().map_or(0, |m| m.len());
    let zeros = vec![0u8; 1 << 16];
    let mut left = len;
    let _ = f.rewind();
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        if f.write_all(&zeros[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = f.sync_data();
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, on `path`, through `sh` as git
/// does (so `EDITOR="code --wait"` works); only the path is an argument.
/// Runs the editor on `path` and waits for it, or until `ending` is set:
/// then the editor gets SIGTERM, and this returns at once (the caller
/// wipes the file; an editor still running only finds it gone).
fn run_editor(path: &Path, ending: &AtomicBool) -> Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|e| !e.is_empty())
        .unwrap_or_else(|| "vi".into());
    let mut script = editor.clone();
    script.push(" \"$@\"");
    let cannot = |e: std::io::Error| {
        Error::new(format!(
            "cannot start the editor: {}",
            crate::error::describe_io(&e)
        ))
    };
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .arg("vault-editor")
        .arg(path)
        .spawn()
        .map_err(cannot)?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(cannot)? {
            break status;
        }
        if ending.load(Ordering::Relaxed) {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            // Reaped if it ends at once; the caller stops either way.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = child.try_wait();
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    if !status.success() {
        return Err(Error::new(format!(
            "the editor `{}` failed ({status}); nothing changed",
            crate::names::printable(&editor.to_string_lossy())
        ))
        .hint("set VISUAL or EDITOR to an editor that exits 0 once the file is saved"));
    }
    Ok(())
}

/// The edited file as entries, checked as if typed; an error names the line.
fn read_back(path: &Path, shown: &str) -> Result<Vec<(EnvKey, SecretValue)>> {
    let bytes = Zeroizing::new(read_private(path)?);
    let opts = dotenv::Options {
        expand: false,
        skip_invalid: false,
    };
    let parsed =
        dotenv::parse(&bytes, &opts, &|_| None).map_err(|e| Error::new(format!("{shown}, {e}")))?;
    for w in &parsed.warnings {
        crate::term::warn(&format!("{shown}, {w}"));
    }
    let mut out = vec![];
    for entry in parsed.entries {
        let at = |e: Error| Error::new(format!("{shown}, line {}: {}", entry.line, e.message()));
        let key = EnvKey::parse(&entry.key).map_err(at)?;
        let value = SecretValue::new(&key, entry.value).map_err(at)?;
        out.push((key, value));
    }
    if out.is_empty() {
        return Err(Error::new(format!(
            "{shown} has no keys left (`vault secret delete` removes a secret)"
        )));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn read_private(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut buf = vec![];
    f.read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_is_told_from_a_disk() {
        if Path::new("/dev/shm").is_dir() {
            assert!(is_tmpfs(Path::new("/dev/shm")));
        }
        assert!(!is_tmpfs(Path::new("/proc")));
    }

    #[test]
    fn what_is_rendered_reads_back_unchanged() {
        let tricky = [
            "plain",
            "a$b ${X} $(rm -rf /) `x`",
            "multi\nline\r\nvalue\\",
            "quotes ' and \" and # hash",
            " spaced ",
            "",
            "ünïcödé",
        ];
        let pairs: Vec<(String, &str)> = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("K{i}"), *v))
            .collect();
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.env");
        crate::fsio::write_fixture(&path, dotenv::render_dotenv(&borrowed));
        let back = read_back(&path, "s.env").unwrap();
        for (k, v) in &pairs {
            let got = back.iter().find(|(bk, _)| bk.as_str() == k).unwrap();
            assert_eq!(got.1.expose(), *v, "{k}");
        }
    }

    #[test]
    fn a_broken_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.env");
        crate::fsio::write_fixture(&path, "A=1\nB=\"unterminated\n");
        let e = read_back(&path, "s.env").unwrap_err();
        assert!(e.message().starts_with("s.env, line 2"), "{e:?}");
        crate::fsio::write_fixture(&path, "# only a comment\n");
        assert!(
            read_back(&path, "s.env")
                .unwrap_err()
                .message()
                .contains("no keys")
        );
    }
}
