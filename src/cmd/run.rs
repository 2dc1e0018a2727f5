//! `vault run` (alias `vault exec`) and `vault shell`, as DESIGN.md says:
//!
//! 1. Check what needs no vault: names, `--set` pairs, `--local-env`
//!    variables, dotenv files, `--require` keys.
//! 2. Open the vault only if a `--secret` asks for it: read, decrypt,
//!    deserialize, one query per secret.
//! 3. Merge the sources over the base environment in command-line order.
//! 4. `--explain` prints and stops. Otherwise `--conflicts=error` and
//!    `--require` are checked, and the command replaces `vault` (`exec`).
//!
//! Every failure happens before anything runs, and no message shows a value.

use crate::output::{note, out};
use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

use serde_json::json;
use zeroize::Zeroizing;

use super::{files::Files, input, table};
use crate::{
    cli::{Conflicts, EnvArgs, RunArgs, ShellArgs, Source},
    context::Context,
    dotenv,
    env::{ChildEnv, Origin, UNLOCKING_VARS},
    error::{Error, Result},
    exec,
    names::MASK,
    names::{EnvKey, SecretName, SecretValue},
    store, unlock,
    vault::Vault,
};

pub(crate) fn run(ctx: &Context, args: RunArgs) -> Result<()> {
    let files = Files::prepare(&args.as_file, &args.render)?;
    let mut env = build(ctx, &args.env, false)?;
    if args.env.explain {
        return explain(&env, &args.env);
    }
    check(&env, &args.env)?;
    if args.redact.is_some_and(super::redact::wanted) {
        // A memfd's path names the pid that `exec` keeps; under --redact
        // the command is a child with a pid of its own, and vault (not
        // dumpable) cannot lend it a path into its own /proc entry.
        if !(args.as_file.is_empty() && args.render.is_empty()) {
            return Err(Error::usage(
                "--as-file and --render cannot be combined with --redact yet",
            )
            .hint("drop --redact, or pass the value as a variable"));
        }
        return super::redact::run(ctx, &args.command, env);
    }
    files.attach(ctx, &mut env)?;
    Err(exec::exec(&ctx.hardening, &args.command, &env))
}

/// `$SHELL` (from the merged environment, else `/bin/sh`), with no arguments.
pub(crate) fn shell(ctx: &Context, args: ShellArgs) -> Result<()> {
    let env = build(ctx, &args.env, true)?;
    if args.env.explain {
        return explain(&env, &args.env);
    }
    check(&env, &args.env)?;
    let shell = env
        .lookup("SHELL")
        .filter(|s| !s.is_empty())
        .map_or_else(|| OsString::from("/bin/sh"), OsStr::to_os_string);
    Err(exec::exec(&ctx.hardening, &[shell], &env))
}

/// A source checked and ready, before the vault is opened.
enum Ready {
    Secret(SecretName),
    Dotenv(PathBuf),
    Pairs(Origin, Vec<(EnvKey, SecretValue)>),
}

fn warn_dangerous(source: &str, pairs: &[(EnvKey, SecretValue)], shell: bool) {
    crate::names::warn_dangerous_at_run(source, pairs.iter().map(|(k, _)| k.as_str()), shell);
}

/// The child's environment from the base and every source, in order.
/// `shell` is true for `vault shell`, which runs `SHELL` itself.
pub(super) fn build(ctx: &Context, args: &EnvArgs, shell: bool) -> Result<ChildEnv> {
    let invoking: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut sets = 0;
    let ready = args
        .sources
        .iter()
        .map(|s| {
            sets += usize::from(matches!(s, Source::Set(_)));
            prepare(s, &invoking, sets)
        })
        .collect::<Result<Vec<_>>>()?;
    required(args)?;

    // Only a --secret needs the vault; without one it is not even opened.
    let vault = if ready.iter().any(|r| matches!(r, Ready::Secret(_))) {
        Some(Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?)
    } else {
        None
    };

    let mut env = ChildEnv::new(invoking, args.clean_env, args.no_override);
    for source in ready {
        match source {
            Ready::Secret(name) => {
                let conn = vault.as_ref().expect("opened for secrets").conn();
                let entries = store::entries(conn, &name)?;
                warn_dangerous(&format!("secret `{name}`"), &entries, shell);
                env.apply(Origin::Secret(name), entries);
            }
            Ready::Dotenv(path) => {
                let pairs = read_dotenv(&path, &env)?;
                warn_dangerous(&path.display().to_string(), &pairs, shell);
                env.apply(Origin::Dotenv(path), pairs);
            }
            Ready::Pairs(origin, pairs) => env.apply(origin, pairs),
        }
    }
    drop(vault);

    if let Some(var) = UNLOCKING_VARS.iter().find(|v| env.sources_set(v)) {
        return Err(Error::new(format!(
            "a source sets `{var}`, which vault never passes to a command"
        ))
        .hint("rename that key, or give a nested vault VAULT_PASSPHRASE_FILE or VAULT_IDENTITY (a file) instead"));
    }
    Ok(env)
}

/// Checks one source that needs no vault; secrets are only named here.
/// `set` counts the `--set` arguments so far, to name a bad one by position.
fn prepare(source: &Source, invoking: &[(OsString, OsString)], set: usize) -> Result<Ready> {
    match source {
        Source::Secret(name) => Ok(Ready::Secret(SecretName::parse(name)?)),
        Source::Dotenv(path) => Ok(Ready::Dotenv(find_dotenv(path)?)),
        Source::Set(arg) => {
            let Some((key, value)) = arg.split() else {
                // Not echoed: without a `=`, it may be a value given by mistake.
                return Err(Error::new("a --set argument has no `=`").hint(
                    "give each as --set KEY=VALUE (or --local-env KEY for a variable you have)",
                ));
            };
            // Not echoed either: in `--set p@ss=w0rd` both sides are a value.
            let key = EnvKey::parse(key).map_err(|_| {
                Error::new(format!(
                    "--set argument {set}: invalid key (not shown, as it may hold a value)"
                ))
                .hint("give each as --set KEY=VALUE, KEY a portable environment variable name")
            })?;
            let value = SecretValue::new(&key, Zeroizing::new(value.to_string()))?;
            Ok(Ready::Pairs(Origin::Set, vec![(key, value)]))
        }
        Source::LocalEnv(key) => {
            let key = EnvKey::parse(key)?;
            if UNLOCKING_VARS.contains(&key.as_str()) {
                return Err(
                    Error::new(format!("`{key}` is never passed to a command")).hint(
                        "give a nested vault VAULT_PASSPHRASE_FILE or VAULT_IDENTITY (a file) instead",
                    ),
                );
            }
            let Some((_, value)) = invoking.iter().find(|(k, _)| k == key.as_str()) else {
                return Err(Error::new(format!(
                    "--local-env `{key}`: no such variable in vault's environment"
                ))
                .hint(format!(
                    "set it first (`export {key}=…`), or drop --local-env {key}"
                )));
            };
            let Some(value) = value.to_str() else {
                return Err(Error::new(format!(
                    "--local-env `{key}`: its value is not UTF-8 text"
                ))
                .hint("vault stores and passes text; leave the variable to be inherited instead"));
            };
            let value = SecretValue::new(&key, Zeroizing::new(value.to_string()))?;
            Ok(Ready::Pairs(Origin::LocalEnv, vec![(key, value)]))
        }
    }
}

fn required(args: &EnvArgs) -> Result<Vec<EnvKey>> {
    args.require.iter().map(|k| EnvKey::parse(k)).collect()
}

/// `--dotenv[=PATH]`: a file as given, or the nearest `.env` from a
/// directory (the current one for a bare `--dotenv`) upward. Absolute, so
/// that `--explain` names it unambiguously.
fn find_dotenv(given: &Path) -> Result<PathBuf> {
    let path = std::path::absolute(given).map_err(|e| Error::io("resolve", given, e))?;
    if path.is_dir() {
        return input::nearest_env(&path, "pass the file: --dotenv=path/to/.env");
    }
    if !path.exists() {
        return Err(
            Error::new(format!("no dotenv file at {}", given.display())).hint(
                "check the path; a bare --dotenv finds the nearest .env from the current directory up",
            ),
        );
    }
    Ok(path)
}

/// A dotenv file, `$NAME` resolved against the environment built so far.
fn read_dotenv(path: &Path, env: &ChildEnv) -> Result<Vec<(EnvKey, SecretValue)>> {
    let (bytes, shown) = input::read_source(path)?;
    let lookup = |name: &str| env.lookup(name).and_then(OsStr::to_str).map(str::to_string);
    let parsed = dotenv::parse(&bytes, &dotenv::Options::default(), &lookup)
        .map_err(|e| Error::new(format!("{shown}, {e}")).hint("fix that line; nothing was run"))?;
    for w in &parsed.warnings {
        crate::term::warn(&format!("{shown}, {w}"));
    }
    parsed
        .entries
        .into_iter()
        .map(|entry| {
            let in_file = |e: Error| e.context(format_args!("{shown}, line {}", entry.line));
            let key = EnvKey::parse(&entry.key).map_err(in_file)?;
            let value = SecretValue::new(&key, entry.value).map_err(in_file)?;
            Ok((key, value))
        })
        .collect()
}

/// `--conflicts=error` and `--require`, the checks before anything runs.
pub(super) fn check(env: &ChildEnv, args: &EnvArgs) -> Result<()> {
    if args.conflicts == Conflicts::Error {
        let conflicts = env.conflicts();
        if !conflicts.is_empty() {
            let list = conflicts
                .iter()
                .map(|c| format!("`{}` ({})", c.key, c.sources.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(
                Error::new(format!("sources give different values for {list}")).hint(
                    "`--explain` shows where each key comes from; drop a source, or leave out --conflicts=error to let the later one win",
                ),
            );
        }
    }
    let required = required(args)?;
    let missing = env.missing(&required);
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let noun = if missing.len() == 1 { "key" } else { "keys" };
        // A typo in --require, or in the secret: the closest key a source set.
        let set: Vec<String> = env
            .explain()
            .into_iter()
            .map(|e| e.key.to_string())
            .collect();
        let typo = missing.iter().find_map(|m| {
            crate::names::closest(m.as_str(), set.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}` for `{m}`? "))
        });
        return Err(Error::new(format!("missing required {noun}: {list}")).hint(format!(
            "{}add a source that sets them (-s NAME, --dotenv, --set KEY=VALUE, --local-env KEY); `--explain` shows what is set",
            typo.unwrap_or_default()
        )));
    }
    Ok(())
}

/// `--explain`: every key the sources set, the source that won and what it
/// overrode; values masked; nothing runs. Failed `--require` and
/// `--conflicts=error` checks are warnings here, so the answer is still shown.
pub(super) fn explain(env: &ChildEnv, args: &EnvArgs) -> Result<()> {
    let rows = env.explain();
    if args.json {
        let arr: Vec<_> = rows
            .iter()
            .map(|e| json!({"key": e.key.as_str(), "source": e.source, "overridden": e.overridden}))
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
    } else if rows.is_empty() {
        note!("No source sets any key: the command would get only the base environment.");
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|e| {
                let over = if e.overridden.is_empty() {
                    "-".to_string()
                } else {
                    e.overridden.join(", ")
                };
                vec![e.key.to_string(), MASK.to_string(), e.source.clone(), over]
            })
            .collect();
        crate::output::print(&table::render(
            &["KEY", "VALUE", "SOURCE", "OVERRIDES"],
            &table_rows,
        ))?;
    }
    if let Err(e) = check(env, args) {
        crate::term::warn(&format!("the command would not run: {}", e.message()));
    }
    Ok(())
}
