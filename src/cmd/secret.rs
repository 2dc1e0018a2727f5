//! `vault secret create|list|show|set|unset|rename|delete|describe`; the
//! version-2 subcommands live in `history`, `edit` and `generate`.

use crate::output::{note, out};
use std::io::IsTerminal;

use serde_json::json;
use zeroize::Zeroizing;

use super::{edit, generate, history, input, table};
use crate::{
    cli::SecretCommand,
    context::Context,
    dotenv,
    error::{Error, Result},
    names::MASK,
    names::{self, EnvKey, SecretName},
    store, templates, unlock,
    vault::{self, Vault},
};

pub(crate) fn run(ctx: &Context, command: SecretCommand) -> Result<()> {
    match command {
        SecretCommand::Create {
            name,
            pairs,
            from_dotenv,
            from_json,
            template,
            force,
        } => {
            let name = SecretName::parse(&name)?;
            let template = template.as_deref().map(find_template).transpose()?;
            input::one_stdin_reader(&[from_dotenv.as_deref(), from_json.as_deref()], &pairs)?;
            // Everything that needs no value is checked before any value
            // is prompted for or read from stdin: a typo or an existing
            // name must not wait for a value only to be refused after it.
            let args = input::check_args(&pairs)?;
            if args.is_empty() && from_dotenv.is_none() && from_json.is_none() && template.is_none()
            {
                return Err(no_keys(&name));
            }
            let env = &ctx.scope.env;
            let keys = unlock::for_write(ctx)?;
            // A new owner's keys are for a vault that did not exist a
            // moment ago; one made since (a concurrent first write) is
            // the write's to find, under the lock.
            if !force && matches!(keys, vault::WriteKeys::Existing(_)) && ctx.paths.file.exists() {
                let v = Vault::open(&ctx.paths, keys.keys())?;
                store::refuse_existing(v.conn(), env, &name)?;
            }
            let mut all = input::Pairs::default();
            if let Some(path) = from_dotenv {
                all.extend(input::from_dotenv(
                    &path,
                    &dotenv::Options::default(),
                    false,
                )?);
            }
            if let Some(path) = from_json {
                all.extend(input::from_json(&path)?);
            }
            // KEY=VALUE arguments win over file imports.
            all.extend(args.read()?);
            if let Some(t) = template {
                fill_template(t, &mut all)?;
            }
            if all.is_empty() {
                return Err(no_keys(&name));
            }
            let entries = all.into_vec();
            names::warn_dangerous(entries.iter().map(|(k, _)| k.as_str()));
            let n = entries.len();
            vault::write(&ctx.paths, keys, |db| {
                store::create_secret(db, env, &name, &entries, force)
            })?;
            note!(
                "Created secret `{name}`{} with {n} {}",
                in_env(env),
                plural(n, "key", "keys")
            );
            Ok(())
        }
        SecretCommand::Templates { json } => list_templates(json),
        SecretCommand::List { json, all_envs } => {
            let v = Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?;
            if !all_envs {
                store::require_env(v.conn(), &ctx.scope.env)?;
            }
            let list = store::list(v.conn(), (!all_envs).then_some(ctx.scope.env.as_str()))?;
            if json {
                let arr: Vec<_> = list
                    .iter()
                    .map(|s| {
                        let mut o = json!({"name": s.name, "keys": s.keys, "created_at": s.created_at, "updated_at": s.updated_at, "rotate_since": s.rotate_since});
                        if all_envs {
                            o["env"] = json!(s.env);
                        }
                        o
                    })
                    .collect();
                out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
            } else if list.is_empty() {
                note!("No secrets yet. Create one with `vault secret create NAME KEY=VALUE`.");
            } else {
                // The column appears only when a secret needs rotation.
                let any_marked = list.iter().any(|s| s.rotate_since.is_some());
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        let mut row = vec![
                            s.name.clone(),
                            s.keys.to_string(),
                            table::local_time(&s.created_at),
                            table::local_time(&s.updated_at),
                        ];
                        if all_envs {
                            row.insert(0, s.env.clone());
                        }
                        if any_marked {
                            row.push(rotate_cell(s.rotate_since.as_deref()));
                        }
                        row
                    })
                    .collect();
                let mut header = vec!["NAME", "KEYS", "CREATED", "UPDATED"];
                if all_envs {
                    header.insert(0, "ENV");
                }
                if any_marked {
                    header.push("");
                }
                crate::output::print(&table::render(&header, &rows))?;
            }
            Ok(())
        }
        SecretCommand::Show {
            name,
            reveal,
            rev,
            json,
        } => {
            let name = SecretName::parse(&name)?;
            let v = Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?;
            let env = &ctx.scope.env;
            let mut info = store::info(v.conn(), env, &name)?
                .ok_or_else(|| store::missing(v.conn(), env, &name))?;
            let (entries, descriptions) = match rev {
                Some(n) => {
                    let version = store::history::version(v.conn(), env, &name, n)?;
                    info.updated_at = version.made_at;
                    (version.entries, vec![])
                }
                None => (
                    store::entries(v.conn(), env, &name)?,
                    store::descriptions(v.conn(), env, &name)?,
                ),
            };
            // A merge left this secret unresolved: say so (DESIGN v2 "Git").
            let conflicted = store::conflicts::of_secret(v.conn(), env, &name)?;
            if !conflicted.is_empty() && rev.is_none() {
                crate::term::warn(&format!(
                    "`{name}` has an unresolved merge conflict ({}): this branch's values are shown, and `run` refuses it until `vault conflicts resolve`",
                    conflicted.join(", ")
                ));
            }
            let described = |k: &EnvKey| {
                descriptions
                    .iter()
                    .find(|(d, _)| d == k.as_str())
                    .map_or("", |(_, t)| t.as_str())
            };
            let shown = |value: &names::SecretValue| -> String {
                if reveal {
                    value.expose().to_string()
                } else {
                    MASK.to_string()
                }
            };
            if json {
                let mut map = serde_json::Map::new();
                for (k, val) in &entries {
                    map.insert(k.to_string(), json!(shown(val)));
                }
                let mut doc = json!({"name": info.name, "created_at": info.created_at, "updated_at": info.updated_at, "entries": map});
                if let Some(n) = rev {
                    doc["version"] = json!(n);
                }
                if !conflicted.is_empty() && rev.is_none() {
                    doc["conflicts"] = json!(conflicted);
                }
                if !descriptions.is_empty() {
                    let d: serde_json::Map<_, _> = descriptions
                        .iter()
                        .map(|(k, t)| (k.clone(), json!(t)))
                        .collect();
                    doc["descriptions"] = json!(d);
                }
                out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default())?;
            } else if descriptions.is_empty() {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|(k, val)| vec![k.to_string(), shown(val)])
                    .collect();
                crate::output::print(&table::render(&["KEY", "VALUE"], &rows))?;
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|(k, val)| vec![k.to_string(), shown(val), described(k).to_string()])
                    .collect();
                crate::output::print(&table::render(&["KEY", "VALUE", "DESCRIPTION"], &rows))?;
            }
            Ok(())
        }
        SecretCommand::Set { name, pairs } => {
            let name = SecretName::parse(&name)?;
            // No vault: said before a value is prompted for or read.
            vault::require_exists(&ctx.paths.file)?;
            let entries = input::from_args(&pairs)?.into_vec();
            names::warn_dangerous(entries.iter().map(|(k, _)| k.as_str()));
            let n = entries.len();
            vault::write(&ctx.paths, unlock::for_change(ctx)?, |db| {
                store::set(db, &ctx.scope.env, &name, &entries)
            })?;
            note!(
                "Set {n} {} in `{name}`{}",
                plural(n, "key", "keys"),
                in_env(&ctx.scope.env)
            );
            Ok(())
        }
        SecretCommand::Unset { name, keys } => {
            let name = SecretName::parse(&name)?;
            let keys = keys
                .iter()
                .map(|k| EnvKey::parse(k))
                .collect::<Result<Vec<_>>>()?;
            // Every key must exist (else an error, and nothing written),
            // so at least one is removed: the count is the keys removed,
            // not the arguments (`unset db A A` removes one).
            let n = vault::write(&ctx.paths, unlock::for_change(ctx)?, |db| {
                store::unset(db, &ctx.scope.env, &name, &keys)
            })?;
            note!(
                "Removed {n} {} from `{name}`{}",
                plural(n, "key", "keys"),
                in_env(&ctx.scope.env)
            );
            Ok(())
        }
        SecretCommand::Rename { old, new } => {
            let (old, new) = (SecretName::parse(&old)?, SecretName::parse(&new)?);
            if old == new {
                // Said before unlocking: there is nothing to do.
                return Err(Error::new(format!(
                    "`{old}` cannot be renamed to itself: OLD and NEW are the same name"
                ))
                .hint(format!(
                    "give the new name: `vault secret rename {old} NEW`"
                )));
            }
            vault::write(&ctx.paths, unlock::for_change(ctx)?, |db| {
                store::rename(db, &ctx.scope.env, &old, &new)
            })?;
            note!("Renamed `{old}` to `{new}`");
            Ok(())
        }
        SecretCommand::Delete {
            names,
            yes,
            allow_missing,
        } => delete(ctx, &names, yes, allow_missing),
        SecretCommand::History { name, json } => history::list(ctx, &name, json),
        SecretCommand::Rollback { name, to } => history::rollback(ctx, &name, to),
        SecretCommand::Edit { name } => edit::run(ctx, &name),
        SecretCommand::Generate {
            name,
            keys,
            length,
            chars,
        } => generate::run(ctx, &name, &keys, length.into(), chars),
        SecretCommand::Rotated { names } => rotated(ctx, &names),
        SecretCommand::Describe { name, key, text } => {
            let name = SecretName::parse(&name)?;
            let key = EnvKey::parse(&key)?;
            // `show` prints a description as it is: key material pasted
            // here would be shown to whoever looks (DESIGN v2 "Hardening").
            if crate::names::looks_like_key_material(&text) {
                return Err(Error::new(
                    "TEXT (argument 3) looks like a private key: not stored, and not shown",
                )
                .hint(format!(
                    "a description is a note about `{key}`; a value goes in with `vault secret set {name} {key}` (read from stdin)"
                )));
            }
            if !store::is_description(&text) {
                return Err(Error::new(
                    "a description is one line of at most 200 characters, without control characters",
                )
                .hint("shorten it, or keep longer notes elsewhere"));
            }
            let text = (!text.is_empty()).then_some(text.as_str());
            let done = vault::write_if_changed(&ctx.paths, unlock::for_change(ctx)?, |db| {
                Ok(if store::describe(db, &ctx.scope.env, &name, &key, text)? {
                    vault::Outcome::Changed(())
                } else {
                    vault::Outcome::Unchanged(())
                })
            })?;
            match (done, text) {
                (vault::Outcome::Changed(()), Some(_)) => note!("Described `{key}` in `{name}`"),
                (vault::Outcome::Changed(()), None) => {
                    note!("Removed the description of `{key}` in `{name}`")
                }
                (vault::Outcome::Unchanged(()), Some(_)) => note!(
                    "`{key}` in `{name}` already has that description; the vault is unchanged"
                ),
                (vault::Outcome::Unchanged(()), None) => {
                    note!("`{key}` in `{name}` has no description; the vault is unchanged")
                }
            }
            Ok(())
        }
        SecretCommand::Copy {
            name,
            to_env,
            force,
        } => {
            let name = SecretName::parse(&name)?;
            let to = crate::project::env_name(&to_env)?;
            let from = &ctx.scope.env;
            if &to == from {
                return Err(
                    Error::new(format!("`{name}` is already in environment `{to}`")).hint(
                        "name another environment with --to-env, or the source one with -e ENV",
                    ),
                );
            }
            let n = vault::write(&ctx.paths, unlock::for_change(ctx)?, |db| {
                store::copy(db, from, &name, &to, force)
            })?;
            note!(
                "Copied `{name}` ({n} {}) from environment `{from}` to `{to}`",
                plural(n, "key", "keys")
            );
            Ok(())
        }
    }
}

/// `secret create` given no key, nor a file or template to take one from.
fn no_keys(name: &SecretName) -> Error {
    Error::new(format!("secret `{name}` would have no keys")).hint(format!(
        "give at least one: `vault secret create {name} KEY=VALUE` (or a bare KEY to be prompted)"
    ))
}

/// ` in environment `prod`` for messages, nothing for `main`.
pub(crate) fn in_env(env: &str) -> String {
    if env == store::DEFAULT_ENV {
        String::new()
    } else {
        format!(" in environment `{env}`")
    }
}

fn delete(ctx: &Context, names: &[String], yes: bool, allow_missing: bool) -> Result<()> {
    let mut names = names
        .iter()
        .map(|n| SecretName::parse(n))
        .collect::<Result<Vec<_>>>()?;
    // A name given twice is deleted once (the second found it gone).
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let env = &ctx.scope.env;
    // No vault: nothing to delete, said before asking to confirm. With
    // --allow-missing that is success (as `rm -f`), and nothing is unlocked
    // or created for it.
    if allow_missing && !ctx.paths.file.exists() {
        note!(
            "No secret deleted: {} {}{}",
            quoted(&names),
            plural(names.len(), "does not exist", "do not exist"),
            in_env(env)
        );
        return Ok(());
    }
    vault::require_exists(&ctx.paths.file)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::new(
                "refusing to delete without confirmation: there is no terminal to ask on",
            )
            .hint("pass --yes to delete without asking"));
        }
        // A name that is not there is said before asking about it, and
        // with `--allow-missing` the question names only those that are
        // (none there: nothing to ask). No vault: nothing is there.
        let mut present = vec![];
        if !allow_missing || ctx.paths.file.exists() {
            let v = Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?;
            for name in &names {
                if store::exists(v.conn(), &ctx.scope.env, name)? {
                    present.push(name.clone());
                } else if !allow_missing {
                    return Err(store::missing(v.conn(), &ctx.scope.env, name));
                }
            }
        }
        if present.is_empty() {
            note!(
                "No secret deleted: {} {}{}",
                quoted(&names),
                plural(names.len(), "does not exist", "do not exist"),
                in_env(&ctx.scope.env)
            );
            return Ok(());
        }
        let list = quoted(&present);
        if !crate::term::confirm(&format!("Delete {list}? This cannot be undone. [y/N] "))? {
            return Err(Error::new("nothing deleted").hint("answer `y` to delete, or pass --yes"));
        }
    }
    let done = vault::write_if_changed(&ctx.paths, unlock::for_change(ctx)?, |db| {
        let (mut deleted, mut missing) = (vec![], vec![]);
        for name in &names {
            if store::exists(db, env, name)? {
                store::delete(db, env, name)?;
                deleted.push(name.clone());
            } else if !allow_missing {
                return Err(store::missing(db, env, name));
            } else {
                missing.push(name.clone());
            }
        }
        // `--allow-missing` and none there: nothing to save.
        Ok(if deleted.is_empty() {
            vault::Outcome::Unchanged((deleted, missing))
        } else {
            vault::Outcome::Changed((deleted, missing))
        })
    })?;
    match done {
        vault::Outcome::Unchanged((_, missing)) => note!(
            "No secret deleted: {} {}{}",
            quoted(&missing),
            plural(missing.len(), "does not exist", "do not exist"),
            in_env(env)
        ),
        vault::Outcome::Changed((deleted, missing)) => {
            for name in deleted {
                note!("Deleted `{name}`");
            }
            if !missing.is_empty() {
                note!(
                    "Not deleted: {} (not found{})",
                    quoted(&missing),
                    in_env(env)
                );
            }
        }
    }
    Ok(())
}

/// "`a`, `b`" for messages.
fn quoted(names: &[SecretName]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ROTATE since 2026-12-02 09:14` for a marked secret in `secret list`.
fn rotate_cell(since: Option<&str>) -> String {
    since.map_or_else(String::new, |t| {
        format!("ROTATE since {}", table::local_time(t))
    })
}

/// `vault secret rotated NAME…`: clears the marks by hand. A secret with no
/// mark is a warning, not an error (a new value may have cleared it
/// already, as `doctor`'s advice goes); when none has one, nothing is
/// written.
fn rotated(ctx: &Context, names: &[String]) -> Result<()> {
    let names = names
        .iter()
        .map(|n| SecretName::parse(n))
        .collect::<Result<Vec<_>>>()?;
    let env = &ctx.scope.env;
    let keys = unlock::for_read(ctx)?;
    let mut marked = vec![];
    {
        let v = Vault::open(&ctx.paths, &keys)?;
        for name in &names {
            if store::rotation::mark(v.conn(), env, name)?.is_some() {
                marked.push(name.clone());
            } else {
                crate::term::warn(&format!(
                    "`{name}`{} is not marked for rotation",
                    in_env(env)
                ));
            }
        }
    }
    if marked.is_empty() {
        return Ok(());
    }
    vault::write(&ctx.paths, vault::WriteKeys::Existing(keys), |db| {
        for name in &marked {
            store::rotation::clear(db, env, name)?;
        }
        Ok(())
    })?;
    for name in marked {
        note!("Cleared the rotation mark of `{name}`{}", in_env(env));
    }
    Ok(())
}

fn find_template(name: &str) -> Result<&'static templates::Template> {
    templates::find(name).ok_or_else(|| {
        let all = templates::TEMPLATES.iter().map(|t| t.name);
        let hint = match names::closest(name, all) {
            Some(c) => format!("did you mean `{c}`? `vault secret templates` lists them all"),
            None => "`vault secret templates` lists them all".to_string(),
        };
        Error::new(format!("no template named `{}`", names::printable(name))).hint(hint)
    })
}

/// Fills in the template's keys that the command line did not give: on a
/// terminal by asking (hidden for secret keys; an empty answer takes the
/// default, or leaves the key out), else from defaults, naming every key
/// that has none.
fn fill_template(t: &templates::Template, pairs: &mut input::Pairs) -> Result<()> {
    let wanted: Vec<&templates::Key> = t.keys.iter().filter(|k| !pairs.contains(k.name)).collect();
    let interactive = std::io::stdin().is_terminal();
    if !interactive {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|k| k.default.is_none())
            .map(|k| k.name)
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::new(format!(
                "no terminal to ask for {list} of template `{}`",
                t.name
            ))
            .hint("give them as KEY=VALUE, or one bare KEY to read it from stdin"));
        }
    }
    for k in wanted {
        let key = EnvKey::parse(k.name)?;
        let typed = if !interactive {
            Zeroizing::new(String::new())
        } else if k.secret {
            input::prompt_value(&key)?
        } else {
            let prompt = match k.default {
                Some(d) => format!("{key} [{d}]: "),
                None => format!("{key}: "),
            };
            Zeroizing::new(crate::term::line(&prompt)?)
        };
        let value = match (typed.is_empty(), k.default) {
            (false, _) => typed,
            (true, Some(d)) => Zeroizing::new(d.to_string()),
            (true, None) => continue,
        };
        let value = names::SecretValue::new(&key, value)?;
        pairs.insert(key, value);
    }
    Ok(())
}

fn list_templates(as_json: bool) -> Result<()> {
    if as_json {
        let arr: Vec<_> = templates::TEMPLATES
            .iter()
            .map(|t| {
                let keys: Vec<_> = t
                    .keys
                    .iter()
                    .map(|k| json!({"name": k.name, "secret": k.secret, "default": k.default}))
                    .collect();
                json!({"name": t.name, "description": t.description, "keys": keys})
            })
            .collect();
        return out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
    }
    let rows: Vec<Vec<String>> = templates::TEMPLATES
        .iter()
        .map(|t| {
            let keys = t.keys.iter().map(|k| k.name).collect::<Vec<_>>().join(" ");
            vec![t.name.to_string(), keys]
        })
        .collect();
    crate::output::print(&table::render(&["TEMPLATE", "KEYS"], &rows))
}

pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
