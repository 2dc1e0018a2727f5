//! The bad-input catalogue: malformed invocations and files, one snapshot
//! case each, kept as data in `tests/cmd/<group>.toml` (tests/cmd/README.md
//! has the format). A case pins its exact stderr, its stdout (empty unless
//! it says otherwise) and its exit code: 1 (vault) or 2 (clap usage), or
//! 126/127 for a command `run` cannot start. Whatever the snapshot says,
//! every case must also never panic, never print a value (the inputs carry
//! SENTINEL), keep the one-line `vault: error:` + at most one `hint:` shape,
//! finish within 10 s, and leave vault.age and identity.age byte for byte as
//! they were, with no temp file beside them and no new file anywhere in the
//! user's world.
//!
//! After a deliberate change of wording, rewrite the pinned output with
//!
//!     SNAPSHOTS=overwrite cargo test --test integration badinput
//!
//! and review the diff of tests/cmd/. Exit codes are a contract and are
//! never overwritten: change them by hand.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    fs,
    os::unix::{ffi::OsStringExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use toml_edit::{DocumentMut, Item, Table};

use crate::support::*;

/// The value of the secret `db` in every world, and a marker in the inputs:
/// it must never appear in any output.
const SENTINEL: &str = "SENTINEL-8d41c7";

/// One `#[test]` per group file; `every_group_file_has_a_test` keeps the
/// list and tests/cmd/ in step.
macro_rules! groups {
    ($($group:ident),* $(,)?) => {
        const GROUPS: &[&str] = &[$(stringify!($group)),*];
        $(
            #[test]
            fn $group() {
                run_group(stringify!($group));
            }
        )*
    };
}

groups!(
    names,
    encoding,
    json,
    size,
    binary,
    directories,
    missing,
    dotenv,
    passphrase,
    run,
    usage,
    fifo,
    projects,
    git,
    conflicts,
    empty,
);

fn cmd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd")
}

#[test]
fn every_group_file_has_a_test() {
    let mut files: Vec<String> = fs::read_dir(cmd_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            name.strip_suffix(".toml").map(String::from)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = GROUPS.iter().map(|g| g.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "tests/cmd/*.toml and the groups! list differ"
    );
}

/// Whose world a case runs in (the `setup` field).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Setup {
    /// `identity` (the default): unlocks with an identity file
    /// (`VAULT_IDENTITY`); no identity.age.
    Identity,
    /// `passphrase`: unlocks identity.age with a passphrase file
    /// (`VAULT_PASSPHRASE_FILE`).
    Passphrase,
}

/// A user with a vault holding the secret `db` (`A` = SENTINEL) and the
/// shared fixtures every group may name (tests/cmd/README.md lists them).
fn world(setup: Setup) -> Env {
    let env = match setup {
        Setup::Identity => Env::new().init(),
        Setup::Passphrase => Env::with_passphrase("catalogue").init(),
    };
    env.vault(["secret", "create", "db", "A"])
        .stdin(SENTINEL)
        .run()
        .success();
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let put = |rel: &str, mode: u32| {
        let p = env.path(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    env.write("binary.bin", &binary);
    put("binary.bin", 0o644);
    env.write("binary-private.bin", &binary);
    put("binary-private.bin", 0o600);
    fs::create_dir_all(env.path("a-dir")).unwrap();
    put("a-dir", 0o700);
    for (fifo, mode) in [("fifo", 0o644), ("fifo-private", 0o600)] {
        let st = Command::new("mkfifo").arg(env.path(fifo)).status().unwrap();
        assert!(st.success(), "mkfifo");
        put(fifo, mode);
    }
    env
}

/// A file a case writes under [TMP] before it runs (and removes after).
struct CaseFile {
    rel: String,
    content: Vec<u8>,
    mode: u32,
}

struct Case {
    name: String,
    setup: Setup,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    files: Vec<CaseFile>,
    status: i32,
    stdout: String,
    stderr: String,
}

const FIELDS: &[&str] = &[
    "name", "setup", "args", "env", "stdin", "files", "status", "stdout", "stderr",
];

fn str_field(t: &Table, key: &str, what: &str) -> Option<String> {
    t.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{what}: `{key}` must be a string"))
            .to_string()
    })
}

fn parse_case(t: &Table, group: &str, at: usize) -> Case {
    let what = format!("tests/cmd/{group}.toml, case {}", at + 1);
    for (key, _) in t.iter() {
        assert!(FIELDS.contains(&key), "{what}: unknown field `{key}`");
    }
    let name = str_field(t, "name", &what).unwrap_or_else(|| panic!("{what}: no `name`"));
    let what = format!("tests/cmd/{group}.toml, case {name:?}");
    let setup = match str_field(t, "setup", &what).as_deref() {
        None | Some("identity") => Setup::Identity,
        Some("passphrase") => Setup::Passphrase,
        Some(other) => panic!("{what}: unknown setup `{other}`"),
    };
    let args = t
        .get("args")
        .and_then(Item::as_array)
        .unwrap_or_else(|| panic!("{what}: `args` must be an array of strings"))
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("{what}: `args` must be an array of strings"))
                .to_string()
        })
        .collect();
    let env = match t.get("env") {
        None => vec![],
        Some(item) => item
            .as_table_like()
            .unwrap_or_else(|| panic!("{what}: `env` must be a table"))
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .unwrap_or_else(|| panic!("{what}: env `{k}` must be a string"));
                (k.to_string(), v.to_string())
            })
            .collect(),
    };
    let files = match t.get("files") {
        None => vec![],
        Some(item) => item
            .as_table_like()
            .unwrap_or_else(|| panic!("{what}: `files` must be a table"))
            .iter()
            .map(|(rel, v)| {
                let (text, mode) = match (v.as_str(), v.as_table_like()) {
                    (Some(text), _) => (text, 0o644),
                    (None, Some(spec)) => (
                        spec.get("text")
                            .and_then(Item::as_str)
                            .unwrap_or_else(|| panic!("{what}: file `{rel}` needs `text`")),
                        spec.get("mode").and_then(Item::as_integer).unwrap_or(0o644) as u32,
                    ),
                    _ => panic!("{what}: file `{rel}` must be a string or {{ text, mode }}"),
                };
                CaseFile {
                    rel: rel.to_string(),
                    content: expand(text),
                    mode,
                }
            })
            .collect(),
    };
    let status = t
        .get("status")
        .and_then(Item::as_integer)
        .unwrap_or_else(|| panic!("{what}: `status` must be an exit code")) as i32;
    Case {
        name,
        setup,
        args,
        env,
        stdin: str_field(t, "stdin", &what),
        files,
        status,
        stdout: str_field(t, "stdout", &what).unwrap_or_default(),
        stderr: str_field(t, "stderr", &what).unwrap_or_default(),
    }
}

/// The generators a case's stdin, files, args and env may use, so that a
/// case can hold bytes TOML cannot and inputs too big to write out:
/// `[TMP]` the world's temp dir (the current directory, HOME's parent),
/// `[c; N]` the character `c` N times, `[0xHH]` the byte HH.
fn expand_with(text: &str, tmp: Option<&Path>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('[') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        rest = &rest[at..];
        let close = rest.find(']').map(|c| &rest[1..c]);
        let generated: Option<Vec<u8>> = close.and_then(|inner| {
            if inner == "TMP" {
                return tmp.map(|t| t.as_os_str().as_encoded_bytes().to_vec());
            }
            if let Some(hex) = inner.strip_prefix("0x") {
                return (hex.len() == 2)
                    .then(|| u8::from_str_radix(hex, 16).ok())
                    .flatten()
                    .map(|b| vec![b]);
            }
            let (c, n) = inner.split_once("; ")?;
            let mut cs = c.chars();
            let (Some(c), None) = (cs.next(), cs.next()) else {
                return None;
            };
            let n: usize = n.parse().ok()?;
            Some(c.to_string().repeat(n).into_bytes())
        });
        match (generated, close) {
            (Some(bytes), Some(inner)) => {
                out.extend_from_slice(&bytes);
                rest = &rest[inner.len() + 2..];
            }
            _ => {
                out.push(b'[');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

fn expand(text: &str) -> Vec<u8> {
    expand_with(text, None)
}

fn expand_os(text: &str, tmp: &Path) -> OsString {
    OsString::from_vec(expand_with(text, Some(tmp)))
}

#[test]
fn normalise_shows_tmp_and_invisible_marks() {
    let out = normalise("/t/x: work factor \u{2068}19\u{2069}", Path::new("/t"));
    assert_eq!(out, "[TMP]/x: work factor [U+2068]19[U+2069]");
}

#[test]
fn generators_expand() {
    let tmp = Path::new("/t");
    assert_eq!(expand_with("[TMP]/a", Some(tmp)), b"/t/a");
    assert_eq!(expand("a[x; 3]b"), b"axxxb");
    assert_eq!(expand("caf[0xe9]"), b"caf\xe9");
    // Brackets that are no generator stay as they are.
    assert_eq!(
        expand(r#"["v"] [TMP] [0xzz] [ab; 2] [x; n]"#),
        br#"["v"] [TMP] [0xzz] [ab; 2] [x; n]"#
    );
}

/// What the user would see, with the world's temp dir as `[TMP]`, and the
/// invisible isolation marks age puts around numbers in its messages
/// (U+2068, U+2069; NOTES.md) made visible, so that a snapshot shows them.
fn normalise(text: &str, tmp: &Path) -> String {
    let mut text = text
        .replace('\u{2068}', "[U+2068]")
        .replace('\u{2069}', "[U+2069]");
    let mut paths = vec![tmp.to_path_buf()];
    if let Ok(canonical) = tmp.canonicalize() {
        paths.push(canonical);
    }
    for p in paths {
        text = text.replace(&p.display().to_string(), "[TMP]");
    }
    text
}

fn run_group(group: &str) {
    let path = cmd_dir().join(format!("{group}.toml"));
    let source = fs::read_to_string(&path).unwrap();
    let mut doc: DocumentMut = source
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Case> = doc
        .get("case")
        .and_then(Item::as_array_of_tables)
        .unwrap_or_else(|| panic!("{}: no [[case]]", path.display()))
        .iter()
        .enumerate()
        .map(|(i, t)| parse_case(t, group, i))
        .collect();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "{group}: two cases share a name");

    let overwrite =
        std::env::var(snapbox::assert::DEFAULT_ACTION_ENV).as_deref() == Ok("overwrite");
    let mut identity = None;
    let mut passphrase = None;
    let mut mismatches = vec![];
    let mut fixed = 0;
    for (i, c) in cases.iter().enumerate() {
        let env: &Env = match c.setup {
            Setup::Identity => identity.get_or_insert_with(|| world(Setup::Identity)),
            Setup::Passphrase => passphrase.get_or_insert_with(|| world(Setup::Passphrase)),
        };
        let (stdout, stderr) = run_case(group, c, env);
        let mut record = |field: &str, actual: &str, expected: &str| {
            if actual == expected {
                return;
            }
            if overwrite {
                let t = doc["case"].as_array_of_tables_mut().unwrap();
                t.get_mut(i).unwrap()[field] = toml_edit::value(actual);
                fixed += 1;
                return;
            }
            let diff = snapbox::Assert::new()
                .try_eq(
                    Some(&format!("{} {field}", c.name)),
                    snapbox::Data::text(actual).raw(),
                    snapbox::Data::text(expected).raw(),
                )
                .expect_err("they differ");
            mismatches.push(format!("{group}: {:?}: {field} differs:\n{diff}", c.name));
        };
        record("stdout", &stdout, &c.stdout);
        record("stderr", &stderr, &c.stderr);
    }
    if fixed > 0 {
        fs::write(&path, doc.to_string()).unwrap();
        eprintln!("{}: rewrote {fixed} snapshot(s)", path.display());
    }
    assert!(
        mismatches.is_empty(),
        "{}\n{} case(s) differ from tests/cmd/{group}.toml; after a deliberate change, \
         update with SNAPSHOTS=overwrite cargo test --test integration badinput",
        mismatches.join("\n"),
        mismatches.len()
    );
    eprintln!(
        "bad input, {group}: {} cases, each exit 1 or 2 (126/127 for run) with its pinned stderr, \
         no value shown, vault and identity unchanged",
        cases.len()
    );
}

/// Runs one case in `env` and checks the contract every case keeps;
/// returns its normalised stdout and stderr for the snapshot.
fn run_case(group: &str, c: &Case, env: &Env) -> (String, String) {
    let what = format!("{group}: {:?}", c.name);
    let tmp = env.tmp.path();
    let identity = env.dir.join("identity.age");
    let before = fs::read(env.file()).unwrap();
    let identity_before = fs::read(&identity).ok();
    let mut files_before = env.all_files();
    files_before.sort();
    let mut written = vec![];
    for f in &c.files {
        let p = env.path(&f.rel);
        assert!(!p.exists(), "{what}: {} exists already", f.rel);
        env.write(&f.rel, &f.content);
        fs::set_permissions(&p, fs::Permissions::from_mode(f.mode)).unwrap();
        written.push(p);
    }
    let mut cmd = env.vault(c.args.iter().map(|a| expand_os(a, tmp)));
    for (k, v) in &c.env {
        cmd = cmd.env(k, expand_os(v, tmp));
    }
    if let Some(s) = &c.stdin {
        cmd = cmd.stdin(expand(s));
    }
    let start = Instant::now();
    let out = cmd.run();
    let took = start.elapsed();
    for p in &written {
        fs::remove_file(p).unwrap();
    }
    assert_eq!(out.signal, None, "{what}: killed by a signal: {out:?}");
    assert!(
        out.code == Some(c.status),
        "{what}: expected exit {}: {out:#?}",
        c.status
    );
    let out = out.fails(c.status).lacks(SENTINEL);
    assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    assert!(
        fs::read(env.file()).unwrap() == before,
        "{what}: the vault changed"
    );
    assert_eq!(
        fs::read(&identity).ok(),
        identity_before,
        "{what}: identity.age changed"
    );
    assert!(
        vault::testing::stale_temps(&env.file()).is_empty()
            && vault::testing::stale_temps(&identity).is_empty(),
        "{what}: a temp file is left"
    );
    // A read that opened the vault before refusing may record the file
    // version in the verification cache (issue 20): a speed-up, no output.
    let cache = env.dir.join("cache");
    let mut files_after = env.all_files();
    files_after.retain(|f| !f.starts_with(&cache));
    files_after.sort();
    files_before.retain(|f| !f.starts_with(&cache));
    assert_eq!(files_after, files_before, "{what}: files appeared or went");
    (normalise(&out.stdout, tmp), normalise(&out.stderr, tmp))
}
