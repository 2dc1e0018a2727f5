//! `vault import`: a project's `.env` files become secrets, and
//! `vault import --from-json` brings many secrets in at once (the bulk path).
//! Reading the files is `dotenv`'s job; this decides which files and names.

use crate::output::{note, out};
use std::path::{Path, PathBuf};

use serde_json::json;
use zeroize::Zeroizing;

use super::{
    input,
    secret::{in_env, plural},
    table,
};
use crate::{
    cli::ImportArgs,
    context::Context,
    dotenv,
    error::{Error, Result},
    names::MASK,
    names::{self, EnvKey, SecretName, SecretValue},
    store, unlock, vault,
};

/// `.env.SUFFIX` files that describe a project's variables rather than hold
/// them, so `--all` leaves them out.
const NOT_SECRETS: &[&str] = &[
    "example", "sample", "template", "dist", "defaults", "keys", "vault",
];

/// One secret to be written.
struct Planned {
    source: String,
    name: SecretName,
    entries: Vec<(EnvKey, SecretValue)>,
}

pub(crate) fn run(ctx: &Context, args: ImportArgs) -> Result<()> {
    let plan = match &args.from_json {
        Some(path) => from_json(path)?,
        None => from_dotenv_files(&args)?,
    };
    if args.dry_run {
        return print_plan(&plan, args.json);
    }
    for p in &plan {
        names::warn_dangerous(p.entries.iter().map(|(k, _)| k.as_str()));
    }
    let force = args.force;
    let change = |db: &rusqlite::Transaction| {
        for p in &plan {
            store::create_secret(db, &ctx.scope.env, &p.name, &p.entries, force)?;
        }
        Ok(())
    };
    if args.from_json.is_some() {
        vault::write_bulk(&ctx.paths, unlock::for_write(ctx)?, change)?;
    } else {
        vault::write(&ctx.paths, unlock::for_write(ctx)?, change)?;
    }
    if plan.len() > 20 {
        note!("Imported {} secrets{}", plan.len(), in_env(&ctx.scope.env));
    } else {
        for p in &plan {
            let n = p.entries.len();
            note!(
                "Imported {} as `{}`{} ({n} {})",
                p.source,
                p.name,
                in_env(&ctx.scope.env),
                plural(n, "key", "keys")
            );
        }
    }
    Ok(())
}

fn from_dotenv_files(args: &ImportArgs) -> Result<Vec<Planned>> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("find", Path::new("."), e))?;
    let files = if args.all {
        let dir = match &args.path {
            Some(p) if p.is_dir() => p.clone(),
            Some(p) => {
                return Err(Error::new(format!(
                    "--all takes a folder, and {} is not one",
                    p.display()
                ))
                .hint("pass the folder that holds the .env files, or drop --all"));
            }
            None => cwd,
        };
        let files = env_files(&dir)?;
        if files.is_empty() {
            return Err(
                Error::new(format!("no .env files in {}", dir.display())).hint(
                    "`--all` imports .env and .env.SUFFIX files, except examples and templates",
                ),
            );
        }
        files
    } else {
        let start = match &args.path {
            Some(p) if p.is_dir() => p.clone(),
            Some(p) => return plan_one(p.clone(), args).map(|p| vec![p]),
            None => cwd,
        };
        vec![input::nearest_env(
            &start,
            "pass the file to import: `vault import path/to/.env`",
        )?]
    };
    let plan = files
        .into_iter()
        .map(|f| plan_one(f, args))
        .collect::<Result<Vec<_>>>()?;
    refuse_shared_names(&plan)?;
    Ok(plan)
}

/// Two files of one `--all` whose names come out the same (`.env.a b` and
/// `.env.a-b`, or a long folder name cut to 64 before the suffix): the
/// second would replace the first under `--force`, and without it the
/// "already exists" error names a secret that does not exist yet. So
/// neither is imported, and the message says which files clash.
fn refuse_shared_names(plan: &[Planned]) -> Result<()> {
    for (i, p) in plan.iter().enumerate() {
        if let Some(first) = plan[..i].iter().find(|q| q.name == p.name) {
            return Err(Error::new(format!(
                "{} and {} would both become the secret `{}`",
                first.source, p.source, p.name
            ))
            .hint("import them one at a time, each with its own --name"));
        }
    }
    Ok(())
}

fn plan_one(file: PathBuf, args: &ImportArgs) -> Result<Planned> {
    let stdin = file.as_os_str() == "-";
    let (file, name) = if stdin {
        let Some(name) = args.name.as_deref() else {
            return Err(Error::new("a dotenv file on stdin needs a name").hint("pass --name NAME"));
        };
        (file, SecretName::parse(name)?)
    } else {
        let file = std::path::absolute(&file).map_err(|e| Error::io("resolve", &file, e))?;
        let name = secret_name_for(&file, args.name.as_deref())?;
        (file, name)
    };
    let opts = dotenv::Options {
        expand: !args.no_expand,
        skip_invalid: args.skip_invalid,
    };
    // `-` is stdin, and is called so in every message.
    let source = if stdin {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let entries = input::from_dotenv(&file, &opts, true)?.into_vec();
    // A committed .env may point at stored keys (`vault://NAME/KEY`): the
    // pointer is imported as written; `run --dotenv` is what resolves it.
    for (key, value) in &entries {
        if crate::project::Reference::parse(value.expose()).is_some() {
            crate::term::warn(&format!(
                "{source}: `{key}` is a vault:// reference; imported as written, not resolved"
            ));
        }
    }
    if entries.is_empty() {
        return Err(Error::new(format!("{source} holds no variables"))
            .hint("a dotenv file has KEY=VALUE lines"));
    }
    Ok(Planned {
        source,
        name,
        entries,
    })
}

/// `.env` and `.env.SUFFIX` in `dir`, sorted, leaving out examples,
/// templates and `.envrc`.
fn env_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read folder", dir, e))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ok = match name.strip_prefix(".env") {
                Some("") => true,
                Some(rest) => rest
                    .strip_prefix('.')
                    .is_some_and(|suffix| !suffix.is_empty() && !NOT_SECRETS.contains(&suffix)),
                None => false,
            };
            ok && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// `--name`, else the folder's name; `.env.SUFFIX` adds `-SUFFIX`. Characters
/// outside the name pattern become `-`, and the result is cut to 64.
fn secret_name_for(file: &Path, given: Option<&str>) -> Result<SecretName> {
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = file_name.strip_prefix(".env.").filter(|s| !s.is_empty());
    let base = match given {
        Some(n) => n.to_string(),
        // The folder by its real path: `../.env` names the folder above,
        // not `..` (the file itself may be a symlink; its folder decides).
        None => file
            .parent()
            .map(|d| {
                let d = if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                };
                std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
            })
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    let name = match (given, suffix) {
        (Some(n), None) => return SecretName::parse(n),
        (_, Some(s)) => format!("{base}-{s}"),
        (None, None) => base,
    };
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    SecretName::parse(&cleaned).map_err(|_| {
        Error::new(format!("cannot make a secret name from {}", file.display()))
            .hint("choose one with --name NAME")
    })
}

/// `{"name": {"KEY": "value"}, …}`: every name, key and value is checked
/// before anything is written.
fn from_json(path: &Path) -> Result<Vec<Planned>> {
    let (bytes, source) = input::read_source(path)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(format!(
            "{source} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
        .hint(r#"expected {"name": {"KEY": "value"}, …}"#)
    })?;
    let serde_json::Value::Object(secrets) = value else {
        return Err(Error::new(format!("{source} is not a JSON object"))
            .hint(r#"expected {"name": {"KEY": "value"}, …}"#));
    };
    if secrets.is_empty() {
        // Likely the wrong file, or an export that found nothing: an
        // import of nothing would only rewrite the vault.
        return Err(Error::new(format!("{source} holds no secrets"))
            .hint(r#"expected {"name": {"KEY": "value"}, …}"#));
    }
    let mut plan = Vec::with_capacity(secrets.len());
    for (name, body) in secrets {
        let name = SecretName::parse(&name).map_err(|e| e.context(&source))?;
        let serde_json::Value::Object(map) = body else {
            return Err(
                Error::new(format!("{source}: `{name}` is not an object of keys"))
                    .hint(r#"expected {"name": {"KEY": "value"}, …}"#),
            );
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let key =
                EnvKey::parse(&k).map_err(|e| e.context(format_args!("{source}, `{name}`")))?;
            let serde_json::Value::String(s) = v else {
                return Err(Error::new(format!(
                    "{source}: the value of `{key}` in `{name}` is not a string"
                ))
                .hint("quote it: environment variables are strings"));
            };
            let value = SecretValue::new(&key, Zeroizing::new(s))
                .map_err(|e| e.context(format_args!("{source}, `{name}`")))?;
            entries.push((key, value));
        }
        if entries.is_empty() {
            return Err(Error::new(format!("{source}: `{name}` has no keys")));
        }
        plan.push(Planned {
            source: source.clone(),
            name,
            entries,
        });
    }
    Ok(plan)
}

fn print_plan(plan: &[Planned], as_json: bool) -> Result<()> {
    if as_json {
        let arr: Vec<_> = plan
            .iter()
            .map(|p| {
                let keys: serde_json::Map<_, _> = p
                    .entries
                    .iter()
                    .map(|(k, _)| (k.to_string(), json!(MASK)))
                    .collect();
                json!({"file": p.source, "name": p.name.as_str(), "keys": keys})
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
        return Ok(());
    }
    for p in plan {
        let n = p.entries.len();
        out!(
            "{} → `{}` ({n} {})",
            table::escape_controls(&p.source),
            p.name,
            plural(n, "key", "keys")
        )?;
        let rows: Vec<Vec<String>> = p
            .entries
            .iter()
            .map(|(k, _)| vec![format!("  {k}"), MASK.to_string()])
            .collect();
        crate::output::print(&table::render(&["  KEY", "VALUE"], &rows))?;
    }
    note!("Dry run: nothing was imported.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        let n = |p: &str| secret_name_for(Path::new(p), None).map(|n| n.to_string());
        assert_eq!(n("/home/u/myapp/.env").unwrap(), "myapp");
        assert_eq!(
            n("/home/u/myapp/.env.production").unwrap(),
            "myapp-production"
        );
        assert_eq!(n("/home/u/my app!/.env").unwrap(), "my-app-");
        assert_eq!(n(&format!("/x/{}/.env", "a".repeat(80))).unwrap().len(), 64);
        assert!(n("/home/u/.hidden/.env").is_err());
        let given = |p: &str, g: &str| secret_name_for(Path::new(p), Some(g)).unwrap().to_string();
        assert_eq!(given("/a/.env", "web"), "web");
        assert_eq!(given("/a/.env.staging", "web"), "web-staging");
    }
}
