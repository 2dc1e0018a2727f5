//! `vault git setup` and `vault git show` (DESIGN v2 "Git"): a repository
//! told how to diff a vault file, and the text git diffs. (`vault git
//! merge`, the merge driver, lives in `merge.rs`.)
//!
//! `show` is git's textconv: git runs it on temporary copies of the file
//! at each commit, for `git diff`, `git log -p` and `git show`, with no
//! terminal to speak of. So it never prompts, never fails on what the file
//! holds (a line says what went wrong, exit 0, so one bad commit does not
//! stop `git log -p`), never writes `trusted.json` (`vault::peek`), and
//! prints nothing that depends on the temporary path.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::{
    context::Context,
    crypto, diffkey,
    error::{Error, Result},
    fsio,
    output::note,
    store, trust, unlock,
    vault::{self, Peeked, Signed},
};

use super::table::escape_controls;

/// What git is told (`git config --local`), in this order.
const CONFIG: [(&str, &str); 3] = [
    (
        "merge.vault.name",
        "vault: a three-way merge of a team vault, per secret and key",
    ),
    ("merge.vault.driver", "vault git merge %O %A %B %P"),
    ("diff.vault.textconv", "vault git show"),
];

/// How messages about the file name it: never the temporary path git
/// hands over, which differs from run to run and would show in diffs.
const SOURCE: &str = "the file";

pub(crate) fn setup(ctx: &Context) -> Result<()> {
    let paths = &ctx.paths;
    if !paths.named {
        return Err(Error::new(
            "`vault git setup` is for a team vault kept in a git repository, and no vault file was named",
        )
        .hint("pass --vault FILE (the vault file in the repository), or run it in a project whose vault.toml sets `vault`"));
    }
    let file = &paths.file;
    vault::require_exists(file)?;
    let real = std::fs::canonicalize(file).map_err(|e| Error::io("resolve", file, e))?;
    let dir = fsio::parent(&real);
    let top = toplevel(&dir, file)?;
    let rel = real.strip_prefix(&top).map_err(|_| {
        Error::new(format!(
            "{} is not inside the working tree of the repository at {}",
            file.display(),
            top.display()
        ))
        .hint("move the vault file into the repository, or name one that is there")
    })?;
    let rel = rel
        .to_str()
        .filter(|r| !r.chars().any(char::is_control))
        .ok_or_else(|| {
            Error::new(format!(
                "{} has a name that .gitattributes cannot hold (not UTF-8, or a control character)",
                file.display()
            ))
            .hint("rename the vault file")
        })?
        .to_string();

    let attributes = format!("{} merge=vault diff=vault", attribute_pattern(&rel));
    let gitattributes = top.join(".gitattributes");
    let lock = format!("{rel}.lock");
    let gitignore = top.join(".gitignore");
    let ignore = ignore_pattern(&lock);
    // Everything is read (and refused: a directory, a device) before
    // anything is written, so a failure leaves no half-done setup.
    let new_attributes = with_line(&gitattributes, &attributes)?;
    let new_ignore = if ignored_by_repository(&top, &lock)? {
        None
    } else {
        with_line(&gitignore, &ignore)?
    };
    let mut config = vec![];
    for (key, value) in CONFIG {
        let now = config_get(&top, key)?;
        if now.as_deref() != Some(value) {
            config.push((key, value, now));
        }
    }

    let mut changed = vec![];
    let files_changed = new_attributes.is_some() || new_ignore.is_some();
    if let Some(bytes) = new_attributes {
        fsio::write_shared(&gitattributes, &bytes)?;
        changed.push(format!(
            "Added `{attributes}` to {}",
            gitattributes.display()
        ));
    }
    if let Some(bytes) = new_ignore {
        fsio::write_shared(&gitignore, &bytes)?;
        changed.push(format!("Added `{ignore}` to {}", gitignore.display()));
    }
    for (key, value, now) in config {
        git(&top, &["config", "--local", key, value])?;
        changed.push(match now {
            Some(old) => format!(
                "Changed {key} from `{}` to `{value}` (git config --local)",
                escape_controls(&old)
            ),
            None => format!("Set {key} = {value} (git config --local)"),
        });
    }
    match first_on_path("vault") {
        None => crate::term::warn(
            "`vault` is not on PATH, and git runs the merge driver and textconv as `vault …`: put this program on PATH",
        ),
        Some(found) if !is_this_program(&found) => crate::term::warn(&format!(
            "`vault` on PATH is {}, not this program, and git runs the merge driver and textconv as `vault …`: put this one first on PATH",
            found.display()
        )),
        Some(_) => {}
    }
    if changed.is_empty() {
        note!(
            "Nothing to change: the repository at {} is set up for {rel}",
            top.display()
        );
        return Ok(());
    }
    for line in changed {
        note!("{line}");
    }
    if files_changed {
        note!(
            "hint: commit .gitattributes and .gitignore; each teammate runs `vault git setup --vault {rel}` once in their clone (git config is not shared)"
        );
    }
    Ok(())
}

/// The top of the working tree holding `dir`.
fn toplevel(dir: &Path, file: &Path) -> Result<PathBuf> {
    let out = run_git(dir, &["rev-parse", "--show-toplevel"])?;
    if !out.status.success() {
        return Err(
            Error::new(format!("{} is not in a git repository", file.display())).hint(
                "run `git init` in the folder that should hold it, or pass --vault with a vault file inside a repository",
            ),
        );
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| Error::new("git names a repository path that is not UTF-8"))?;
    let top = PathBuf::from(text.trim_end_matches(['\n', '\r']));
    std::fs::canonicalize(&top).map_err(|e| Error::io("resolve", &top, e))
}

/// Runs git in `dir`; only a git that cannot be started is an error here.
fn run_git(dir: &Path, args: &[&str]) -> Result<Output> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new("git is not installed (or not on PATH)")
                    .hint("install git (`apt-get install git`), then run this again")
            } else {
                Error::new(format!("cannot run git: {}", crate::error::describe_io(&e)))
            }
        })
}

/// Runs git in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) -> Result<Output> {
    let out = run_git(dir, args)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Err(Error::new(format!(
            "`git {}` failed: {}",
            args.join(" "),
            escape_controls(first)
        )));
    }
    Ok(out)
}

/// A key of the repository's own config, if set.
fn config_get(top: &Path, key: &str) -> Result<Option<String>> {
    let out = run_git(top, &["config", "--local", "--get", key])?;
    match out.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&out.stdout)
                .trim_end_matches('\n')
                .to_string(),
        )),
        // 1: not set.
        Some(1) => Ok(None),
        _ => Err(Error::new(format!(
            "`git config --local --get {key}` failed: {}",
            escape_controls(String::from_utf8_lossy(&out.stderr).trim())
        ))),
    }
}

/// Whether a `.gitignore` inside the repository (shared with the team, as
/// opposed to `.git/info/exclude` or a global excludes file) ignores `rel`.
fn ignored_by_repository(top: &Path, rel: &str) -> Result<bool> {
    let out = run_git(top, &["check-ignore", "-v", "--no-index", "--", rel])?;
    if !out.status.success() {
        return Ok(false);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `SOURCE:LINE:PATTERN<TAB>PATH`; a negated pattern (`!x`) un-ignores.
    Ok(text.lines().any(|l| {
        let mut f = l.splitn(3, ':');
        let (Some(source), Some(_), Some(rest)) = (f.next(), f.next(), f.next()) else {
            return false;
        };
        (source == ".gitignore" || source.ends_with("/.gitignore"))
            && !source.starts_with('/')
            && !source.starts_with(".git/")
            && !rest.starts_with('!')
    }))
}

/// What `path` holds with `line` appended, or `None` when a line of it
/// already is `line` (surrounding blanks aside). Writes nothing.
fn with_line(path: &Path, line: &str) -> Result<Option<Vec<u8>>> {
    let old = if path.exists() {
        fsio::read(path)?
    } else {
        vec![]
    };
    let text = String::from_utf8_lossy(&old);
    if text.lines().any(|l| l.trim() == line) {
        return Ok(None);
    }
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with(b"\n") {
        new.push(b'\n');
    }
    new.extend_from_slice(line.as_bytes());
    new.push(b'\n');
    Ok(Some(new))
}

/// `rel` as a pattern that matches exactly that path from the top of the
/// repository: anchored with `/`, glob characters escaped.
fn anchored(rel: &str) -> String {
    let mut out = String::from("/");
    for c in rel.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `.gitattributes` pattern for `rel`: C-quoted (as gitattributes
/// allows) when it holds a blank or a quote, which would end it.
fn attribute_pattern(rel: &str) -> String {
    let p = anchored(rel);
    if p.contains([' ', '\t', '"']) {
        let quoted = p.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{quoted}\"")
    } else {
        p
    }
}

/// The `.gitignore` pattern for `rel` (no quoting there; a trailing blank
/// is escaped, or git would drop it).
fn ignore_pattern(rel: &str) -> String {
    let mut p = anchored(rel);
    if p.ends_with(' ') {
        p.pop();
        p.push_str("\\ ");
    }
    p
}

/// The first executable named `name` on PATH, as a shell finds it.
fn first_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `found` is the running executable (another program may be
/// called `vault`: HashiCorp's is, and it often sits in /usr/bin).
fn is_this_program(found: &Path) -> bool {
    match (std::env::current_exe(), std::fs::canonicalize(found)) {
        (Ok(me), Ok(found)) => std::fs::canonicalize(me).is_ok_and(|me| me == found),
        _ => true,
    }
}

pub(crate) fn show(ctx: &Context, file: Option<&Path>, reveal: bool) -> Result<()> {
    let path = file.map_or_else(|| ctx.paths.file.clone(), Path::to_path_buf);
    // A file that is not there is an error; what it holds never is.
    if file.is_none() {
        crate::vault::require_exists(&path)?;
    }
    let mut f = fsio::open_regular(&path)?;
    let text = if f.metadata().is_ok_and(|m| m.len() == 0) {
        "empty file: not a vault\n".to_string()
    } else {
        match crypto::header_stanzas(&mut f, SOURCE) {
            Err(e) => format!("cannot read: {}\n", e.message()),
            Ok(stanzas) => {
                drop(f);
                render(ctx, &path, &stanzas, reveal)
            }
        }
    };
    crate::output::print(&text)
}

/// The whole text, from the header's stanzas and, with keys, the file.
fn render(
    ctx: &Context,
    path: &Path,
    stanzas: &[age_core::format::Stanza],
    reveal: bool,
) -> String {
    let cannot = |why: &str| format!("{}cannot decrypt: {why}\n", header_only(stanzas));
    let keys = match unlock::without_prompt(ctx) {
        Ok(Some(keys)) => keys,
        Ok(None) => {
            return cannot(
                "no identity without a prompt (--identity / VAULT_IDENTITY, VAULT_AGE_KEY, the agent of `vault unlock`, or a passphrase file)",
            );
        }
        Err(e) => return cannot(e.message()),
    };
    let peeked = match vault::peek(&ctx.paths.dir, path, SOURCE, &keys) {
        Ok(p) => p,
        Err(e) => return cannot(e.message()),
    };
    match full(&peeked, reveal) {
        Ok(text) => text,
        Err(e) => format!("{}damaged: {}\n", header_only(stanzas), e.message()),
    }
}

/// What the header says, for anyone: how many recipient stanzas of which
/// types, and the fingerprint the signature stanza names.
fn header_only(stanzas: &[age_core::format::Stanza]) -> String {
    let mut types: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut signer = None;
    for s in stanzas {
        // age adds a random "grease" stanza to every file, which no
        // identity uses: counted, it would change the text at every write.
        if s.tag.ends_with("-grease") {
            continue;
        }
        if s.tag == crate::sign::STANZA_TAG {
            signer = Some(s.args.get(1).map_or("?", String::as_str));
        } else {
            *types.entry(s.tag.as_str()).or_default() += 1;
        }
    }
    let n: usize = types.values().sum();
    let kinds = types
        .iter()
        .map(|(t, k)| format!("{k} {}", escape_controls(t)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "age-encrypted vault: {n} recipient stanza{} ({kinds})\n",
        if n == 1 { "" } else { "s" }
    );
    match signer {
        Some(fp) => {
            let _ = writeln!(out, "signed-by-fingerprint {}", escape_controls(fp));
        }
        None => out.push_str("unsigned\n"),
    }
    out
}

/// The text of a decrypted file: header lines, then one line per entry.
fn full(p: &Peeked, reveal: bool) -> Result<String> {
    store::validate(&p.conn, SOURCE)?;
    let mut out = String::new();
    match &p.meta {
        Some(m) => {
            let _ = writeln!(out, "vault-id {}", m.id_hex());
            let _ = writeln!(out, "generation {}", m.generation);
        }
        None => out.push_str("vault-id none (a version-1 file)\n"),
    }
    let _ = writeln!(out, "schema {}", p.schema);
    out.push_str(&signed_line(&p.signature, p.schema));
    let mut recipients = p.recipients.clone();
    recipients.sort();
    for r in &recipients {
        let _ = writeln!(out, "recipient {r}");
    }
    for (env, name, since) in store::rotation::marks(&p.conn)? {
        let _ = writeln!(out, "rotate {env}/{name} since {since}");
    }
    for (env, name, key) in store::view::conflict_names(&p.conn)? {
        match key {
            Some(k) => writeln!(out, "conflict {env}/{name} {k}"),
            None => writeln!(out, "conflict {env}/{name} (the whole secret)"),
        }
        .unwrap_or_default();
    }
    // A file older than schema 5 has no diff key (its migration in memory
    // just made a random one): names only, said once.
    let key = if p.schema >= 5 {
        Some(store::diff_key(&p.conn, SOURCE)?)
    } else {
        let _ = writeln!(
            out,
            "no fingerprints: schema v{} has no diff key (the next write adds one)",
            p.schema
        );
        None
    };
    out.push('\n');
    for e in store::view::every_entry(&p.conn)? {
        let _ = write!(out, "{}/{} {}", e.env, e.name, e.key);
        if let Some(k) = &key {
            let fp = diffkey::fingerprint(k, &e.env, &e.name, e.key.as_str(), e.value.expose());
            let _ = write!(out, "  {fp}");
        }
        if reveal {
            let quoted = serde_json::to_string(e.value.expose()).unwrap_or_default();
            let _ = write!(out, "  {}", escape_controls(&quoted));
        }
        out.push('\n');
    }
    Ok(out)
}

/// `signed-by age1… (you)`, or what is wrong with the signature; a
/// refusal that a read would make is said in so many words.
fn signed_line(s: &Signed, schema: i64) -> String {
    match s {
        Signed::No if schema >= 2 => {
            format!("unsigned: a read refuses it (a schema v{schema} file is always signed)\n")
        }
        Signed::No => "unsigned (a version-1 file)\n".to_string(),
        Signed::Bad => {
            "signature BAD: changed after it was signed, or forged; a read refuses it\n".to_string()
        }
        Signed::Unknown { fingerprint } => format!(
            "signed-by-fingerprint {} (a key that is no member: a read refuses it)\n",
            escape_controls(fingerprint)
        ),
        Signed::By { signer, standing } => {
            let who = match standing {
                trust::Standing::You => "you".to_string(),
                trust::Standing::Member => "a trusted member".to_string(),
                trust::Standing::Removed { generation } => {
                    format!("a member that generation {generation} removed: a read refuses it")
                }
                trust::Standing::FirstSight => {
                    "one of its recipients; this vault is not trusted here yet".to_string()
                }
                trust::Standing::Outsider => {
                    "not a member you trust: a read refuses it".to_string()
                }
            };
            format!("signed-by {signer} ({who})\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_anchor_escape_and_quote() {
        assert_eq!(attribute_pattern("secrets.vault"), "/secrets.vault");
        assert_eq!(attribute_pattern("ops/team.vault"), "/ops/team.vault");
        assert_eq!(attribute_pattern("a*b?[c].vault"), "/a\\*b\\?\\[c\\].vault");
        assert_eq!(
            attribute_pattern("my secrets.vault"),
            "\"/my secrets.vault\""
        );
        assert_eq!(attribute_pattern("a \"b\\c"), "\"/a \\\"b\\\\\\\\c\"");
        assert_eq!(
            ignore_pattern("my secrets.vault.lock"),
            "/my secrets.vault.lock"
        );
        assert_eq!(ignore_pattern("odd "), "/odd\\ ");
        assert_eq!(ignore_pattern("a*.lock"), "/a\\*.lock");
    }
}
