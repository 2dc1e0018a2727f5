//! Where things are and where the keys come from: the `Context` a command
//! gets (`Paths` of the vault's files, unlock `Sources`, the `Hardening` to
//! undo for `run`'s child, the `Scope`: environment and project), built
//! once from the global options.

use std::path::{Path, PathBuf};

use crate::{
    cli,
    error::{Error, Result},
    fsio,
    hardening::Hardening,
    project,
};

/// Everything a command needs to find and open the vault.
pub(crate) struct Context {
    pub(crate) paths: Paths,
    pub(crate) sources: Sources,
    /// The process state `vault` changed at start, restored for `run`'s child.
    pub(crate) hardening: Hardening,
    /// The environment and project the command works in.
    pub(crate) scope: project::Scope,
}

impl Context {
    pub(crate) fn new(
        global: &cli::Global,
        hardening: Hardening,
        usage: project::Use,
    ) -> Result<Self> {
        let dir = match &global.vault_dir {
            Some(d) => absolute(d)?,
            None => default_dir()?,
        };
        let file = global.vault.as_deref().map(absolute).transpose()?;
        let cwd = std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?;
        let scope = project::enter(
            usage,
            global.env.as_deref(),
            global.vault.as_deref(),
            global.no_project,
            &dir,
            &cwd,
        )?;
        // The project's vault, when no --vault/VAULT_FILE was given.
        let file = file.or_else(|| scope.vault.clone());
        Ok(Context {
            scope,
            paths: Paths {
                allow_older: global.allow_older,
                ..Paths::resolved(dir, file)?
            },
            sources: Sources {
                identity: global.identity.clone(),
                passphrase_file: global.passphrase_file.clone(),
            },
            hardening,
        })
    }
}

/// The unlock options a user gave (flags, or their environment variables).
#[derive(Debug, Default, Clone)]
pub(crate) struct Sources {
    pub(crate) identity: Option<PathBuf>,
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// Where a vault's files are.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `VAULT_DIR`: holds `identity.age`, and by default the vault and lock.
    pub(crate) dir: PathBuf,
    pub(crate) identity: PathBuf,
    pub(crate) file: PathBuf,
    /// The lock that serialises writers of `file`.
    pub(crate) lock: PathBuf,
    /// `VAULT_DIR/vault.lock`: the lock `identity.age` is written under
    /// (the same as `lock` for the default vault).
    pub(crate) dir_lock: PathBuf,
    /// Whether a vault file was named (`--vault`, `VAULT_FILE`, a
    /// project's `vault`), even one that turns out to be the default vault.
    pub(crate) named: bool,
    /// `--allow-older`: not a path, but how the vault at these paths may be
    /// written (DESIGN v2 "Trust", "Older files").
    pub(crate) allow_older: bool,
}

impl Paths {
    /// `dir` is `VAULT_DIR`; `file` is `--vault FILE` / `VAULT_FILE` if given.
    pub(crate) fn new(dir: PathBuf, file: Option<PathBuf>) -> Self {
        let named = file.is_some();
        let identity = dir.join("identity.age");
        let dir_lock = dir.join("vault.lock");
        let (file, lock) = match file {
            Some(f) => {
                let mut lock = f.clone().into_os_string();
                lock.push(".lock");
                (f, PathBuf::from(lock))
            }
            None => (dir.join("vault.age"), dir_lock.clone()),
        };
        Paths {
            dir,
            identity,
            file,
            lock,
            dir_lock,
            named,
            allow_older: false,
        }
    }

    /// `new`, with a vault or identity path that is a symlink resolved
    /// (DESIGN "v2: Hardening", Symlinks): reads, the temporary file, the
    /// rename and the lock all use the real file, so a dotfile or
    /// sync-folder symlink keeps receiving updates (a write used to replace
    /// the link with a regular file), and writers through either path
    /// exclude each other. The lock follows the usual rule beside the
    /// resolved file: `vault.lock` for the default vault, `FILE.lock` for
    /// `--vault FILE`; a `--vault` that names the default vault's real file
    /// is the default vault and takes its lock (one file, one lock).
    /// `dir_lock` stays `VAULT_DIR/vault.lock`, the lock of `identity.age`
    /// wherever the identity file really is.
    pub(crate) fn resolved(dir: PathBuf, file: Option<PathBuf>) -> Result<Self> {
        // Only a named file can be the default one under another name (no
        // extra lookups on the start-up path of a plain `vault run`).
        let default = file
            .as_ref()
            .and_then(|_| fsio::resolve(&dir.join("vault.age")).ok());
        let mut p = Paths::new(dir, file.clone());
        p.identity = fsio::resolve(&p.identity)?;
        p.file = fsio::resolve(&p.file)?;
        let given = file.is_some() && !default.is_some_and(|d| same_file(&d, &p.file));
        p.lock = if given {
            let mut lock = p.file.clone().into_os_string();
            lock.push(".lock");
            PathBuf::from(lock)
        } else {
            fsio::parent(&p.file).join("vault.lock")
        };
        Ok(p)
    }
}

/// Whether two resolved paths name one file: the same inode when both
/// exist, else the same path.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

fn default_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", "vault")
        .map(|d| d.config_dir().to_path_buf())
        .ok_or_else(|| {
            Error::new("cannot find a home directory for the vault")
                .hint("set VAULT_DIR or pass --vault-dir")
        })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}
