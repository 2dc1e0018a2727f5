//! `vault project init`, `vault allow`, `vault deny` and `vault check`: the
//! commands that write, trust and verify a project's `vault.toml` (DESIGN
//! v2 "Projects"). Parsing and the allow list are `crate::project`'s.

use crate::output::{note, out};
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use super::{
    run::{self, Secrets},
    secret::plural,
};
use crate::{
    cli::ProjectCommand,
    context::Context,
    env::ChildEnv,
    error::{Error, Result},
    fsio,
    names::EnvKey,
    project::{self, Allowed, FILE_NAME, Project},
    store,
};

/// `vault allow [PATH]`: records the file's path and SHA-256.
pub(crate) fn allow(ctx: &Context, path: Option<&Path>) -> Result<()> {
    let path = locate(path, "allow")?;
    // A file that does not parse is not worth trusting: say why now.
    let p = Project::load(&path)?;
    let changed = Allowed::update(&ctx.paths.dir, &p.path, Some(p.digest_hex()))?;
    let verb = if changed {
        "Allowed"
    } else {
        "Already allowed:"
    };
    note!(
        "{verb} {} (sha256 {})",
        p.path.display(),
        &p.digest_hex()[..16]
    );
    Ok(())
}

/// `vault deny [PATH]`: forgets the file, so it runs nothing again.
pub(crate) fn deny(ctx: &Context, path: Option<&Path>) -> Result<()> {
    let path = match path {
        // A project deleted (or moved) since: its entry is forgotten by
        // the path it was allowed at.
        Some(p) if !p.exists() => {
            let abs = std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))?;
            match (
                abs.parent().and_then(|d| std::fs::canonicalize(d).ok()),
                abs.file_name(),
            ) {
                (Some(dir), Some(name)) => dir.join(name),
                _ => abs,
            }
        }
        given => locate(given, "deny")?,
    };
    if Allowed::update(&ctx.paths.dir, &path, None)? {
        note!(
            "Denied {}: it runs nothing until `vault allow`",
            path.display()
        );
    } else {
        note!("{} was not allowed; nothing changed", path.display());
    }
    Ok(())
}

/// The project file `allow`/`deny` act on: PATH as a file, or the upward
/// search from PATH (a folder) or the current folder. Canonical, as the
/// search finds it, so that allowing by either route records one path.
fn locate(given: Option<&Path>, verb: &str) -> Result<PathBuf> {
    let start = match given {
        Some(p) if !p.is_dir() => {
            return std::fs::canonicalize(p).map_err(|e| Error::io("open", p, e));
        }
        Some(p) => p.to_path_buf(),
        None => std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?,
    };
    project::find_upward(&start, FILE_NAME).map_err(|stop| {
        Error::new(format!(
            "no {FILE_NAME} in {} or the folders above it ({stop})",
            start.display()
        ))
        .hint(format!(
            "`vault project init` writes one; or pass the file: `vault {verb} path/to/vault.toml`"
        ))
    })
}

/// `vault project init`: a commented `vault.toml` in the current folder,
/// allowed at once (you wrote it).
pub(crate) fn init(ctx: &Context, command: ProjectCommand) -> Result<()> {
    let ProjectCommand::Init {
        secrets,
        dotenv,
        require,
        force,
    } = command;
    check_init_args(&secrets, &dotenv, &require)?;
    let cwd = std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?;
    let path = cwd.join(FILE_NAME);
    if path.exists() && !force {
        return Err(Error::new(format!("{} already exists", path.display()))
            .hint("edit it, or pass --force to replace it"));
    }
    // The file is committed: a vault given by an absolute path inside
    // this folder (`VAULT_FILE=$PWD/secrets.vault`) is written relative,
    // so that it holds in every checkout.
    let vault = ctx
        .scope
        .vault_flag
        .as_deref()
        .map(|v| match v.strip_prefix(&cwd) {
            Ok(inside) if !inside.as_os_str().is_empty() => inside,
            _ => v,
        });
    let text = template(
        vault,
        ctx.scope.env_flag.as_deref(),
        &secrets,
        &dotenv,
        &require,
    );
    // What we write must read back: the same checks as any project file.
    let p = Project::parse(&path, text.as_bytes())?;
    let before = if path.exists() {
        Some(fsio::read(&path)?)
    } else {
        None
    };
    let write = |bytes: &[u8]| {
        fsio::atomic_write(&path, |f| {
            use std::io::Write;
            f.write_all(bytes)
        })
    };
    write(text.as_bytes())?;
    // A file written but not allowed would fail every command, and a
    // second `project init` would find it there: put back what was.
    if let Err(e) = Allowed::update(&ctx.paths.dir, &p.path, Some(p.digest_hex())) {
        let _ = match &before {
            Some(old) => write(old),
            None => std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e)),
        };
        return Err(e);
    }
    note!(
        "Wrote {} and allowed it; commit it (it holds names, never values)",
        path.display()
    );
    Ok(())
}

/// The names `project init` was given, checked as `run` checks them: a bad
/// one is named with its option, not by a line of a file never written.
fn check_init_args(secrets: &[String], dotenv: &[String], require: &[String]) -> Result<()> {
    for s in secrets {
        run::secret_ref(s).map_err(|e| e.context("--secret"))?;
    }
    if dotenv.iter().any(String::is_empty) {
        return Err(Error::new("--dotenv: an empty path")
            .hint("give a dotenv file relative to the project folder, like --dotenv .env.local"));
    }
    for k in require {
        EnvKey::parse(k).map_err(|e| e.context("--require"))?;
    }
    Ok(())
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| toml::Value::String(i.clone()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The text `project init` writes: what it was given as settings, and the
/// rest as comments that show how.
fn template(
    vault: Option<&Path>,
    env: Option<&str>,
    secrets: &[String],
    dotenv: &[String],
    require: &[String],
) -> String {
    let line = |set: bool, key: &str, value: String, what: &str| {
        let prefix = if set { "" } else { "# " };
        let code = format!("{prefix}{key} = {value}");
        format!("{code:<29} # {what}\n")
    };
    let mut t = String::from(
        "# vault.toml: the secrets this project's commands get with `vault run -- CMD`.\n\
         # It holds names, never values: commit it. Each checkout must `vault allow` it.\n\n",
    );
    let vault_value = vault.map(|v| v.to_string_lossy().into_owned());
    t += &line(
        vault.is_some(),
        "vault",
        toml::Value::String(vault_value.unwrap_or_else(|| "secrets.vault".into())).to_string(),
        "a vault file; a relative path starts here",
    );
    t += &line(
        env.is_some(),
        "env",
        toml::Value::String(env.unwrap_or("dev").into()).to_string(),
        "the default environment (-e ENV wins)",
    );
    let or = |given: &[String], example: &[&str]| {
        if given.is_empty() {
            toml_list(&example.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        } else {
            toml_list(given)
        }
    };
    t += &line(
        !secrets.is_empty(),
        "secrets",
        or(secrets, &["db"]),
        "applied first, in order (like -s NAME or ENV/NAME)",
    );
    t += &line(
        !dotenv.is_empty(),
        "dotenv",
        or(dotenv, &[".env"]),
        "then these dotenv files, relative to this file",
    );
    t += &line(
        !require.is_empty(),
        "require",
        or(require, &["DATABASE_URL"]),
        "checked before anything runs (like --require)",
    );
    t += "\n# [env.prod]                  # per environment: replaces the keys it sets\n\
          # secrets = [\"db\", \"sentry\"]\n";
    t
}

/// `vault check [-e ENV] [--all-envs]`: resolves every source and required
/// key of the project, runs nothing, and fails naming everything missing.
pub(crate) fn check(ctx: &Context, all_envs: bool) -> Result<()> {
    let Some(p) = &ctx.scope.project else {
        let cwd = std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?;
        return Err(Error::new(format!(
            "no {FILE_NAME} in {} or the folders above it",
            cwd.display()
        ))
        .hint("`vault check` checks a project; `vault project init` writes its vault.toml"));
    };
    let mut envs = vec![ctx.scope.env.clone()];
    if all_envs {
        envs.extend(p.env_names().map(str::to_string));
        // Once each, the current one first (`-e prod --all-envs`).
        let mut seen = std::collections::HashSet::new();
        envs.retain(|e| seen.insert(e.clone()));
    }
    let invoking: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut secrets = Secrets::new(ctx);
    let mut problems: Vec<String> = vec![];
    let mut report: Vec<String> = vec![];
    for env in &envs {
        secrets.env = env.clone();
        let before = problems.len();
        if !run::env_is_declared(ctx, env)
            && let Err(e) = secrets.require_env(env)
        {
            problems.push(format!("[{env}] {}", e.message()));
            continue;
        }
        let mut child = ChildEnv::new(invoking.clone(), false, false);
        let sources = run::all_sources(ctx, env, &[])?;
        let n = sources.len();
        for (source, _) in sources {
            let ready = run::prepare(&source, &invoking, 0);
            let applied =
                ready.and_then(|r| run::apply(r, Some(&p.path), &mut child, &mut secrets, false));
            if let Err(e) = applied {
                // A missing vault fails every secret alike: say it once.
                if !ctx.paths.file.exists() {
                    return Err(e);
                }
                problems.push(format!("[{env}] {}", e.message()));
            }
        }
        let required: Vec<EnvKey> = run::required_keys(ctx, env, &[])?;
        for k in child.missing(&required) {
            problems.push(format!("[{env}] missing required key `{k}`"));
        }
        // `files` hands keys over as files: `run` would fail on a missing one.
        let mut as_file: Vec<EnvKey> = vec![];
        for k in p.sources(env).files {
            let k = EnvKey::parse(&k)?;
            if !required.contains(&k) && !as_file.contains(&k) {
                as_file.push(k);
            }
        }
        for k in child.missing(&as_file) {
            problems.push(format!(
                "[{env}] missing key `{k}`, which `files` hands over as a file"
            ));
        }
        if problems.len() == before {
            report.push(format!(
                "ok  {env}: {n} {}, {} required {}",
                plural(n, "source", "sources"),
                required.len(),
                plural(required.len(), "key", "keys")
            ));
        }
    }
    for line in &report {
        out!("{line}")?;
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    Err(Error::new(format!(
        "{} fails {n} {}: {}",
        p.path.display(),
        plural(n, "check", "checks"),
        problems.join("; ")
    ))
    .hint(format!(
        "create what is missing (`vault secret create{} NAME KEY=…`), or fix vault.toml; `vault run --explain` shows what is set",
        if envs.len() == 1 && envs[0] != store::DEFAULT_ENV {
            format!(" -e {}", envs[0])
        } else {
            String::new()
        }
    )))
}
