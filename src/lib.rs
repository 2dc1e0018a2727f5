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
            use clap::error::ErrorKind::{DisplayHelpOnMissingArgumentOrSubcommand, InvalidUtf8};
            if e.kind() == InvalidUtf8 {
                let err = Error::new("an argument is not UTF-8 text")
                    .hint("names, keys and values are UTF-8 text: check how the argument was made (its encoding, LANG / LC_ALL)");
                term::report(&err);
                return err.exit_code();
            }
            let e = without_internal_suggestions(e);
            if e.exit_code() != 0 && e.kind() != DisplayHelpOnMissingArgumentOrSubcommand {
                // A refused command line in the house format (DESIGN
                // "Errors and exit codes"): `vault: error: …` and a hint.
                let text = masked_usage_error(&e, std::env::args_os())
                    .unwrap_or_else(|| e.render().to_string());
                let err = usage_error(&text);
                term::report(&err);
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

/// `e` without the internal subcommands (`__agent`, …) among its "similar
/// subcommand" suggestions: clap suggests hidden subcommands too, and
/// these are for vault itself, not for a user who mistyped `agent`.
fn without_internal_suggestions(mut e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    if let Some(ContextValue::Strings(names)) = e.get(ContextKind::SuggestedSubcommand) {
        let kept: Vec<String> = names
            .iter()
            .filter(|n| !cli::is_internal(n))
            .cloned()
            .collect();
        if kept.is_empty() {
            e.remove(ContextKind::SuggestedSubcommand);
        } else {
            e.insert(
                ContextKind::SuggestedSubcommand,
                ContextValue::Strings(kept),
            );
        }
    }
    e
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

/// clap's rendered message for a refused command line, as one
/// `vault: error:` line and one hint. clap writes `error: MESSAGE`, maybe
/// continued on indented lines (the missing arguments, the possible
/// values), then after blank lines `tip: …` lines, a `Usage: …` line and
/// "For more information, try '--help'."; the message keeps its
/// continuation, the hint gets the tips and names the command's `--help`.
fn usage_error(text: &str) -> Error {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .trim()
        .to_string();
    let mut in_message = true;
    let mut tips = vec![];
    let mut usage = None;
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            in_message = false;
        } else if let Some(tip) = t.strip_prefix("tip: ") {
            tips.push(tip.to_string());
        } else if let Some(u) = t.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if t.starts_with("For more information") {
        } else if in_message {
            let sep = if message.ends_with(':') { " " } else { ", " };
            let t = t
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(t);
            message = format!("{message}{sep}{t}");
        }
    }
    // The command the usage line is for: its words up to the first
    // option or argument (clap's usage also lists the options that came
    // from the environment, as if they were required).
    let command = usage.map(|u| {
        u.split_whitespace()
            .take_while(|w| !w.starts_with(['-', '<', '[']))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let command = command
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| command_path(std::env::args_os().skip(1)));
    // `vault run -s db npm start`: clap calls `npm` unexpected, which does
    // not say that the command belongs after `--` (DESIGN "vault run").
    let misplaced = message
        .strip_prefix("unexpected argument '")
        .is_some_and(|rest| !rest.starts_with('-'));
    if command == "vault run" && (misplaced || message.contains("<COMMAND>")) {
        tips.push("the command goes after `--`: `vault run [SOURCE]… -- CMD [ARG]…`".into());
    }
    let help = format!("`{command} --help` shows how to use it");
    tips.push(help);
    Error::usage(message).hint(tips.join("; "))
}

/// `vault` and the subcommands named on the command line (each word that
/// is a subcommand, or an alias of one, of the command before it), for a
/// refusal whose message has no usage line.
fn command_path(args: impl Iterator<Item = std::ffi::OsString>) -> String {
    let mut cmd = cli::full_command();
    let mut path = vec!["vault".to_string()];
    for a in args {
        let Some(a) = a.to_str() else { continue };
        if a == "--" {
            break;
        }
        let Some(sub) = cmd.find_subcommand(a).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

fn run(cli: cli::Cli, hardening: Hardening) -> Result<()> {
    let ctx = Context::new(&cli.global, hardening, cmd::project_use(&cli.command))?;
    cmd::dispatch(&ctx, cli.command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> (String, String) {
        let e = usage_error(text);
        assert_eq!(e.exit_code(), 2);
        (e.message().to_string(), e.hint_text().unwrap().to_string())
    }

    /// clap's refusals become one `vault: error:` line and one hint: the
    /// continuation lines join the message, tips and the command's
    /// `--help` the hint, and the usage line's options (some of them only
    /// from the environment) are left out.
    #[test]
    fn clap_refusals_become_one_error_line_and_a_hint() {
        let missing = "error: the following required arguments were not provided:\n  <NAME>\n  <KEY[=VALUE]>...\n\nUsage: vault secret set --vault-dir <DIR> <NAME> <KEY[=VALUE]>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            shown(missing),
            (
                "the following required arguments were not provided: <NAME>, <KEY[=VALUE]>..."
                    .into(),
                "`vault secret set --help` shows how to use it".into()
            )
        );
        let tip = "error: unrecognized subcommand 'lst'\n\n  tip: some similar subcommands exist: 'ls', 'list'\n\nUsage: vault secret [OPTIONS] <COMMAND>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            shown(tip).1,
            "some similar subcommands exist: 'ls', 'list'; `vault secret --help` shows how to use it"
        );
        let values = "error: invalid value 'xml' for '--format <FORMAT>'\n  [possible values: dotenv, json]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            shown(values).0,
            "invalid value 'xml' for '--format <FORMAT>', possible values: dotenv, json"
        );
        for text in [missing, tip, values] {
            let (m, h) = shown(text);
            assert!(!m.contains('\n') && !h.contains('\n'), "{m:?} {h:?}");
        }
    }

    #[test]
    fn the_command_path_follows_subcommands_and_aliases() {
        let path = |args: &[&str]| command_path(args.iter().map(std::ffi::OsString::from));
        assert_eq!(path(&["secret", "ls", "--bogus"]), "vault secret list");
        assert_eq!(path(&["--vault-dir", "d", "export", "x"]), "vault export");
        assert_eq!(path(&["run", "-s", "db", "--", "secret"]), "vault run");
        assert_eq!(path(&[]), "vault");
    }
}
