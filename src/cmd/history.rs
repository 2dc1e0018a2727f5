//! `vault secret history NAME` and `vault secret rollback NAME [--to N]`
//! (DESIGN v2 "History"). Values are never shown here; `show --rev N` does.

use serde_json::json;

use super::table;
use crate::output::{note, out};
use crate::{
    context::Context,
    error::Result,
    names::SecretName,
    store::history,
    unlock,
    vault::{self, Vault},
};

pub(crate) fn list(ctx: &Context, name: &str, as_json: bool) -> Result<()> {
    let name = SecretName::parse(name)?;
    let keys = unlock::for_read(ctx)?;
    let v = Vault::open(&ctx.paths, &keys)?;
    let versions = history::versions(v.conn(), &ctx.scope.env, &name)?;
    let changes = history::changes(&versions);
    let mine = |by: &str| keys.recipients().iter().any(|r| r == by);
    if as_json {
        let arr: Vec<_> = versions
            .iter()
            .zip(&changes)
            .map(|(v, c)| {
                let empty = history::Change::default();
                let c = c.as_ref().unwrap_or(&empty);
                json!({
                    "version": v.number,
                    "current": v.current,
                    "name": v.name,
                    "changed_at": v.made_at,
                    "changed_by": v.made_by,
                    "you": mine(&v.made_by),
                    "added": c.added,
                    "changed": c.changed,
                    "removed": c.removed,
                    "renamed_from": c.renamed_from,
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .zip(&changes)
        .map(|(v, c)| {
            let number = if v.current {
                format!("{} (current)", v.number)
            } else {
                v.number.to_string()
            };
            let by = if mine(&v.made_by) {
                "you".to_string()
            } else {
                short_recipient(&v.made_by)
            };
            let what = match c {
                Some(c) => c.summary(),
                None if v.number == 1 => "created".to_string(),
                None => "(the oldest kept)".to_string(),
            };
            vec![number, table::local_time(&v.made_at), by, what]
        })
        .collect();
    crate::output::print(&table::render(
        &["VERSION", "CHANGED", "BY", "CHANGES"],
        &rows,
    ))?;
    Ok(())
}

/// A recipient short enough for a table column: `age1qyz…x7k2m9`, or
/// `unknown` for versions made before the vault kept authors (also
/// `recipients list`'s ADDED BY).
pub(crate) fn short_recipient(r: &str) -> String {
    if r.is_empty() {
        return "unknown".to_string();
    }
    let chars: Vec<char> = r.chars().collect();
    if chars.len() <= 20 {
        return r.to_string();
    }
    let head: String = chars[..10].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}…{tail}")
}

pub(crate) fn rollback(ctx: &Context, name: &str, to: Option<i64>) -> Result<()> {
    let name = SecretName::parse(name)?;
    // Back to a version equal to the current one: no new version, and
    // the vault is not rewritten either.
    let done = vault::write_if_changed(&ctx.paths, unlock::for_change(ctx)?, |db| {
        let done = history::rollback(db, &ctx.scope.env, &name, to)?;
        Ok(if done.new_version.is_some() {
            vault::Outcome::Changed(done)
        } else {
            vault::Outcome::Unchanged(done)
        })
    })?
    .into_inner();
    match done.new_version {
        Some(n) => note!(
            "Rolled `{name}` back to version {} (saved as version {n})",
            done.to
        ),
        None => note!(
            "`{name}` already has the keys of version {}: nothing changed",
            done.to
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::short_recipient;

    #[test]
    fn recipients_are_shortened_for_the_table() {
        assert_eq!(short_recipient(""), "unknown");
        assert_eq!(short_recipient("age1short"), "age1short");
        assert_eq!(
            short_recipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"),
            "age1ql3z7h…mcac8p"
        );
    }
}
