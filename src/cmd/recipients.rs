//! `vault recipients list|add|remove` and `vault recipient`: who a vault is
//! encrypted to. The table in the database is the truth; every write
//! re-encrypts to exactly what it lists.

use crate::output::{note, out};
use std::path::PathBuf;

use serde_json::json;

use super::{input, table};
use crate::{
    cli::RecipientsCommand,
    context::Context,
    crypto,
    error::{Error, Result},
    store, unlock, vault,
};

pub(crate) fn run(ctx: &Context, command: RecipientsCommand) -> Result<()> {
    match command {
        RecipientsCommand::List { json } => list(ctx, json),
        RecipientsCommand::Add {
            recipients,
            recipients_file,
        } => {
            let wanted = collect(&recipients, &recipients_file)?;
            let added = vault::write_if_changed(&ctx.paths, unlock::for_change(ctx)?, |db| {
                let mut added = vec![];
                for r in &wanted {
                    if store::add_recipient(db, r)? {
                        added.push(r.clone());
                    } else {
                        crate::term::warn(&format!("{r} is already a recipient"));
                    }
                }
                // All members already: re-encrypting to the same set
                // would only make a new generation for nothing.
                Ok(if added.is_empty() {
                    vault::Outcome::Unchanged(added)
                } else {
                    vault::Outcome::Changed(added)
                })
            })?;
            match added {
                vault::Outcome::Changed(added) => {
                    for r in added {
                        note!("Added {r}");
                    }
                }
                vault::Outcome::Unchanged(_) => {
                    note!("No recipient added; the vault is unchanged");
                }
            }
            Ok(())
        }
        RecipientsCommand::Remove {
            recipients,
            recipients_file,
            force,
        } => {
            let unwanted = collect(&recipients, &recipients_file)?;
            vault::require_exists(&ctx.paths.file)?;
            let keys = unlock::unlock(ctx)?;
            let mine = keys.recipients().to_vec();
            let removed = vault::write(&ctx.paths, vault::WriteKeys::Existing(keys), |db| {
                for r in &unwanted {
                    if !store::remove_recipient(db, r)? {
                        return Err(Error::new(format!("{r} is not a recipient of this vault"))
                            .hint("`vault recipients list` shows who is"));
                    }
                }
                let left = store::recipients(db)?;
                if left.is_empty() {
                    return Err(Error::new("a vault needs at least one recipient")
                        .hint("add the new one first, then remove the old one"));
                }
                if !force && !left.iter().any(|r| mine.contains(r)) {
                    return Err(Error::new("this would remove your own last key, and you could no longer open the vault")
                        .hint("pass --force if that is what you want"));
                }
                // They could read every value, and git history keeps the
                // old files: every secret needs new values (DESIGN v2 "Git").
                let marked = store::rotation::mark_all(db)?;
                Ok((unwanted.clone(), marked))
            })?;
            let (removed, marked) = removed;
            for r in removed {
                note!("Removed {r}");
            }
            if marked > 0 {
                note!(
                    "Marked {marked} {} for rotation: `vault secret list` shows ROTATE, `vault doctor` lists them",
                    super::secret::plural(marked, "secret", "secrets")
                );
            }
            note!(
                "hint: they may have kept a copy of what they could read; rotate those credentials (a new value clears the mark)"
            );
            Ok(())
        }
    }
}

fn list(ctx: &Context, as_json: bool) -> Result<()> {
    let keys = unlock::for_read(ctx)?;
    let v = vault::Vault::open(&ctx.paths, &keys)?;
    let list = store::recipients_info(v.conn())?;
    let mine = keys.recipients();
    let signer = v.provenance().signer.as_deref();
    if as_json {
        let arr: Vec<_> = list
            .iter()
            .map(|r| {
                json!({
                    "recipient": r.recipient,
                    "added_at": r.added_at,
                    "added_by": r.added_by,
                    "you": mine.contains(&r.recipient),
                    "signer": signer == Some(r.recipient.as_str()),
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            // Under NOTE: `you` (your own key), `signer` (who wrote the
            // vault last), or both, as `--json` has them in "you" and
            // "signer".
            let mut note = vec![];
            if mine.contains(&r.recipient) {
                note.push("you");
            }
            if signer == Some(r.recipient.as_str()) {
                note.push("signer");
            }
            // As `secret history` shows its authors: `you`, a shortened
            // recipient, or `unknown` (added before vault recorded it).
            let by = match &r.added_by {
                Some(by) if mine.contains(by) => "you".to_string(),
                Some(by) => super::history::short_recipient(by),
                None => "unknown".to_string(),
            };
            vec![
                r.recipient.clone(),
                table::local_time(&r.added_at),
                by,
                note.join(", "),
            ]
        })
        .collect();
    crate::output::print(&table::render(
        &["RECIPIENT", "ADDED", "ADDED BY", "NOTE"],
        &rows,
    ))?;
    out!("{}", provenance_line(v.provenance(), mine))?;
    Ok(())
}

/// `generation 4, signed by age1… (you)`: who wrote the vault last
/// (DESIGN v2 "Trust"), for `recipients list` and `status`.
pub(crate) fn provenance_line(p: &vault::Provenance, mine: &[String]) -> String {
    match (&p.meta, &p.signer) {
        (Some(meta), Some(signer)) => {
            let you = if mine.contains(signer) { " (you)" } else { "" };
            let newest = match p.newest {
                Some(n) if n > meta.generation => format!(" (older: generation {n} was seen)"),
                _ => String::new(),
            };
            format!(
                "generation {}{newest}, signed by {signer}{you}",
                meta.generation
            )
        }
        _ => "not signed (a version-1 vault; the next write signs it)".to_string(),
    }
}

/// Recipients from arguments and `-R` files (one per line; `#` comments
/// and blank lines skipped), validated and in canonical form.
///
/// A rejected one is named by its position or line, never shown: it may
/// be a private key given by mistake (`-R key.txt` printed the whole
/// `AGE-SECRET-KEY-1…`).
fn collect(args: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out: Vec<String> = vec![];
    for (i, a) in args.iter().enumerate() {
        let r = crypto::canonical_recipient(a)
            .map_err(|_| not_a_recipient(format!("recipient argument {}", i + 1), a))?;
        out.push(r);
    }
    for f in files {
        let (bytes, source) = input::read_source(f)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::new(format!("{source} is not a text file of recipients")))?;
        let before = out.len();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let r = crypto::canonical_recipient(line)
                .map_err(|_| not_a_recipient(format!("{source}, line {}", n + 1), line))?;
            out.push(r);
        }
        // A file that lists nobody (the wrong file, `/dev/null`) is a
        // mistake, not a request to change nothing.
        if out.len() == before {
            return Err(Error::new(format!("no recipients in {source}")).hint(
                "a recipients file lists one `age1…` or ssh public key per line (`#` starts a comment)",
            ));
        }
    }
    out.dedup();
    Ok(out)
}

/// `where_` is not an age or ssh recipient; `text` only picks the hint.
fn not_a_recipient(where_: String, text: &str) -> Error {
    let e = Error::new(format!(
        "{where_} is not an age or ssh recipient (not shown: it may be a private key)"
    ));
    if crate::names::looks_like_key_material(text) {
        e.hint("that is a private key: give its public recipient instead (`age-keygen -y key.txt`, `ssh-keygen -y -f id_ed25519`, or `vault recipient`), and keep the key file to yourself")
    } else {
        e.hint("a recipient is `age1…` (from `vault recipient` or age-keygen) or an ssh-ed25519/ssh-rsa public key")
    }
}

/// Prints the user's own public recipient(s).
pub(crate) fn own(ctx: &Context) -> Result<()> {
    let keys = unlock::unlock(ctx)?;
    for r in keys.recipients() {
        out!("{r}")?;
    }
    Ok(())
}
