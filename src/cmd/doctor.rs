//! `vault doctor`: checks what can go wrong with a vault's files, in the
//! order a person would look, and names the command that fixes each finding.

use crate::output::out;
use std::{fs, os::unix::fs::MetadataExt};

use crate::{
    agent,
    context::Context,
    error::{Error, Result},
    fsio, store, unlock,
    vault::Vault,
};

/// The findings, printed as they come. The first failed write to stdout
/// is kept and returned at the end (a full disk: one error; a closed pipe:
/// quiet), so the checks themselves never stop half-way on it.
#[derive(Default)]
struct Report {
    problems: usize,
    warnings: usize,
    failed: Option<Error>,
}

impl Report {
    /// One finding; its control characters (a path's) escaped, as in a
    /// table.
    fn line(&mut self, text: &str) {
        if self.failed.is_none()
            && let Err(e) = out!("{}", super::table::escape_controls(text))
        {
            self.failed = Some(e);
        }
    }

    fn ok(&mut self, what: &str) {
        self.line(&format!("ok       {what}"));
    }

    fn note(&mut self, what: &str) {
        self.line(&format!("note     {what}"));
    }

    /// Not broken, but needs doing (a secret to rotate): does not fail.
    fn warning(&mut self, what: &str, fix: &str) {
        self.warnings += 1;
        self.line(&format!("WARNING  {what}"));
        self.line(&format!("         fix: {fix}"));
    }

    fn problem(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        self.line(&format!("PROBLEM  {what}"));
        self.line(&format!("         fix: {fix}"));
    }
}

pub(crate) fn run(ctx: &Context) -> Result<()> {
    let mut r = Report::default();
    let p = &ctx.paths;
    let me = rustix::process::geteuid().as_raw();

    // 1. Permissions.
    for (path, want) in [
        (&p.dir, 0o700),
        (&p.file, 0o600),
        (&p.identity, 0o600),
        (&p.lock, 0o600),
    ] {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let mode = meta.mode() & 0o777;
        if meta.uid() != me {
            r.problem(
                &format!(
                    "{} belongs to uid {}, not you ({me})",
                    path.display(),
                    meta.uid()
                ),
                &format!("chown {me} {}", path.display()),
            );
        } else if mode & !want != 0 {
            r.problem(
                &format!(
                    "{} has mode {mode:04o}; it should be {want:04o}",
                    path.display()
                ),
                &format!("chmod {want:o} {}", path.display()),
            );
        } else {
            r.ok(&format!("{} mode {mode:04o}", path.display()));
        }
    }
    if !p.dir.exists() {
        r.problem(&format!("{} does not exist", p.dir.display()), "vault init");
    }

    // 2. The lock. A lock that cannot be opened (a read-only file system,
    // permissions, a symlink) is not "a writer holds it": every write
    // would fail on it, and waiting would not help.
    if fs::symlink_metadata(&p.lock).is_ok() {
        match fsio::probe_lock(&p.lock) {
            fsio::LockState::Free => r.ok("no writer holds the lock"),
            fsio::LockState::Held => r.problem(
                &format!("a writer holds the lock on {}", p.lock.display()),
                &format!(
                    "wait for it to finish; `fuser -v {}` shows which process it is",
                    p.lock.display()
                ),
            ),
            fsio::LockState::Unusable(e) => r.problem(
                &format!(
                    "cannot open the lock, so no write can succeed: {}",
                    e.message()
                ),
                e.hint_text().unwrap_or(
                    "make the directory writable (or mount it read-write), or move the vault to one that is",
                ),
            ),
        }
    }

    // 3. The agent.
    match agent::status(&p.dir) {
        Ok(Some(a)) => r.ok(&format!(
            "the agent (pid {}) holds the identity for {} s more",
            a.pid,
            a.seconds_left()
        )),
        Ok(None) => match agent::no_place(&p.dir) {
            Ok(Some(why)) => r.warning(why.message(), why.hint_text().unwrap_or_default()),
            _ => r.note("no agent is running (`vault unlock` starts one)"),
        },
        Err(e) => r.problem(e.message(), e.hint_text().unwrap_or_default()),
    }

    // 4 and 5. Decrypts, passes integrity_check, and has a known schema.
    if !p.file.exists() {
        r.problem(&format!("no vault at {}", p.file.display()), "vault init");
    } else {
        match unlock::unlock(ctx).and_then(|k| Ok((Vault::open_full(p, &k)?, k))) {
            Ok((v, keys)) => {
                r.ok(&format!("{} decrypts", p.file.display()));
                match store::integrity_check(v.conn()) {
                    Ok(()) => r.ok("the database passes PRAGMA integrity_check"),
                    Err(e) => r.problem(
                        e.message(),
                        "restore vault.age from a backup or from version control",
                    ),
                }
                let version = v.provenance().schema;
                r.ok(&format!(
                    "schema version {version} (this vault knows up to {})",
                    store::SCHEMA_VERSION
                ));
                match store::validate(v.conn(), &p.file.display().to_string()) {
                    Ok(()) => r.ok("every row is valid"),
                    Err(e) => r.problem(
                        e.message(),
                        "restore vault.age from a backup or from version control",
                    ),
                }
                let p_ = v.provenance();
                let line = super::recipients::provenance_line(p_, keys.recipients());
                match (p_.meta, p_.newest) {
                    (Some(m), Some(n)) if n > m.generation => r.note(&format!(
                        "{line}: an older file than the newest seen (an older branch or checkout?)"
                    )),
                    _ => r.ok(&line),
                }
                rotation(&mut r, &v, ctx);
                // Left by `vault git merge`; `run` refuses those secrets.
                match store::conflicts::list(v.conn()) {
                    Ok(c) if c.is_empty() => r.ok("no unresolved merge conflicts"),
                    Ok(c) => r.problem(
                        &format!(
                            "{} unresolved merge conflict{}: {}",
                            c.len(),
                            if c.len() == 1 { "" } else { "s" },
                            c.iter().map(|c| c.label()).collect::<Vec<_>>().join(", ")
                        ),
                        "`vault conflicts list`, then `vault conflicts resolve ENV/NAME [KEY] --take ours|theirs|base`",
                    ),
                    Err(e) => r.problem(e.message(), e.hint_text().unwrap_or_default()),
                }
            }
            Err(e) => r.problem(
                &format!("cannot open the vault: {}", e.message()),
                e.hint_text().unwrap_or("see the message above"),
            ),
        }
    }

    // 6. Stray temp files.
    let strays: Vec<_> = fsio::stale_temps(&p.file)
        .into_iter()
        .chain(fsio::stale_temps(&p.identity))
        .collect();
    if strays.is_empty() {
        r.ok("no stray temporary files");
    } else {
        let list = strays
            .iter()
            .map(|s| s.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        r.problem(
            &format!(
                "{} temporary file(s) left by an interrupted write",
                strays.len()
            ),
            &format!("the next write removes them, or: rm {list}"),
        );
    }

    // 7. identity.age.
    if ctx.sources.identity.is_some() {
        r.ok("the identity comes from --identity / VAULT_IDENTITY");
    } else if crate::unlock::identity_given(ctx) {
        r.ok("the identity comes from VAULT_AGE_KEY");
    } else if p.identity.exists() {
        r.ok(&format!("{} is present", p.identity.display()));
    } else {
        r.problem(
            &format!(
                "{} is missing, so only an identity file can open the vault",
                p.identity.display()
            ),
            "restore identity.age from a backup, or use --identity with your key",
        );
    }

    if let Some(e) = r.failed {
        return Err(e);
    }
    if r.problems > 0 {
        return Err(
            Error::new(format!("{} problem(s) found", r.problems)).hint("apply the fixes above")
        );
    }
    if r.warnings > 0 {
        out!("No problems; {} warning(s).", r.warnings)?;
    } else {
        out!("All good.")?;
    }
    Ok(())
}

/// Secrets marked for rotation since a member was removed (DESIGN v2
/// "Git"), one warning each.
fn rotation(r: &mut Report, v: &Vault, ctx: &Context) {
    match store::rotation::marks(v.conn()) {
        Ok(marks) if marks.is_empty() => r.ok("no secret needs rotation"),
        Ok(marks) => {
            for (env, name, since) in marks {
                let flag = if env == ctx.scope.env {
                    String::new()
                } else {
                    format!(" -e {env}")
                };
                r.warning(
                    &format!(
                        "secret {env}/{name} needs rotation: a member removed at {} could read it",
                        super::table::local_time(&since)
                    ),
                    &format!(
                        "change its values where they are used and in the vault (`vault secret set{flag} {name} KEY` or `vault secret generate{flag} {name} KEY`), which clears the mark; or `vault secret rotated{flag} {name}` if they need no change"
                    ),
                );
            }
        }
        Err(e) => r.problem(
            e.message(),
            "restore vault.age from a backup or from version control",
        ),
    }
}
