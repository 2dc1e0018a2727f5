//! Secrets as files: `run --as-file KEY`, `run --render TEMPLATE=KEY` and
//! `vault render TEMPLATE` (DESIGN v2 "Files, editing, generating").
//!
//! Everything that can fail without the vault (key names, reading the
//! templates) is checked before it is opened; everything else before the
//! command runs. The files themselves are sealed memfds (`crate::memfd`).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use zeroize::Zeroizing;

use super::{input, run};
use crate::{
    cli::RenderArgs,
    context::Context,
    env::{ChildEnv, Origin},
    error::{Error, Result},
    memfd,
    names::{EnvKey, SecretValue, printable},
    render::{self, Reference},
    store, unlock,
    vault::Vault,
};

/// What `--as-file` and `--render` asked for, checked and read.
pub(crate) struct Files {
    as_file: Vec<EnvKey>,
    renders: Vec<Template>,
}

struct Template {
    path: PathBuf,
    shown: String,
    text: Zeroizing<String>,
    key: EnvKey,
}

impl Files {
    /// Checks the keys and reads the templates.
    pub(crate) fn prepare(as_file: &[String], renders: &[String]) -> Result<Files> {
        let mut keys: Vec<EnvKey> = vec![];
        let mut claim = |key: EnvKey| -> Result<EnvKey> {
            if keys.contains(&key) {
                return Err(Error::new(format!(
                    "`{}` is named by more than one --as-file or --render",
                    printable(key.as_str())
                ))
                .hint("each key can hold one file"));
            }
            keys.push(key.clone());
            Ok(key)
        };
        let as_file = as_file
            .iter()
            .map(|k| claim(EnvKey::parse(k)?))
            .collect::<Result<Vec<_>>>()?;
        let renders = renders
            .iter()
            .map(|arg| {
                // The key cannot hold `=`, a path can: split at the last one.
                let Some((path, key)) = arg.rsplit_once('=') else {
                    return Err(Error::new("a --render argument has no `=KEY`").hint(
                        "give it as --render TEMPLATE=KEY: the key gets the rendered file's path",
                    ));
                };
                if path.is_empty() {
                    return Err(Error::new("a --render argument has no TEMPLATE before `=`")
                        .hint("give it as --render TEMPLATE=KEY: TEMPLATE is the file to render"));
                }
                let key = claim(EnvKey::parse(key)?)?;
                let path = PathBuf::from(path);
                let (shown, text) = read_template(&path)?;
                Ok(Template {
                    path,
                    shown,
                    text,
                    key,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Files { as_file, renders })
    }

    /// Whether there is no file to make.
    pub(crate) fn is_empty(&self) -> bool {
        self.as_file.is_empty() && self.renders.is_empty()
    }

    /// `attach` for a command that `run --redact` starts as its child: the
    /// paths name our pid, which the command will not have, so it starts
    /// as `vault __exec-files -- COMMAND…`, which sets each key to its
    /// descriptor through its own pid (the command's, once it execs) and
    /// execs the command. Returns that argv.
    pub(crate) fn attach_for_child(
        self,
        ctx: &Context,
        env: &mut ChildEnv,
        command: &[OsString],
    ) -> Result<Vec<OsString>> {
        let table: Vec<String> = self
            .attach(ctx, env)?
            .into_iter()
            .map(|(key, fd)| format!("{key}={fd}"))
            .collect();
        let table_key = EnvKey::parse(EXEC_FILES)?;
        let table = SecretValue::new(&table_key, Zeroizing::new(table.join(",")))?;
        env.apply(Origin::AsFile, [(table_key, table)]);
        let exe = std::env::current_exe()
            .map_err(|e| Error::io("find", Path::new("/proc/self/exe"), e))?;
        let mut argv = vec![exe.into_os_string(), "__exec-files".into(), "--".into()];
        argv.extend(command.iter().cloned());
        Ok(argv)
    }

    /// Puts each `--as-file` value and each rendered template into a sealed
    /// memfd and points its key at it. As-files first, so a template sees
    /// their paths, as the command does. Returns each key's descriptor.
    pub(crate) fn attach(self, ctx: &Context, env: &mut ChildEnv) -> Result<Vec<(EnvKey, i32)>> {
        let mut made = vec![];
        for key in self.as_file {
            let Some(value) = env.source_value(&key) else {
                let why = if env.sources_set(key.as_str()) {
                    "--no-override keeps the inherited value"
                } else {
                    "no source sets it"
                };
                return Err(Error::new(format!(
                    "--as-file `{}`: {why}",
                    printable(key.as_str())
                ))
                .hint(
                    "add a source that sets it (-s NAME, --dotenv, --set KEY=VALUE); `--explain` shows what is set",
                ));
            };
            let fd = memfd::sealed(key.as_str(), value.expose().as_bytes())?;
            let path = memfd::path_of(std::process::id(), fd);
            let path = SecretValue::new(&key, Zeroizing::new(path))?;
            made.push((key.clone(), fd));
            env.apply(Origin::AsFile, [(key, path)]);
        }
        let mut stored = stored_values(ctx);
        for t in self.renders {
            let text = fill(&t.text, &t.shown, env, &mut stored)?;
            let fd = memfd::sealed(t.key.as_str(), text.as_bytes())?;
            let path = memfd::path_of(std::process::id(), fd);
            let path = SecretValue::new(&t.key, Zeroizing::new(path))?;
            made.push((t.key.clone(), fd));
            env.apply(Origin::Render(t.path), [(t.key, path)]);
        }
        Ok(made)
    }
}

/// The variable that tells `vault __exec-files` which key holds which
/// descriptor (`KEY=FD,…`); never passed on to the command.
const EXEC_FILES: &str = "VAULT_EXEC_FILES";

/// `vault __exec-files -- COMMAND…`: the environment as inherited, less
/// `VAULT_EXEC_FILES`, each key it names pointing at its descriptor
/// through this pid (which exec hands to the command), then exec.
pub(crate) fn exec_with_files(ctx: &Context, command: &[OsString]) -> Result<()> {
    let table = std::env::var(EXEC_FILES).map_err(|_| {
        Error::new(format!(
            "{EXEC_FILES} is not set: `__exec-files` is only for `vault run --redact`"
        ))
    })?;
    let mut env = ChildEnv::new(
        std::env::vars_os().filter(|(k, _)| k != EXEC_FILES),
        false,
        false,
    );
    let pid = std::process::id();
    for item in table.split(',').filter(|i| !i.is_empty()) {
        let (key, fd) = item
            .split_once('=')
            .and_then(|(k, fd)| Some((EnvKey::parse(k).ok()?, fd.parse::<i32>().ok()?)))
            .ok_or_else(|| Error::new(format!("{EXEC_FILES} is malformed")))?;
        let path = SecretValue::new(&key, Zeroizing::new(memfd::path_of(pid, fd)))?;
        env.apply(Origin::AsFile, [(key, path)]);
    }
    Err(crate::exec::exec(&ctx.hardening, command, &env))
}

/// A template's text; errors name the file.
fn read_template(path: &Path) -> Result<(String, Zeroizing<String>)> {
    if path.is_dir() {
        return Err(
            Error::new(format!("the template {} is a directory", path.display()))
                .hint("give the template file"),
        );
    }
    let (bytes, shown) = input::read_source(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| {
            Error::new(format!(
                "the template {shown} is not UTF-8 text (byte {})",
                e.valid_up_to()
            ))
        })?
        .to_string();
    Ok((shown, Zeroizing::new(text)))
}

/// `template` filled from `env` (what the command sees, inherited variables
/// included) and from stored values.
fn fill(
    template: &str,
    shown: &str,
    env: &ChildEnv,
    stored: &mut dyn FnMut(&Reference) -> Result<SecretValue>,
) -> Result<Zeroizing<String>> {
    let lookup = |name: &str| {
        env.lookup(name)
            .and_then(|v| v.to_str())
            .map(|v| Zeroizing::new(v.to_string()))
    };
    render::render(template, shown, &lookup, stored)
}

/// Resolves `vault://` references, opening the vault the first time one
/// is asked for (a template without one never needs it).
fn stored_values(ctx: &Context) -> impl FnMut(&Reference) -> Result<SecretValue> + '_ {
    let mut vault: Option<Vault> = None;
    move |r: &Reference| {
        let env = r.env.clone().unwrap_or_else(|| ctx.scope.env.clone());
        let v = match &mut vault {
            Some(v) => v,
            empty => empty.insert(Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?),
        };
        store::conflicts::usable_entries(v.conn(), &env, &r.secret)?
            .into_iter()
            .find(|(k, _)| *k == r.key)
            .map(|(_, value)| value)
            .ok_or_else(|| {
                let flag = r
                    .env
                    .as_ref()
                    .map(|e| format!(" -e {e}"))
                    .unwrap_or_default();
                Error::new(format!("secret `{}` has no key `{}`", r.secret, r.key)).hint(format!(
                    "`vault secret show{flag} {}` lists its keys",
                    r.secret
                ))
            })
    }
}

/// `vault render TEMPLATE [SOURCE]…`: the filled-in template on stdout.
pub(crate) fn render_command(ctx: &Context, args: RenderArgs) -> Result<()> {
    let (shown, template) = read_template(&args.template)?;
    let env = run::build(ctx, &args.env, false)?;
    if args.env.explain {
        return run::explain(ctx, &env, &args.env);
    }
    run::check(ctx, &env, &args.env)?;
    let mut stored = stored_values(ctx);
    let text = fill(&template, &shown, &env, &mut stored)?;
    crate::output::print(&text)
}
