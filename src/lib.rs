//! `vault`: a local, offline secrets vault for developers.
//!
//! A *secret* is a named set of environment variables. All secrets live in
//! one SQLite database, serialized and encrypted with age to the vault's
//! recipients (`vault.age`); the owner's age identity is itself encrypted
//! with a passphrase (`identity.age`). The database is decrypted only into
//! memory, and `vault run` hands the merged secrets to a command by `exec`.
//!
//! Threat model in one paragraph: `vault` protects secrets at rest (a lost
//! laptop, backups, a file committed by accident) and keeps them out of argv,
//! shell history, logs and error messages. It does not protect against
//! malware running as the same user, against root, or against a child
//! process that leaks its own environment. See SECURITY.md.
//!
//! Layout: `cli` (clap definitions), `cmd` (one module per command, no SQL or
//! crypto), `vault` (the only code that touches vault files), `store` (schema
//! and queries), `crypto` (age), `unlock` (where the identity comes from),
//! `fsio` (atomic writes, the lock), `names` (validated names and values),
//! `dotenv` (our dotenv reader), `env` (the merged environment `run` gives
//! its child), `exec` (replacing `vault` with that child), `error`.

#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
mod cmd;
pub mod crypto;
pub mod dotenv;
pub mod env;
pub mod error;
pub mod exec;
pub mod fsio;
pub mod names;
pub mod store;
pub mod templates;
pub mod unlock;
pub mod vault;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
};

pub use error::{Error, Result};

/// How a masked value is shown everywhere: never its length.
pub const MASK: &str = "********";

/// Everything a command needs to find and open the vault.
pub struct Context {
    pub paths: vault::Paths,
    pub sources: unlock::Sources,
    /// The process state `vault` changed at start, restored for `run`'s child.
    pub hardening: Hardening,
}

impl Context {
    fn new(global: &cli::Global, hardening: Hardening) -> Result<Self> {
        let dir = match &global.vault_dir {
            Some(d) => absolute(d)?,
            None => default_dir()?,
        };
        let file = global.vault.as_deref().map(absolute).transpose()?;
        Ok(Context {
            paths: vault::Paths::new(dir, file),
            sources: unlock::Sources {
                identity: global.identity.clone(),
                passphrase_file: global.passphrase_file.clone(),
            },
            hardening,
        })
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

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}

/// The process settings `vault` hardens at start (DESIGN.md invariant 7),
/// as they were before, so that `run` can give its child the caller's.
#[derive(Debug, Clone, Copy)]
pub struct Hardening {
    umask: rustix::fs::Mode,
    core: rustix::process::Rlimit,
}

impl Hardening {
    /// umask 077; soft core limit 0 (the hard limit untouched, so it can be
    /// restored); not dumpable; SIGXFSZ handled, so a write past the
    /// file-size limit fails with EFBIG instead of killing us mid-write.
    pub fn apply() -> Hardening {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let core = getrlimit(Resource::Core);
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: core.maximum,
            },
        );
        #[cfg(target_os = "linux")]
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
        // A handled signal resets to default on exec; an ignored one would
        // stay ignored in `run`'s child.
        let _ = signal_hook::flag::register(
            signal_hook::consts::SIGXFSZ,
            Arc::new(AtomicBool::new(false)),
        );
        Hardening { umask, core }
    }

    /// Puts back the caller's umask and core limit (right before exec).
    pub fn restore(&self) {
        rustix::process::umask(self.umask);
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, self.core);
    }
}

/// Prints `vault: warning: …` on stderr.
pub fn warn(msg: &str) {
    eprintln!("vault: {}: {msg}", paint("warning", "33"));
}

/// Colour for stderr labels: only on a terminal, and never with `NO_COLOR`
/// set (no-color.org).
fn paint(label: &str, sgr: &str) -> String {
    use std::io::IsTerminal;
    let wanted = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if wanted {
        format!("\x1b[1;{sgr}m{label}\x1b[0m")
    } else {
        label.to_string()
    }
}

/// Parses the command line and runs it; returns the exit code.
pub fn main() -> i32 {
    let hardening = Hardening::apply();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli, hardening) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

pub fn run(cli: cli::Cli, hardening: Hardening) -> Result<()> {
    let ctx = Context::new(&cli.global, hardening)?;
    cmd::dispatch(&ctx, cli.command)
}

fn report(e: &Error) {
    eprintln!("vault: {}: {}", paint("error", "31"), e.message());
    if let Some(h) = e.hint_text() {
        eprintln!("{}: {h}", paint("hint", "36"));
    }
}
