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
//! Layout, top down (a module imports only from modules below it; none
//! imports from this file): `cli` (clap definitions), `cmd` (one module per
//! command, no SQL or crypto), `context` (`Context`, `Paths`, `Sources`),
//! `unlock` (where the keys come from), `vault` (the only code that touches
//! vault files and `identity.age`), `agent` (the unlock agent), `store`
//! (schema and queries), `crypto` (age: `identity`, `recipient`,
//! `payload`), `supervise` (`run --redact`: staying the child's parent),
//! `env` (the merged environment `run` gives its child), `exec` (replacing
//! `vault` with that child), `redact` (masking values in a stream), `dotenv`
//! (our dotenv reader),
//! `templates`, `term` (the terminal: prompts and colour), `fsio` (atomic
//! writes, the lock), `verified` (the cache of verified file versions),
//! `vfs` (the read-only SQLite VFS, the one module with `unsafe`), `hardening`, `names` (validated names and values),
//! `error`. Everything is `pub(crate)`; `testing` is the one door for
//! `tests/` and `fuzz/`.

// One module may use `unsafe`: `vfs`, the SQLite VFS over age's seekable
// reader (issue 20), audited there (its module doc says why it is sound).
#![deny(unsafe_code)]

mod agent;
mod cli;
mod cmd;
mod context;
mod crypto;
mod diffkey;
mod dotenv;
mod env;
mod error;
mod exec;
mod fsio;
mod hardening;
mod memfd;
mod merge;
mod names;
mod output;
mod project;
mod redact;
mod render;
mod sign;
mod store;
mod supervise;
mod templates;
mod term;
mod trust;
mod unlock;
mod vault;
mod verified;
mod vfs;

#[doc(hidden)]
pub mod testing;

use crate::{
    context::Context,
    error::{Error, Result},
    hardening::Hardening,
};

/// Parses the command line and runs it; returns the exit code.
pub fn main() -> i32 {
    let hardening = Hardening::apply();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A name, key or value that is not UTF-8 text is bad input,
            // like any invalid name (DESIGN "Errors and exit codes": exit
            // 1, whether clap or vault rejects it), not a usage error.
            if e.kind() == clap::error::ErrorKind::InvalidUtf8 {
                let err = Error::new("an argument is not UTF-8 text")
                    .hint("names, keys and values are UTF-8 text: check how the argument was made (its encoding, LANG / LC_ALL)");
                term::report(&err);
                return err.exit_code();
            }
            if e.exit_code() != 0
                && let Some(text) = masked_usage_error(&e, std::env::args_os())
            {
                eprint!("{text}");
                return e.exit_code();
            }
            // `--help` and `--version` go to stdout: a full disk there is
            // an error too, a closed pipe is not.
            return match e.print() {
                Err(io) if e.exit_code() == 0 => {
                    let err = output::stdout_error(&io);
                    term::report(&err);
                    err.exit_code()
                }
                _ => e.exit_code(),
            };
        }
    };
    match run(cli, hardening) {
        Ok(()) => 0,
        Err(e) => {
            term::report(&e);
            e.exit_code()
        }
    }
}

/// clap's message for a command line it refused, when an argument looks
/// like key material (a private key pasted where a recipient, a value or
/// the command belongs): clap echoes the argument it did not understand,
/// so each such argument is masked, and a message that still shows key
/// material is replaced whole. `None`: nothing to hide.
fn masked_usage_error(
    e: &clap::Error,
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Option<String> {
    let secret: Vec<String> = args
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| names::looks_like_key_material(a))
        .collect();
    if secret.is_empty() {
        return None;
    }
    let mut text = e.render().to_string();
    for a in &secret {
        text = text.replace(a.as_str(), &names::printable(a));
    }
    if names::looks_like_key_material(&text) {
        text = "error: an argument that looks like a private key was not understood (it is not shown)\n\n\
                For more information, try '--help'.\n"
            .to_string();
    }
    Some(text)
}

fn run(cli: cli::Cli, hardening: Hardening) -> Result<()> {
    let ctx = Context::new(&cli.global, hardening, cmd::project_use(&cli.command))?;
    cmd::dispatch(&ctx, cli.command)
}
