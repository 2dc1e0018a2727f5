//! `vault run` (alias `vault exec`) and `vault shell`, as DESIGN.md says:
//!
//! 1. Check what needs no vault: names, `--set` pairs, `--local-env`
//!    variables, dotenv files, `--require` keys. The project's sources
//!    (vault.toml, allowed by then) come first, then the command line's.
//! 2. Open the vault only if a `--secret` or a `vault://` reference in a
//!    dotenv file asks for it: read, decrypt, deserialize, one query per
//!    secret.
//! 3. Merge the sources over the base environment in that order.
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
    names::{EnvKey, SecretName, SecretValue, printable},
    project::Reference,
    store, unlock,
    vault::Vault,
};
use rusqlite::Connection;

pub(crate) fn run(ctx: &Context, args: RunArgs) -> Result<()> {
    let as_file = [project_files(ctx), args.as_file.clone()].concat();
    let files = Files::prepare(&as_file, &args.render)?;
    let (mut env, opened) = build_keeping(ctx, &args.env, false)?;
    if args.env.explain {
        return explain(ctx, &env, &args.env);
    }
    check(ctx, &env, &args.env)?;
    if args.redact.is_some_and(super::redact::wanted) {
        // The values are masked, never the paths that replace them.
        let redactor = super::redact::redactor(&env)?;
        // A memfd's path names the pid that `exec` keeps; under --redact
        // the command is a child with a pid of its own, and vault (not
        // dumpable) cannot lend it a path into its own /proc entry: the
        // child first runs `vault __exec-files`, which names its own.
        let argv = if files.is_empty() {
            args.command.clone()
        } else {
            files.attach_for_child(ctx, &mut env, &args.command)?
        };
        drop(opened);
        return super::redact::run(ctx, &argv, env, redactor);
    }
    files.attach(ctx, &mut env)?;
    let err = exec::exec(&ctx.hardening, &args.command, &env);
    drop(opened);
    Err(err)
}

/// The keys the project's `files` (for the current environment) puts in
/// files, as `--as-file` does; they come before the command line's.
fn project_files(ctx: &Context) -> Vec<String> {
    ctx.scope
        .project
        .as_ref()
        .map(|p| p.sources(&ctx.scope.env).files)
        .unwrap_or_default()
}

/// `$SHELL` (from the merged environment, else `/bin/sh`), with no arguments.
pub(crate) fn shell(ctx: &Context, args: ShellArgs) -> Result<()> {
    let files = Files::prepare(&project_files(ctx), &[])?;
    let (mut env, opened) = build_keeping(ctx, &args.env, true)?;
    if args.env.explain {
        return explain(ctx, &env, &args.env);
    }
    check(ctx, &env, &args.env)?;
    files.attach(ctx, &mut env)?;
    let shell = env
        .lookup("SHELL")
        .filter(|s| !s.is_empty())
        .map_or_else(|| OsString::from("/bin/sh"), OsStr::to_os_string);
    // A SHELL that a source set is a value from the vault or a dotenv
    // file: an error names the variable, never the value.
    let from_source = EnvKey::parse("SHELL")
        .ok()
        .is_some_and(|k| env.source_value(&k).is_some());
    let err = exec::exec(&ctx.hardening, &[shell], &env);
    drop(opened);
    if from_source {
        return Err(Error::new(
            "cannot start the shell that a source sets in `SHELL`: it is not a program that can be run here",
        )
        .kind(err.kind_of())
        .hint("check the `SHELL` your secrets or dotenv files set (`vault shell --explain` shows which one), or unset it there"));
    }
    Err(err)
}

/// A source checked and ready, before the vault is opened.
pub(crate) enum Ready {
    Secret(Option<String>, SecretName),
    Dotenv(PathBuf),
    Pairs(Origin, Vec<(EnvKey, SecretValue)>),
}

fn warn_dangerous(source: &str, pairs: &[(EnvKey, SecretValue)], shell: bool) {
    crate::names::warn_dangerous_at_run(source, pairs.iter().map(|(k, _)| k.as_str()), shell);
}

/// The vault, opened the first time a secret or a `vault://` reference
/// needs it (a `run` with neither never decrypts anything).
pub(crate) struct Secrets<'a> {
    ctx: &'a Context,
    /// The environment a bare `NAME` is looked up in.
    pub(crate) env: String,
    vault: Option<Vault>,
}

impl<'a> Secrets<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Self {
        Secrets {
            ctx,
            env: ctx.scope.env.clone(),
            vault: None,
        }
    }

    pub(crate) fn conn(&mut self) -> Result<&Connection> {
        if self.vault.is_none() {
            self.vault = Some(open_vault(self.ctx)?);
        }
        Ok(self.vault.as_ref().expect("just opened").conn())
    }

    /// The entries of `name` in `env` (the current environment for `None`).
    pub(crate) fn entries(
        &mut self,
        env: Option<&str>,
        name: &SecretName,
    ) -> Result<Vec<(EnvKey, SecretValue)>> {
        let env = env.unwrap_or(&self.env).to_string();
        // Never a value a merge left unresolved (DESIGN v2 "Git").
        store::conflicts::usable_entries(self.conn()?, &env, name)
    }

    /// One key of a stored secret, for a `vault://` reference.
    pub(crate) fn reference(&mut self, r: &Reference) -> Result<SecretValue> {
        let name = SecretName::parse(&r.name)?;
        let entries = self.entries(r.env.as_deref(), &name)?;
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        match entries.iter().position(|(k, _)| k.as_str() == r.key) {
            Some(i) => Ok(entries.into_iter().nth(i).expect("found").1),
            None => {
                let hint = match crate::names::closest(&r.key, keys.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? `vault secret show {}` lists its keys",
                        r.name
                    ),
                    None => format!("`vault secret show {}` lists its keys", r.name),
                };
                Err(
                    Error::new(format!("`{r}`: secret `{}` has no key `{}`", r.name, r.key))
                        .hint(hint),
                )
            }
        }
    }

    /// Whether `vault://` references in the dotenv file at `path` may be
    /// resolved: only in the folder of the project in use, which you
    /// allowed. A cloned repository without one (or with one you did not
    /// allow) must not pull your secrets through a `.env` it ships.
    fn may_resolve(&self, path: &Path) -> bool {
        // By the real paths: `--dotenv ../other/.env` is not inside.
        let real = |p: &Path| std::fs::canonicalize(p).ok();
        self.ctx
            .scope
            .project
            .as_ref()
            .and_then(|p| Some((real(path)?, real(&p.dir)?)))
            .is_some_and(|(file, dir)| file.starts_with(dir))
    }

    /// Whether the vault holds `env`: an unknown environment is an error
    /// even when no secret of it is asked for (a typo in `-e`).
    pub(crate) fn require_env(&mut self, env: &str) -> Result<()> {
        let conn = self.conn()?;
        store::require_env(conn, env)
    }
}

/// The sources a command gets: the project's (when it uses one) first,
/// then those of the command line, each with its origin label wrapper.
pub(crate) fn all_sources(
    ctx: &Context,
    env: &str,
    given: &[Source],
) -> Result<Vec<(Source, bool)>> {
    let mut out = vec![];
    if let Some(p) = &ctx.scope.project {
        let s = p.sources(env);
        out.extend(s.secrets.into_iter().map(|n| (Source::Secret(n), true)));
        out.extend(
            s.dotenv
                .into_iter()
                .map(|d| (Source::ProjectDotenv(d), true)),
        );
    }
    out.extend(given.iter().cloned().map(|s| (s, false)));
    Ok(out)
}

/// The keys a command must get: the project's `require`, then `--require`.
pub(crate) fn required_keys(ctx: &Context, env: &str, given: &[String]) -> Result<Vec<EnvKey>> {
    let from_project = ctx
        .scope
        .project
        .as_ref()
        .map(|p| p.sources(env).require)
        .unwrap_or_default();
    let mut out: Vec<EnvKey> = vec![];
    for k in from_project.iter().chain(given) {
        let k = EnvKey::parse(k)?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// The child's environment from the base and every source, in order.
/// `shell` is true for `vault shell`, which runs `SHELL` itself.
pub(super) fn build(ctx: &Context, args: &EnvArgs, shell: bool) -> Result<ChildEnv> {
    build_keeping(ctx, args, shell).map(|(env, _)| env)
}

/// `build`, and the vault it opened, for a caller about to `exec`: held
/// across the exec, it is never dropped when the exec succeeds. Dropping
/// it closes SQLite and wipes the decrypted chunks, about 5% of a `run`,
/// for memory the exec hands back to the kernel anyway (SECURITY.md).
fn build_keeping(ctx: &Context, args: &EnvArgs, shell: bool) -> Result<(ChildEnv, Opened)> {
    let invoking: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut env = ChildEnv::new(invoking.clone(), args.clean_env, args.no_override);
    let opened = merge(ctx, &args.sources, &invoking, &mut env, shell)?;
    required_keys(ctx, &ctx.scope.env, &args.require)?;
    if let Some(var) = UNLOCKING_VARS.iter().find(|v| env.sources_set(v)) {
        return Err(Error::new(format!(
            "a source sets `{var}`, which vault never passes to a command"
        ))
        .hint("rename that key, or give a nested vault VAULT_PASSPHRASE_FILE or VAULT_IDENTITY (a file) instead"));
    }
    Ok((env, opened))
}

/// The vault `merge` opened, if a source needed it.
pub(crate) struct Opened(
    #[expect(dead_code, reason = "held, never read: its drop closes the vault")] Option<Vault>,
);

/// Applies the project's sources and `given` to `env`, in order. Every
/// source that needs no vault is checked before the vault is opened.
pub(crate) fn merge(
    ctx: &Context,
    given: &[Source],
    invoking: &[(OsString, OsString)],
    env: &mut ChildEnv,
    shell: bool,
) -> Result<Opened> {
    let project = ctx.scope.project.as_ref().map(|p| p.path.clone());
    let mut sets = 0;
    let ready = all_sources(ctx, &ctx.scope.env, given)?
        .iter()
        .map(|(s, from_project)| {
            sets += usize::from(matches!(s, Source::Set(_)));
            let r = prepare(s, invoking, sets)?;
            Ok((r, *from_project))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut secrets = Secrets::new(ctx);
    if !env_is_declared(ctx, &ctx.scope.env) {
        secrets.require_env(&ctx.scope.env)?;
    }
    for (source, from_project) in ready {
        let named_by = if from_project {
            project.as_deref()
        } else {
            None
        };
        apply(source, named_by, env, &mut secrets, shell)?;
    }
    Ok(Opened(secrets.vault))
}

/// Reads one prepared source (a secret, a dotenv file) and applies it;
/// `project` is the project file that named it, if one did.
pub(crate) fn apply(
    source: Ready,
    project: Option<&Path>,
    env: &mut ChildEnv,
    secrets: &mut Secrets<'_>,
    shell: bool,
) -> Result<()> {
    let label = |o: Origin| match project {
        Some(p) => Origin::Project(Box::new(o), p.to_path_buf()),
        None => o,
    };
    match source {
        Ready::Secret(in_env, name) => {
            let entries = secrets.entries(in_env.as_deref(), &name)?;
            warn_dangerous(&format!("secret `{name}`"), &entries, shell);
            let origin = match in_env {
                Some(e) => Origin::SecretIn(e, name),
                None => Origin::Secret(name),
            };
            env.apply(label(origin), entries);
        }
        Ready::Dotenv(path) => {
            let pairs = read_dotenv(&path, env, secrets)?;
            warn_dangerous(&path.display().to_string(), &pairs, shell);
            env.apply(label(Origin::Dotenv(path)), pairs);
        }
        Ready::Pairs(origin, pairs) => env.apply(label(origin), pairs),
    }
    Ok(())
}

/// Whether the current environment needs no check against the vault:
/// `main`, or one the project names (its default or an `[env.NAME]`).
pub(crate) fn env_is_declared(ctx: &Context, env: &str) -> bool {
    env == store::DEFAULT_ENV
        || ctx
            .scope
            .project
            .as_ref()
            .is_some_and(|p| p.env.as_deref() == Some(env) || p.env_names().any(|n| n == env))
}

/// The vault the command works on, for reading. A project that names a
/// vault file which does not exist says so, not just "no vault".
fn open_vault(ctx: &Context) -> Result<Vault> {
    if let (Some(p), false) = (&ctx.scope.project, ctx.paths.file.exists())
        && ctx.scope.vault.is_some()
    {
        return Err(Error::new(format!(
            "no vault at {}, which {} names",
            ctx.paths.file.display(),
            p.path.display()
        ))
        .hint("create it with `vault init` in the project, or fix `vault` in vault.toml"));
    }
    Vault::open(&ctx.paths, &unlock::for_read(ctx)?)
}

/// `NAME` or `ENV/NAME`, as `-s` and a project's `secrets` take them.
pub(crate) fn secret_ref(given: &str) -> Result<(Option<String>, SecretName)> {
    match given.split_once('/') {
        Some((env, name)) => Ok((
            Some(crate::project::env_name(env)?),
            SecretName::parse(name)?,
        )),
        None => Ok((None, SecretName::parse(given)?)),
    }
}

/// Checks one source that needs no vault; secrets are only named here.
pub(crate) fn prepare(
    source: &Source,
    invoking: &[(OsString, OsString)],
    set: usize,
) -> Result<Ready> {
    match source {
        Source::Secret(name) => {
            let (env, name) = secret_ref(name)?;
            Ok(Ready::Secret(env, name))
        }
        Source::Dotenv(path) => Ok(Ready::Dotenv(find_dotenv(path)?)),
        Source::ProjectDotenv(path) => {
            if !path.is_file() {
                return Err(Error::new(format!(
                    "no dotenv file at {}, which vault.toml names",
                    path.display()
                ))
                .hint("create it, or fix `dotenv` in vault.toml (paths are relative to it)"));
            }
            Ok(Ready::Dotenv(path.clone()))
        }
        Source::DotenvName(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(Error::new(format!(
                    "--dotenv-name `{}` is not a file name",
                    printable(name)
                ))
                .hint("give a bare file name, like --dotenv-name .env.local; --dotenv=PATH takes a path"));
            }
            let cwd = std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?;
            Ok(Ready::Dotenv(input::nearest_named(
                &cwd,
                name,
                "pass the file itself: --dotenv=path/to/file",
            )?))
        }
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
            // A long name is shortened, as names are in every message.
            let shown = printable(key.as_str());
            let Some((_, value)) = invoking.iter().find(|(k, _)| k == key.as_str()) else {
                return Err(Error::new(format!(
                    "--local-env `{shown}`: no such variable in vault's environment"
                ))
                .hint(format!(
                    "set it first (`export {shown}=…`), or drop --local-env {shown}"
                )));
            };
            let Some(value) = value.to_str() else {
                return Err(Error::new(format!(
                    "--local-env `{shown}`: its value is not UTF-8 text"
                ))
                .hint("vault stores and passes text; leave the variable to be inherited instead"));
            };
            let value = SecretValue::new(&key, Zeroizing::new(value.to_string()))?;
            Ok(Ready::Pairs(Origin::LocalEnv, vec![(key, value)]))
        }
    }
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

/// A dotenv file, `$NAME` resolved against the environment built so far,
/// and every value that is a `vault://` reference replaced by the key it
/// points at (all of a file's bad references named in one error).
pub(crate) fn read_dotenv(
    path: &Path,
    env: &ChildEnv,
    secrets: &mut Secrets<'_>,
) -> Result<Vec<(EnvKey, SecretValue)>> {
    let (bytes, shown) = input::read_source(path)?;
    let lookup = |name: &str| env.lookup(name).and_then(OsStr::to_str).map(str::to_string);
    let parsed = dotenv::parse(&bytes, &dotenv::Options::default(), &lookup)
        .map_err(|e| Error::new(format!("{shown}, {e}")).hint("fix that line; nothing was run"))?;
    for w in &parsed.warnings {
        crate::term::warn(&format!("{shown}, {w}"));
    }
    let mut out = vec![];
    let mut bad: Vec<Error> = vec![];
    for entry in parsed.entries {
        let in_file =
            |e: Error| Error::new(format!("{shown}, line {}: {}", entry.line, e.message()));
        let key = EnvKey::parse(&entry.key).map_err(in_file)?;
        if !entry.as_written && entry.value.contains("vault://") {
            // `P=vault:` then `X=${P}//db/KEY`, or `URL=…${REF}…`: a
            // reference assembled by expansion is none that a reader of
            // the file (or its allowed hash) sees, and one expanded into
            // another value would be passed on as text.
            bad.push(
                Error::new(format!(
                    "{shown}, line {}: `{key}` holds vault:// only once `$` names are expanded",
                    entry.line
                ))
                .hint("write a reference out in full as the whole value (KEY=vault://NAME/KEY); to build a value from stored keys use `vault render`"),
            );
            continue;
        }
        let value = match Reference::parse(&entry.value) {
            None => SecretValue::new(&key, entry.value).map_err(in_file)?,
            Some(Err(())) => {
                bad.push(
                    Error::new(format!(
                        "{shown}, line {}: `{key}` starts with vault:// but is not a reference",
                        entry.line
                    ))
                    .hint("a reference is exactly vault://NAME/KEY or vault://ENV/NAME/KEY"),
                );
                continue;
            }
            Some(Ok(_)) if !secrets.may_resolve(path) => {
                bad.push(
                    Error::new(format!(
                        "{shown}, line {}: `{key}` is a vault:// reference, and references resolve only in an allowed project",
                        entry.line
                    ))
                    .hint("a cloned repository's .env must not pull your secrets: `vault project init` (or `vault allow` its vault.toml) in the folder you trust"),
                );
                continue;
            }
            Some(Ok(r)) => match secrets.reference(&r) {
                Ok(v) => SecretValue::new(&key, Zeroizing::new(v.expose().to_string()))?,
                Err(e) => {
                    let hint = e.hint_text().map(str::to_string);
                    let mut e =
                        Error::new(format!("{shown}, line {}: {}", entry.line, e.message()));
                    if let Some(h) = hint {
                        e = e.hint(h);
                    }
                    bad.push(e);
                    continue;
                }
            },
        };
        out.push((key, value));
    }
    match bad.len() {
        0 => Ok(out),
        1 => Err(bad.remove(0)),
        n => {
            let hint = bad[0].hint_text().map(str::to_string);
            let list = bad
                .iter()
                .map(|e| e.message().to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let e = Error::new(format!("{n} references do not resolve: {list}"));
            Err(match hint {
                Some(h) => e.hint(h),
                None => e,
            })
        }
    }
}

/// `--conflicts=error` and `--require`, the checks before anything runs.
pub(super) fn check(ctx: &Context, env: &ChildEnv, args: &EnvArgs) -> Result<()> {
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
    let required = required_keys(ctx, &ctx.scope.env, &args.require)?;
    missing_keys(env, &required)
}

/// Fails naming every key of `required` the child would not get.
pub(crate) fn missing_keys(env: &ChildEnv, required: &[EnvKey]) -> Result<()> {
    let missing = env.missing(required);
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|k| format!("`{}`", printable(k.as_str())))
            .collect::<Vec<_>>()
            .join(", ");
        let (noun, them) = if missing.len() == 1 {
            ("key", "it")
        } else {
            ("keys", "them")
        };
        // A typo in --require, or in the secret: the closest key a source set.
        let set: Vec<String> = env
            .explain()
            .into_iter()
            .map(|e| e.key.to_string())
            .collect();
        let typo = missing.iter().find_map(|m| {
            crate::names::closest(m.as_str(), set.iter().map(String::as_str)).map(|c| {
                format!(
                    "did you mean `{}` for `{}`? ",
                    printable(c),
                    printable(m.as_str())
                )
            })
        });
        return Err(Error::new(format!("missing required {noun}: {list}")).hint(format!(
            "{}add a source that sets {them} (-s NAME, --dotenv, --set KEY=VALUE, --local-env KEY); `--explain` shows what is set",
            typo.unwrap_or_default()
        )));
    }
    Ok(())
}

/// `--explain`: every key the sources set, the source that won and what it
/// overrode; values masked; nothing runs. Failed `--require` and
/// `--conflicts=error` checks are warnings here, so the answer is still shown.
pub(super) fn explain(ctx: &Context, env: &ChildEnv, args: &EnvArgs) -> Result<()> {
    // The answer goes to stdout, all of it (DESIGN "Errors and exit
    // codes"); JSON stays JSON, so there the project is a note.
    if let Some(p) = &ctx.scope.project {
        let line = format!(
            "Project {} (environment {}): its sources come first",
            p.path.display(),
            ctx.scope.env
        );
        if args.json {
            note!("{line}");
        } else {
            out!("{line}")?;
        }
    }
    let rows = env.explain();
    if args.json {
        let arr: Vec<_> = rows
            .iter()
            .map(|e| json!({"key": e.key.as_str(), "source": e.source, "overridden": e.overridden}))
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
    } else if rows.is_empty() {
        out!("No source sets any key: the command would get only the base environment.")?;
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
    if let Err(e) = check(ctx, env, args) {
        crate::term::warn(&format!("the command would not run: {}", e.message()));
    }
    Ok(())
}
