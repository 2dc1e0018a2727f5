//! Projects: a committed `vault.toml` that names the secrets a project's
//! commands get (DESIGN v2 "Projects"), and the allow list that keeps a
//! cloned repository from pulling your secrets into its scripts.
//!
//! This module finds the file (the upward search), parses it, keeps
//! `allowed.json`, and decides what a command takes from the project
//! (`enter`): its vault, its environment, its sources. What the sources do
//! (`run`, `export`, `check`) lives with those commands.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    fsio,
    names::{is_env_key, is_secret_name},
};

/// The project file's name.
pub(crate) const FILE_NAME: &str = "vault.toml";

/// What a command takes from the project it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Nothing: the project is not even looked for (`allow`, `completions`).
    Nothing,
    /// Its `vault` and `env`, unless `--vault`/`-e` are given (secret
    /// commands, `import`, `init`, …). The file must be allowed only when
    /// one of them applies.
    Settings,
    /// Its sources too (`run`, `shell`, `export`, `check`): the file must
    /// be allowed.
    Sources,
}

/// The environment and project a command works in.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// `-e`/`VAULT_ENV`, else the project's `env`, else `main`.
    pub(crate) env: String,
    /// The project, when the command uses it (allowed by then).
    pub(crate) project: Option<Project>,
    /// The project's vault file, when it applies (no `--vault` given).
    pub(crate) vault: Option<PathBuf>,
    /// `-e`/`VAULT_ENV` as given (validated), for `project init`.
    pub(crate) env_flag: Option<String>,
    /// `--vault`/`VAULT_FILE` as given, for `project init`.
    pub(crate) vault_flag: Option<PathBuf>,
}

/// Validates an environment name (the secret-name pattern).
pub(crate) fn env_name(env: &str) -> Result<String> {
    if is_secret_name(env) {
        Ok(env.to_string())
    } else {
        Err(Error::new(format!(
            "`{}` is not a valid environment name",
            printable(env)
        ))
        .hint(
            "an environment name is like a secret name: 1-64 characters of letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        ))
    }
}

/// Decides the scope of a command: finds the project file upward from
/// `cwd` (unless `--no-project`), checks that it is allowed where it
/// would be used, and picks the environment and vault.
pub(crate) fn enter(
    usage: Use,
    env_flag: Option<&str>,
    vault_flag: Option<&Path>,
    no_project: bool,
    vault_dir: &Path,
    cwd: &Path,
) -> Result<Scope> {
    let flag = env_flag.map(env_name).transpose()?;
    let mut scope = Scope {
        env: flag
            .clone()
            .unwrap_or_else(|| crate::store::DEFAULT_ENV.to_string()),
        project: None,
        vault: None,
        env_flag: flag.clone(),
        vault_flag: vault_flag.map(Path::to_path_buf),
    };
    if no_project || usage == Use::Nothing {
        return Ok(scope);
    }
    let Some(path) = find(cwd) else {
        return Ok(scope);
    };
    let project = Project::load(&path)?;
    let vault = project.vault.clone().filter(|_| vault_flag.is_none());
    let env = project.env.clone().filter(|_| flag.is_none());
    if usage == Use::Settings && vault.is_none() && env.is_none() {
        return Ok(scope);
    }
    if !Allowed::load(vault_dir)?.is_allowed(&project) {
        return Err(not_allowed(&project));
    }
    if let Some(env) = env {
        scope.env = env;
    }
    scope.vault = vault;
    scope.project = Some(project);
    Ok(scope)
}

/// The project file for a command started in `cwd`: the nearest
/// `vault.toml` by the upward search, if any.
pub(crate) fn find(cwd: &Path) -> Option<PathBuf> {
    find_upward(cwd, FILE_NAME).ok()
}

/// The one upward search (`fsio::find_upward`, DESIGN v2 "Hardening":
/// it stops at `.git`, `$HOME`, `/` and before other users' or shared
/// folders, and ignores a file another user owns).
pub(crate) fn find_upward(start: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    fsio::find_upward(start, name, &mut |w| crate::term::warn(w))
}

/// The keys a project file may set at the top and in an `[env.NAME]` table.
/// A key missing from a table falls back to the top level's.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    secrets: Option<Vec<String>>,
    dotenv: Option<Vec<String>>,
    require: Option<Vec<String>>,
    files: Option<Vec<String>>,
}

/// The top level: the sources plus `vault` and `env`. serde's
/// `deny_unknown_fields` does not work through `flatten`, so the source
/// keys are spelled out again here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    vault: Option<String>,
    env: Option<toml::Value>,
    secrets: Option<Vec<String>>,
    dotenv: Option<Vec<String>>,
    require: Option<Vec<String>>,
    files: Option<Vec<String>>,
}

/// The tables after the top level: only `[env.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    #[serde(default)]
    env: BTreeMap<String, RawSources>,
}

/// What a project gives a command in one environment, in the order `run`
/// applies it: secrets, then dotenv files; then the checks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sources {
    /// Secret references as written: `NAME` or `ENV/NAME`.
    pub(crate) secrets: Vec<String>,
    /// Absolute paths (relative ones are relative to the project file).
    pub(crate) dotenv: Vec<PathBuf>,
    pub(crate) require: Vec<String>,
    pub(crate) files: Vec<String>,
}

/// A parsed `vault.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The file's absolute path, as found.
    pub(crate) path: PathBuf,
    /// Its directory: relative paths inside it start here.
    pub(crate) dir: PathBuf,
    /// The vault file it names, made absolute.
    pub(crate) vault: Option<PathBuf>,
    /// Its default environment.
    pub(crate) env: Option<String>,
    top: RawSources,
    envs: BTreeMap<String, RawSources>,
    digest: [u8; 32],
}

impl Project {
    /// Reads and parses the project file at `path` (absolute).
    pub(crate) fn load(path: &Path) -> Result<Project> {
        let bytes = fsio::read(path)?;
        Project::parse(path, &bytes)
    }

    /// Parses `bytes` as the project file at `path`.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Project> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = line_of(bytes, e.valid_up_to());
            bad(path, Some(line), "is not UTF-8 text".into())
        })?;
        // DESIGN's example sets `env = "dev"` (the default environment) and
        // has `[env.prod]` tables, which one TOML document cannot hold (the
        // key `env` would be both a string and a table). So the part before
        // the first table header is read as one document and the tables as
        // another: the top-level `env` and the `env` tables never meet.
        let (head, tail, tail_line) = split_at_first_table(text);
        let raw: RawProject = parse_toml(path, head, 0)?;
        let tables: RawTables = parse_toml(path, tail, tail_line)?;
        let mut envs = tables.env;
        let default_env = match raw.env {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            // `env = { prod = { … } }` written inline
            Some(v @ toml::Value::Table(_)) => {
                let inline: BTreeMap<String, RawSources> = v
                    .try_into()
                    .map_err(|e: toml::de::Error| bad_key(path, text, None, &e))?;
                envs.extend(inline);
                None
            }
            Some(_) => {
                return Err(bad(
                    path,
                    find_key_line(text, "env"),
                    "`env` must be a string (the default environment) or `[env.NAME]` tables"
                        .into(),
                ));
            }
        };
        if let Some(name) = envs.keys().find(|n| !is_secret_name(n)) {
            return Err(bad(
                path,
                find_line(text, &format!("[env.{name}]"))
                    .or_else(|| find_line(text, &format!("[env.\"{name}\"]")))
                    .or_else(|| find_line(text, &format!("[env.'{name}']"))),
                format!("`{}` is not a valid environment name", printable(name)),
            ));
        }
        if let Some(env) = &default_env
            && !is_secret_name(env)
        {
            return Err(bad(
                path,
                find_line(text, "env"),
                format!("`{}` is not a valid environment name", printable(env)),
            ));
        }
        let dir = fsio::parent(path);
        let vault = raw.vault.as_deref().map(|v| dir.join(v));
        let project = Project {
            path: path.to_path_buf(),
            dir,
            vault,
            env: default_env,
            top: RawSources {
                secrets: raw.secrets,
                dotenv: raw.dotenv,
                require: raw.require,
                files: raw.files,
            },
            envs,
            digest,
        };
        project.validate(text)?;
        Ok(project)
    }

    /// Checks every name in every table, so a typo fails at once and names
    /// its line rather than surfacing as "no secret named …" later.
    fn validate(&self, text: &str) -> Result<()> {
        let tables = std::iter::once((None, &self.top))
            .chain(self.envs.iter().map(|(n, s)| (Some(n.as_str()), s)));
        for (env, s) in tables {
            for r in s.secrets.iter().flatten() {
                if !is_secret_ref(r) {
                    return Err(self.bad_value(
                        text,
                        env,
                        "secrets",
                        r,
                        "a secret name or ENV/NAME",
                    ));
                }
            }
            for (field, keys) in [("require", &s.require), ("files", &s.files)] {
                for k in keys.iter().flatten() {
                    if !is_env_key(k) {
                        return Err(self.bad_value(text, env, field, k, "a variable name"));
                    }
                }
            }
            for d in s.dotenv.iter().flatten() {
                if d.is_empty() {
                    return Err(self.bad_value(text, env, "dotenv", d, "a file path"));
                }
            }
        }
        Ok(())
    }

    fn bad_value(&self, text: &str, env: Option<&str>, field: &str, v: &str, want: &str) -> Error {
        let line = find_line(text, &format!("\"{v}\"")).or_else(|| find_line(text, field));
        let table = env.map(|e| format!(" in [env.{e}]")).unwrap_or_default();
        bad(
            &self.path,
            line,
            format!("`{}` in `{field}`{table} is not {want}", printable(v)),
        )
    }

    /// The environments the file has tables for.
    pub(crate) fn env_names(&self) -> impl Iterator<Item = &str> {
        self.envs.keys().map(String::as_str)
    }

    /// The sources for environment `env`: an `[env.NAME]` table replaces the
    /// keys it sets; the others come from the top level.
    pub(crate) fn sources(&self, env: &str) -> Sources {
        let table = self.envs.get(env);
        let pick = |f: fn(&RawSources) -> &Option<Vec<String>>| -> Vec<String> {
            table
                .and_then(|t| f(t).clone())
                .or_else(|| f(&self.top).clone())
                .unwrap_or_default()
        };
        Sources {
            secrets: pick(|s| &s.secrets),
            dotenv: pick(|s| &s.dotenv)
                .into_iter()
                .map(|d| self.dir.join(d))
                .collect(),
            require: pick(|s| &s.require),
            files: pick(|s| &s.files),
        }
    }

    /// SHA-256 of the file's bytes, as `allowed.json` records it.
    ///
    /// A dotenv file the project names (in any environment) that holds a
    /// `vault://` reference is part of what is allowed: it decides which of
    /// your secrets the project's commands get, so a `git pull` that
    /// changes it must not go unnoticed. Such files are hashed too; a file
    /// of plain values is not, so editing it needs no new `vault allow`.
    pub(crate) fn digest_hex(&self) -> String {
        use std::os::unix::ffi::OsStrExt;
        let mut files: Vec<PathBuf> = std::iter::once(&self.top)
            .chain(self.envs.values())
            .flat_map(|s| s.dotenv.iter().flatten())
            .map(|d| self.dir.join(d))
            .collect();
        files.sort();
        files.dedup();
        let covered: Vec<(PathBuf, [u8; 32])> = files
            .into_iter()
            .filter_map(|f| {
                let bytes = fsio::read(&f).ok()?;
                bytes
                    .windows(8)
                    .any(|w| w == b"vault://")
                    .then(|| (f, Sha256::digest(&bytes).into()))
            })
            .collect();
        if covered.is_empty() {
            return hex(&self.digest);
        }
        let mut h = Sha256::new();
        h.update(self.digest);
        for (path, digest) in &covered {
            h.update(path.as_os_str().as_bytes());
            h.update([0]);
            h.update(digest);
        }
        hex(&h.finalize())
    }
}

/// A `vault://NAME/KEY` or `vault://ENV/NAME/KEY` reference: a dotenv
/// value that points at a stored key instead of holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) env: Option<String>,
    pub(crate) name: String,
    pub(crate) key: String,
}

impl Reference {
    /// The reference a value *is* (the whole value, nothing around it), or
    /// `None` for an ordinary value. A value that starts with `vault://`
    /// but is malformed is an error, not a literal: a typo must not end up
    /// as a password.
    pub(crate) fn parse(value: &str) -> Option<std::result::Result<Reference, ()>> {
        let rest = value.strip_prefix("vault://")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let r = match parts[..] {
            [name, key] => Reference {
                env: None,
                name: name.into(),
                key: key.into(),
            },
            [env, name, key] => Reference {
                env: Some(env.into()),
                name: name.into(),
                key: key.into(),
            },
            _ => return Some(Err(())),
        };
        let ok = is_secret_name(&r.name)
            && is_env_key(&r.key)
            && r.env.as_deref().is_none_or(is_secret_name);
        Some(if ok { Ok(r) } else { Err(()) })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.env {
            Some(env) => write!(f, "vault://{env}/{}/{}", self.name, self.key),
            None => write!(f, "vault://{}/{}", self.name, self.key),
        }
    }
}

/// `NAME` or `ENV/NAME`.
pub(crate) fn is_secret_ref(r: &str) -> bool {
    match r.split_once('/') {
        Some((env, name)) => is_secret_name(env) && is_secret_name(name),
        None => is_secret_name(r),
    }
}

/// Splits `text` before its first table header (a line starting with `[`
/// at which the text before it is a complete TOML document), returning
/// the head, the tail and the tail's first line number less one.
fn split_at_first_table(text: &str) -> (&str, &str, usize) {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('[') && text[..offset].parse::<toml::Table>().is_ok() {
            return (&text[..offset], &text[offset..], i);
        }
        offset += line.len();
    }
    (text, "", 0)
}

/// Parses one TOML document that starts on line `first_line + 1` of the file.
fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    first_line: usize,
) -> Result<T> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let start = e.span().map(|s| s.start);
        let line = start.map(|s| first_line + line_of(text.as_bytes(), s));
        let mut what = first_line_of(e.message());
        // The key whose value it is, from the line the value starts on.
        let key = start
            .and_then(|s| text[..s.min(text.len())].rsplit('\n').next())
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            });
        if let Some(key) = key
            && what.starts_with("a ")
        {
            what = format!("`{key}`: {what}");
        }
        bad(path, line, what)
    })
}

fn bad_key(path: &Path, text: &str, table_line: Option<usize>, e: &toml::de::Error) -> Error {
    let msg = first_line_of(e.message());
    // serde names the offending key in backticks: find its line.
    let line = msg
        .split('`')
        .nth(1)
        .and_then(|key| find_key_line(text, key))
        .or(table_line);
    bad(path, line, msg)
}

fn bad(path: &Path, line: Option<usize>, what: String) -> Error {
    let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
    Error::new(format!("{}{at}: {what}", path.display())).hint(
        "vault.toml may set `vault`, `env`, `secrets`, `dotenv`, `require`, `files` and `[env.NAME]` tables of the last four (see `vault help project`)",
    )
}

/// serde's message, first line, reworded for a person and never holding
/// the text of a value: `invalid type: string "sk_live_…", expected a
/// sequence` is a pasted value where a list of names belongs, so it reads
/// `a string where a list (["…"]) belongs`; Rust type names are not shown.
fn first_line_of(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    // Only the tables' document expects nothing but `env`.
    if let Some(name) = line
        .strip_prefix("unknown field `")
        .and_then(|r| r.strip_suffix("`, expected `env`"))
    {
        return format!(
            "unknown table `[{name}]`: only `[env.NAME]` tables may follow the settings"
        );
    }
    let Some(rest) = line
        .strip_prefix("invalid type: ")
        .or_else(|| line.strip_prefix("invalid value: "))
    else {
        return line.to_string();
    };
    let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
    let found = match found.split(' ').next().unwrap_or("") {
        "string" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "true or false",
        "sequence" => "a list",
        "map" => "a table",
        _ => "a value of another kind",
    };
    let expected = match expected {
        "a sequence" => "a list ([\"…\"])",
        "a string" => "a string (\"…\")",
        e if e.starts_with("struct ") || e.starts_with("map") => "a table",
        "" => return format!("{found} is not allowed here"),
        e => e,
    };
    format!("{found} where {expected} belongs")
}

/// 1-based line number of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.split('#').next().unwrap_or("").contains(needle))
        .map(|i| i + 1)
}

/// The line on which `key` is assigned (`key =` at the start of a line).
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn printable(s: &str) -> String {
    crate::names::printable(s)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `VAULT_DIR/allowed.json`: the project files you allowed, by absolute
/// path, with the SHA-256 of the bytes you allowed. Public data only.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Allowed {
    #[serde(default)]
    allowed: BTreeMap<PathBuf, String>,
}

impl Allowed {
    fn file(vault_dir: &Path) -> PathBuf {
        vault_dir.join("allowed.json")
    }

    /// The allow list; a missing file is an empty list, a damaged one is an
    /// error (silently forgetting would re-prompt; silently trusting would
    /// be worse).
    pub(crate) fn load(vault_dir: &Path) -> Result<Allowed> {
        let file = Allowed::file(vault_dir);
        match std::fs::metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Allowed::default()),
            _ => {}
        }
        let bytes = fsio::read(&file)?;
        serde_json::from_slice(&bytes).map_err(|_| {
            Error::new(format!("{} is damaged", file.display()))
                .hint("remove it and `vault allow` your projects again")
        })
    }

    pub(crate) fn is_allowed(&self, project: &Project) -> bool {
        self.allowed
            .get(&project.path)
            .is_some_and(|d| *d == project.digest_hex())
    }

    /// Records or forgets `path` (with `digest`) in the list, atomically and
    /// under a short lock of its own.
    pub(crate) fn update(vault_dir: &Path, path: &Path, digest: Option<String>) -> Result<bool> {
        fsio::ensure_dir(vault_dir)?;
        let _lock = fsio::WriteLock::acquire(&vault_dir.join("allowed.lock"))?;
        let mut list = Allowed::load(vault_dir)?;
        let changed = match digest {
            Some(d) => list.allowed.insert(path.to_path_buf(), d.clone()) != Some(d),
            None => list.allowed.remove(path).is_some(),
        };
        if changed {
            let json = serde_json::to_vec_pretty(&list).map_err(|e| Error::new(e.to_string()))?;
            fsio::atomic_write(&Allowed::file(vault_dir), |f| {
                use std::io::Write;
                f.write_all(&json)?;
                f.write_all(b"\n")
            })?;
        }
        Ok(changed)
    }
}

/// The error every command that would use a project not (or no longer)
/// allowed fails with.
pub(crate) fn not_allowed(project: &Project) -> Error {
    Error::new(format!(
        "vault.toml at {} is not allowed (new or changed)",
        project.path.display()
    ))
    .hint("review it (and the dotenv files it names that hold vault:// references), then run `vault allow` (or pass --no-project to ignore it)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project> {
        Project::parse(Path::new("/p/vault.toml"), text.as_bytes())
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().message().to_string()
    }

    /// A value pasted where names belong is never echoed, and no Rust
    /// type name reaches the user.
    #[test]
    fn type_errors_name_the_key_and_never_the_value() {
        let dir = std::path::Path::new("/p/vault.toml");
        for (text, want) in [
            (
                "secrets = \"sk_live_hunter2\"\n",
                "line 1: `secrets`: a string where a list ([\"…\"]) belongs",
            ),
            (
                "# x\nvault = 3\n",
                "line 2: `vault`: a number where a string",
            ),
            (
                "[env]\nprod = 1\n",
                "line 2: `prod`: a number where a table belongs",
            ),
            (
                "[other]\nx = 1\n",
                "line 1: unknown table `[other]`: only `[env.NAME]` tables",
            ),
            (
                "[env.prod]\nrequire = \"hunter2\"\n",
                "line 2: `require`: a string where a list",
            ),
            (
                "[env.\"bad/x\"]\n",
                "line 1: `bad/x` is not a valid environment name",
            ),
        ] {
            let e = Project::parse(dir, text.as_bytes())
                .map(|_| ())
                .unwrap_err();
            let m = e.message();
            assert!(m.contains(want), "{text:?}: {m}");
            assert!(
                !m.contains("hunter2") && !m.contains("Raw"),
                "{text:?}: {m}"
            );
        }
    }

    #[test]
    fn full_file() {
        let p = parse(
            r#"
vault = "secrets.vault"
env = "dev"
secrets = ["db", "stripe"]
dotenv = [".env.local"]
require = ["DATABASE_URL"]
files = ["GOOGLE_APPLICATION_CREDENTIALS"]
[env.prod]
secrets = ["db", "stripe", "prod/sentry"]
"#,
        )
        .unwrap();
        assert_eq!(p.vault.as_deref(), Some(Path::new("/p/secrets.vault")));
        assert_eq!(p.env.as_deref(), Some("dev"));
        let dev = p.sources("dev");
        assert_eq!(dev.secrets, ["db", "stripe"]);
        assert_eq!(dev.dotenv, [PathBuf::from("/p/.env.local")]);
        let prod = p.sources("prod");
        assert_eq!(prod.secrets, ["db", "stripe", "prod/sentry"]);
        // keys the table does not set come from the top level
        assert_eq!(prod.require, ["DATABASE_URL"]);
        assert_eq!(prod.files, ["GOOGLE_APPLICATION_CREDENTIALS"]);
        assert_eq!(p.env_names().collect::<Vec<_>>(), ["prod"]);
    }

    #[test]
    fn design_example_parses() {
        let p = parse(
            r#"vault = "secrets.vault"        # optional: a vault file relative to this file
env = "dev"                    # optional: the default environment
secrets = ["db", "stripe"]     # applied first, in order (like -s)
dotenv = [".env.local"]        # then these, relative to this file
require = ["DATABASE_URL"]     # checked like --require
files = ["GOOGLE_APPLICATION_CREDENTIALS"]   # like --as-file
[env.prod]                     # per environment: replaces the keys it sets
secrets = ["db", "stripe", "sentry"]
"#,
        )
        .unwrap();
        assert_eq!(p.env.as_deref(), Some("dev"));
        assert_eq!(p.sources("prod").secrets, ["db", "stripe", "sentry"]);
        assert_eq!(p.sources("dev").secrets, ["db", "stripe"]);
        assert_eq!(p.sources("prod").dotenv, [PathBuf::from("/p/.env.local")]);
    }

    #[test]
    fn unknown_tables_are_named() {
        let e = err("secrets = []\n[envs.prod]\nsecrets = []\n");
        assert!(
            e.starts_with("/p/vault.toml, line 2: unknown table `[envs]`"),
            "{e}"
        );
        let e = err("[env.prod]\nsecrets = [\"a\"]\n[env.ci]\nbogus = true\n");
        assert!(
            e.starts_with("/p/vault.toml, line 4: unknown field `bogus`"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_is_a_project_with_nothing() {
        let p = parse("# nothing yet\n").unwrap();
        assert_eq!(p.sources("main"), Sources::default());
        assert!(p.vault.is_none() && p.env.is_none());
    }

    #[test]
    fn an_env_table_can_clear_a_list() {
        let p = parse("require = [\"A\"]\n[env.ci]\nrequire = []\n").unwrap();
        assert!(p.sources("ci").require.is_empty());
        assert_eq!(p.sources("main").require, ["A"]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("secrets = [\"db\"]\nsecretz = [\"x\"]\n");
        assert!(
            e.starts_with("/p/vault.toml, line 2: unknown field `secretz`"),
            "{e}"
        );
        let e = err("env = \"dev\"\nsecrets = \"db\"\n");
        assert!(e.starts_with("/p/vault.toml, line 2: "), "{e}");
        let e = err("secrets = [\"db\"\n");
        assert!(
            e.starts_with("/p/vault.toml, line 1: ") || e.starts_with("/p/vault.toml, line 2: "),
            "{e}"
        );
        let e = err("[env.prod]\nsecrets = [\"ok\"]\nbogus = 1\n");
        assert!(
            e.starts_with("/p/vault.toml, line 3: unknown field `bogus`"),
            "{e}"
        );
        let e = err("secrets = [\"db\", \"no good\"]\n");
        assert_eq!(
            e,
            "/p/vault.toml, line 1: `no good` in `secrets` is not a secret name or ENV/NAME"
        );
        let e = err("\n\nrequire = [\"1BAD\"]\n");
        assert_eq!(
            e,
            "/p/vault.toml, line 3: `1BAD` in `require` is not a variable name"
        );
        let e = err("env = \"bad env\"\n");
        assert!(
            e.contains("line 1") && e.contains("environment name"),
            "{e}"
        );
        let e = err("env = 3\n");
        assert!(e.contains("line 1") && e.contains("`env` must be"), "{e}");
        let e = err("[env.prod]\nsecrets = [\"x/y/z\"]\n");
        assert!(e.contains("line 2") && e.contains("[env.prod]"), "{e}");
    }

    #[test]
    fn references() {
        let r = Reference::parse("vault://db/PGPASSWORD").unwrap().unwrap();
        assert_eq!(
            (r.env, r.name.as_str(), r.key.as_str()),
            (None, "db", "PGPASSWORD")
        );
        let r = Reference::parse("vault://prod/db/PGPASSWORD")
            .unwrap()
            .unwrap();
        assert_eq!(r.env.as_deref(), Some("prod"));
        assert_eq!(r.to_string(), "vault://prod/db/PGPASSWORD");
        for bad in [
            "vault://",
            "vault://db",
            "vault://db/",
            "vault://a/b/c/d",
            "vault://db/1KEY",
            "vault://$x/K",
        ] {
            assert_eq!(Reference::parse(bad), Some(Err(())), "{bad}");
        }
        for plain in ["", "db/KEY", "https://vault/x/y", " vault://db/K"] {
            assert_eq!(Reference::parse(plain), None, "{plain}");
        }
    }

    #[test]
    fn secret_refs() {
        assert!(is_secret_ref("db"));
        assert!(is_secret_ref("prod/db"));
        assert!(!is_secret_ref("prod/"));
        assert!(!is_secret_ref("/db"));
        assert!(!is_secret_ref("a/b/c"));
        assert!(!is_secret_ref("$(x)"));
    }

    #[test]
    fn allow_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = parse("secrets = [\"db\"]\n").unwrap();
        assert!(!Allowed::load(dir.path()).unwrap().is_allowed(&p));
        assert!(Allowed::update(dir.path(), &p.path, Some(p.digest_hex())).unwrap());
        assert!(!Allowed::update(dir.path(), &p.path, Some(p.digest_hex())).unwrap());
        assert!(Allowed::load(dir.path()).unwrap().is_allowed(&p));
        // a changed file is not allowed any more
        let changed = parse("secrets = [\"db\", \"aws-prod\"]\n").unwrap();
        assert!(!Allowed::load(dir.path()).unwrap().is_allowed(&changed));
        assert!(Allowed::update(dir.path(), &p.path, None).unwrap());
        assert!(!Allowed::load(dir.path()).unwrap().is_allowed(&p));
        crate::fsio::write_fixture(&dir.path().join("allowed.json"), "{garbage");
        assert!(Allowed::load(dir.path()).is_err());
    }
}
