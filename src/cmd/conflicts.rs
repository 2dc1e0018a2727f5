//! `vault conflicts list|resolve`: what `vault git merge` left unresolved,
//! named but never shown, and settled by taking a side, each resolve one
//! ordinary signed write of the vault (under its lock, a new generation).

use serde_json::json;

use crate::{
    cli::{ConflictsCommand, TakeSide},
    context::Context,
    error::{Error, Result},
    names::{EnvKey, printable},
    output::{note, out},
    store::{self, conflicts::Side},
    unlock,
    vault::{self, Vault},
};

use super::table;

pub(crate) fn run(ctx: &Context, command: ConflictsCommand) -> Result<()> {
    match command {
        ConflictsCommand::List { json } => list(ctx, json),
        ConflictsCommand::Resolve {
            secret,
            key,
            all,
            take,
        } => resolve(ctx, secret.as_deref(), key.as_deref(), all, take),
    }
}

fn shown(v: Option<&str>) -> &'static str {
    if v.is_some() { "set" } else { "absent" }
}

fn list(ctx: &Context, json: bool) -> Result<()> {
    let v = Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?;
    let all = store::conflicts::list(v.conn())?;
    if json {
        let arr: Vec<_> = all
            .iter()
            .map(|c| {
                json!({
                    "env": c.env,
                    "secret": c.secret.as_str(),
                    "key": c.key.as_ref().map(EnvKey::as_str),
                    "base": shown(c.side(Side::Base)),
                    "ours": shown(c.side(Side::Ours)),
                    "theirs": shown(c.side(Side::Theirs)),
                })
            })
            .collect();
        return out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
    }
    if all.is_empty() {
        note!("No conflicts.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|c| {
            vec![
                format!("{}/{}", c.env, c.secret),
                c.key
                    .as_ref()
                    .map_or_else(|| "(whole secret)".to_string(), |k| k.to_string()),
                shown(c.side(Side::Base)).to_string(),
                shown(c.side(Side::Ours)).to_string(),
                shown(c.side(Side::Theirs)).to_string(),
            ]
        })
        .collect();
    crate::output::print(&table::render(
        &["SECRET", "KEY", "BASE", "OURS", "THEIRS"],
        &rows,
    ))
}

fn resolve(
    ctx: &Context,
    secret: Option<&str>,
    key: Option<&str>,
    all: bool,
    take: TakeSide,
) -> Result<()> {
    let side = match take {
        TakeSide::Ours => Side::Ours,
        TakeSide::Theirs => Side::Theirs,
        TakeSide::Base => Side::Base,
    };
    if all && side == Side::Base {
        return Err(Error::usage(
            "`--all` takes ours or theirs: taking the base everywhere would undo both branches",
        )
        .hint("resolve a conflict at a time with `--take base`, or use `--take ours` / `--take theirs`"));
    }
    let wanted = match (all, secret) {
        (true, _) => None,
        (false, Some(s)) => {
            let (env, name) = super::run::secret_ref(s)?;
            let env = env.unwrap_or_else(|| ctx.scope.env.clone());
            let key = key.map(EnvKey::parse).transpose()?;
            Some((env, name, key))
        }
        (false, None) => {
            return Err(Error::usage("name the secret (ENV/NAME), or pass --all"));
        }
    };
    let keys = unlock::for_change(ctx)?;
    let resolved = vault::write(&ctx.paths, keys, |db| {
        let chosen: Vec<_> = store::conflicts::list(db)?
            .into_iter()
            .filter(|c| match &wanted {
                None => true,
                Some((env, name, key)) => {
                    c.env == *env
                        && c.secret == *name
                        && (key.is_none() || c.key.as_ref() == key.as_ref())
                }
            })
            .collect();
        if chosen.is_empty() {
            let what = match &wanted {
                None => "the vault has no unresolved conflicts".to_string(),
                Some((env, name, Some(k))) => {
                    format!(
                        "no conflict on `{}` of `{env}/{name}`",
                        printable(k.as_str())
                    )
                }
                Some((env, name, None)) => format!("no conflict in `{env}/{name}`"),
            };
            return Err(Error::new(what).hint("`vault conflicts list` shows what is unresolved"));
        }
        for c in &chosen {
            store::conflicts::resolve(db, c, side)?;
        }
        Ok(chosen.iter().map(|c| c.label()).collect::<Vec<_>>())
    })?;
    let name = match side {
        Side::Base => "base",
        Side::Ours => "ours",
        Side::Theirs => "theirs",
    };
    for label in &resolved {
        note!("Resolved {label}: took {name}");
    }
    Ok(())
}
