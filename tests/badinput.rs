//! The bad-input catalogue: malformed invocations and files, each of which
//! must do the right thing or exit 1 (vault) or 2 (usage) with a one-line
//! message (and at most one hint), or 126/127 for a command `run` cannot
//! start, never panic, never print a value (the inputs carry a SENTINEL),
//! and leave vault.age and identity.age byte for byte as they were with no
//! temp file beside them. tests/secret.rs has a first, smaller
//! table for `secret` commands; this one covers every kind of input.

use std::{
    ffi::OsString,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::support::*;

const SENTINEL: &str = "SENTINEL-8d41c7";

/// Whose world a case runs in.
#[derive(Clone, Copy, PartialEq)]
enum Who {
    /// Unlocks with an identity file (`VAULT_IDENTITY`).
    Key,
    /// Unlocks identity.age with a passphrase file.
    Pass,
}

struct Case {
    what: &'static str,
    who: Who,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
    code: i32,
    /// What stderr must say (for exit 2, clap's own words).
    says: &'static str,
}

fn case(what: &'static str, args: &[&dyn AsOs], code: i32, says: &'static str) -> Case {
    Case {
        what,
        who: Who::Key,
        args: args.iter().map(|a| a.os()).collect(),
        env: vec![],
        stdin: None,
        code,
        says,
    }
}

impl Case {
    fn stdin(mut self, s: impl AsRef<[u8]>) -> Case {
        self.stdin = Some(s.as_ref().to_vec());
        self
    }

    fn env(mut self, k: &'static str, v: impl AsOs) -> Case {
        self.env.push((k, v.os()));
        self
    }

    fn pass(mut self) -> Case {
        self.who = Who::Pass;
        self
    }
}

/// Strings and paths alike in a case's argv.
trait AsOs {
    fn os(&self) -> OsString;
}

impl AsOs for &str {
    fn os(&self) -> OsString {
        OsString::from(self)
    }
}

impl AsOs for String {
    fn os(&self) -> OsString {
        OsString::from(self)
    }
}

impl AsOs for PathBuf {
    fn os(&self) -> OsString {
        self.clone().into_os_string()
    }
}

/// The two users, each with a vault holding a secret `db` whose value is
/// the SENTINEL.
fn worlds() -> (Env, Env) {
    let key = Env::new().init();
    key.vault(["secret", "create", "db", "A"])
        .stdin(SENTINEL)
        .run()
        .success();
    let pass = Env::with_passphrase("catalogue").init();
    pass.vault(["secret", "create", "db", "A"])
        .stdin(SENTINEL)
        .run()
        .success();
    (key, pass)
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// Runs each case and checks the contract; returns how many ran.
fn check(key: &Env, pass: &Env, cases: Vec<Case>) -> usize {
    let n = cases.len();
    for c in cases {
        let env = if c.who == Who::Key { key } else { pass };
        let before = fs::read(env.file()).unwrap();
        let identity = env.dir.join("identity.age");
        let identity_before = fs::read(&identity).ok();
        let mut cmd = env.vault(&c.args);
        for (k, v) in &c.env {
            cmd = cmd.env(k, v);
        }
        if let Some(s) = &c.stdin {
            cmd = cmd.stdin(s);
        }
        let start = Instant::now();
        let out = cmd.run();
        let took = start.elapsed();
        assert_eq!(out.signal, None, "{}: killed by a signal: {out:?}", c.what);
        assert!(
            out.code == Some(c.code),
            "{}: expected exit {}: {out:#?}",
            c.what,
            c.code
        );
        let out = out.fails(c.code).lacks(SENTINEL);
        assert!(
            out.stderr.contains(c.says),
            "{}: stderr lacks {:?}: {}",
            c.what,
            c.says,
            out.stderr
        );
        assert!(took < Duration::from_secs(10), "{}: took {took:?}", c.what);
        assert_eq!(
            fs::read(env.file()).unwrap(),
            before,
            "{}: the vault changed",
            c.what
        );
        assert_eq!(
            fs::read(&identity).ok(),
            identity_before,
            "{}: identity.age changed",
            c.what
        );
        assert!(
            vault::testing::stale_temps(&env.file()).is_empty()
                && vault::testing::stale_temps(&identity).is_empty(),
            "{}: a temp file is left",
            c.what
        );
    }
    n
}

#[test]
fn catalogue() {
    let (key, pass) = worlds();
    let f = |rel: &str, content: &[u8]| key.write(rel, content);
    let priv_file = |rel: &str, content: &[u8]| {
        let p = key.path(rel);
        write_private(&p, content);
        p
    };
    let s = SENTINEL;
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = format!("{s}{}", "x".repeat(10 << 20));
    let dir = key.path("a-dir");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let missing = key.path("no-such-file");
    let bin = f("binary.bin", &binary);
    let bin_private = priv_file("binary-private.bin", &binary);
    let json = |rel: &str, text: String| f(rel, text.as_bytes());

    let cases = vec![
        // Names and keys out of pattern.
        case(
            "name with a space",
            &[&"secret", &"create", &"bad name", &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "name starting with -",
            &[&"secret", &"create", &"-x", &"A=1"],
            2,
            "unexpected argument",
        ),
        case(
            "name starting with .",
            &[&"secret", &"create", &".x", &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "name of 65 characters",
            &[&"secret", &"create", &"n".repeat(65), &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "name with a slash",
            &[&"secret", &"create", &"a/b", &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "non-ASCII name",
            &[&"secret", &"create", &"café", &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "name with a newline",
            &[&"secret", &"create", &"a\nb", &"A=1"],
            1,
            "`a\\nb`",
        ),
        case(
            "empty name",
            &[&"secret", &"create", &"", &"A=1"],
            1,
            "invalid secret name",
        ),
        case(
            "key starting with a digit",
            &[&"secret", &"create", &"x", &format!("1A={s}")],
            1,
            "invalid key `1A`",
        ),
        case(
            "key with a dash",
            &[&"secret", &"create", &"x", &format!("A-B={s}")],
            1,
            "invalid key",
        ),
        case(
            "empty key",
            &[&"secret", &"create", &"x", &format!("={s}")],
            1,
            "invalid key ``",
        ),
        case(
            "non-ASCII key",
            &[&"secret", &"create", &"x", &format!("É={s}")],
            1,
            "invalid key",
        ),
        case(
            "key with a space",
            &[&"secret", &"set", &"db", &format!("A B={s}")],
            1,
            "invalid key",
        ),
        case(
            "unset an invalid key",
            &[&"secret", &"unset", &"db", &"1X"],
            1,
            "invalid key",
        ),
        case(
            "rename to an invalid name",
            &[&"secret", &"rename", &"db", &"a b"],
            1,
            "invalid secret name",
        ),
        case(
            "export an invalid name",
            &[&"export", &"db", &"a b"],
            1,
            "invalid secret name",
        ),
        case(
            "show an unknown name",
            &[&"secret", &"show", &"dc"],
            1,
            "did you mean `db`",
        ),
        // NUL and encodings.
        case(
            "NUL in a value on stdin",
            &[&"secret", &"create", &"x", &"V"],
            1,
            "NUL",
        )
        .stdin(format!("{s}\0tail")),
        case(
            "NUL in a JSON value",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("nul.json", format!(r#"{{"A": "{s}\u0000"}}"#)),
            ],
            1,
            "NUL",
        ),
        case(
            "NUL in a dotenv value",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-dotenv",
                &f("nul.env", format!("A={s}\0x\n").as_bytes()),
            ],
            1,
            "NUL",
        ),
        case(
            "NUL in a bulk JSON value",
            &[
                &"import",
                &"--from-json",
                &json("bulk-nul.json", format!(r#"{{"n": {{"A": "{s}\u0000"}}}}"#)),
            ],
            1,
            "NUL",
        ),
        case(
            "invalid UTF-8 on stdin",
            &[&"secret", &"create", &"x", &"V"],
            1,
            "not UTF-8",
        )
        .stdin(b"\xff\xfe SENTINEL"),
        case(
            "invalid UTF-8 in a dotenv file",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-dotenv",
                &f("latin1.env", b"A=caf\xe9\n"),
            ],
            1,
            "line 1: invalid UTF-8",
        ),
        case(
            "invalid UTF-8 in JSON",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &f("latin1.json", b"{\"A\": \"caf\xe9\"}"),
            ],
            1,
            "not valid JSON",
        ),
        // JSON that is not an object of strings.
        case(
            "a number",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("n.json", format!(r#"{{"B": "{s}", "A": 1}}"#)),
            ],
            1,
            "is a number, not a string",
        ),
        case(
            "a boolean",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("t.json", r#"{"A": true}"#.into()),
            ],
            1,
            "is a boolean",
        ),
        case(
            "null",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("null.json", r#"{"A": null}"#.into()),
            ],
            1,
            "is null",
        ),
        case(
            "an array value",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("arr.json", format!(r#"{{"A": ["{s}"]}}"#)),
            ],
            1,
            "is an array",
        ),
        case(
            "an object value",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("obj.json", format!(r#"{{"A": {{"B": "{s}"}}}}"#)),
            ],
            1,
            "is an object",
        ),
        case(
            "a top-level array",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("top.json", format!(r#"["{s}"]"#)),
            ],
            1,
            "not a JSON object",
        ),
        case(
            "a top-level string",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("str.json", format!(r#""{s}""#)),
            ],
            1,
            "not a JSON object",
        ),
        case(
            "truncated JSON",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("cut.json", format!(r#"{{"A": "{s}"#)),
            ],
            1,
            "not valid JSON",
        ),
        case(
            "an empty JSON file",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &f("empty.json", b""),
            ],
            1,
            "not valid JSON",
        ),
        case(
            "bulk: a secret that is a string",
            &[
                &"import",
                &"--from-json",
                &json("b1.json", format!(r#"{{"n": "{s}"}}"#)),
            ],
            1,
            "not an object of keys",
        ),
        case(
            "bulk: a value that is a number",
            &[
                &"import",
                &"--from-json",
                &json("b2.json", format!(r#"{{"n": {{"B": "{s}", "A": 1}}}}"#)),
            ],
            1,
            "is not a string",
        ),
        case(
            "bulk: an invalid name",
            &[
                &"import",
                &"--from-json",
                &json("b3.json", format!(r#"{{"bad name": {{"A": "{s}"}}}}"#)),
            ],
            1,
            "invalid secret name",
        ),
        case(
            "bulk: an invalid key",
            &[
                &"import",
                &"--from-json",
                &json("b4.json", format!(r#"{{"n": {{"1A": "{s}"}}}}"#)),
            ],
            1,
            "invalid key",
        ),
        case(
            "bulk: a secret with no keys",
            &[
                &"import",
                &"--from-json",
                &json("b5.json", r#"{"n": {}}"#.into()),
            ],
            1,
            "has no keys",
        ),
        case(
            "bulk: one bad secret among good ones",
            &[
                &"import",
                &"--from-json",
                &json(
                    "b6.json",
                    format!(r#"{{"ok": {{"A": "{s}"}}, "bad": {{"A": 2}}}}"#),
                ),
            ],
            1,
            "is not a string",
        ),
        // Values too large for one environment string (131,071 bytes).
        case(
            "a 10 MB value on stdin",
            &[&"secret", &"create", &"x", &"V"],
            1,
            "too large",
        )
        .stdin(&big),
        case(
            "a 10 MB value in JSON",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-json",
                &json("big.json", format!(r#"{{"A": "{big}"}}"#)),
            ],
            1,
            "too large",
        ),
        case(
            "a 10 MB value in a dotenv file",
            &[
                &"secret",
                &"create",
                &"x",
                &"--from-dotenv",
                &f("big.env", format!("A={big}\n").as_bytes()),
            ],
            1,
            "too large",
        ),
        case(
            "a 10 MB value in bulk JSON",
            &[
                &"import",
                &"--from-json",
                &json("big-bulk.json", format!(r#"{{"n": {{"A": "{big}"}}}}"#)),
            ],
            1,
            "too large",
        ),
        case(
            "a pair one byte too long",
            &[&"secret", &"set", &"db", &"K"],
            1,
            "131072 bytes",
        )
        .stdin(format!("{s}{}", "y".repeat(131_070 - s.len()))),
        // Binary files where text belongs.
        case(
            "a binary dotenv file",
            &[&"secret", &"create", &"x", &"--from-dotenv", &bin],
            1,
            "invalid UTF-8",
        ),
        case(
            "a binary file to import",
            &[&"import", &"--name", &"x", &bin],
            1,
            "invalid UTF-8",
        ),
        case(
            "a binary JSON file",
            &[&"secret", &"create", &"x", &"--from-json", &bin],
            1,
            "not valid JSON",
        ),
        case(
            "a binary identity file",
            &[&"secret", &"list"],
            1,
            "not an age identity file",
        )
        .env("VAULT_IDENTITY", bin_private.clone()),
        case(
            "a binary passphrase file",
            &[&"secret", &"list"],
            1,
            "not UTF-8 text",
        )
        .env("VAULT_PASSPHRASE_FILE", bin_private.clone())
        .pass(),
        case(
            "a binary recipients file",
            &[&"recipients", &"add", &"-R", &bin],
            1,
            "not a text file of recipients",
        ),
        // Directories where files belong.
        case(
            "--from-json a directory",
            &[&"secret", &"create", &"x", &"--from-json", &dir],
            1,
            "is a directory",
        ),
        case(
            "--from-dotenv a directory",
            &[&"secret", &"create", &"x", &"--from-dotenv", &dir],
            1,
            "is a directory",
        ),
        case(
            "bulk --from-json a directory",
            &[&"import", &"--from-json", &dir],
            1,
            "is a directory",
        ),
        case(
            "import a directory with no .env",
            &[&"import", &dir],
            1,
            "no .env file",
        ),
        case(
            "import --all a file",
            &[&"import", &"--all", &bin],
            1,
            "--all takes a folder",
        ),
        case(
            "an identity that is a directory",
            &[&"secret", &"list"],
            1,
            "is a directory",
        )
        .env("VAULT_IDENTITY", dir.clone()),
        case(
            "a passphrase file that is a directory",
            &[&"secret", &"list"],
            1,
            "is a directory",
        )
        .env("VAULT_PASSPHRASE_FILE", dir.clone())
        .pass(),
        case(
            "a recipients file that is a directory",
            &[&"recipients", &"add", &"-R", &dir],
            1,
            "is a directory",
        ),
        case(
            "--vault a directory",
            &[&"secret", &"list", &"--vault", &dir],
            1,
            "is a directory",
        ),
        case(
            "--vault-dir a file",
            &[&"secret", &"list", &"--vault-dir", &bin],
            1,
            "binary.bin",
        ),
        // Missing files.
        case(
            "--from-json missing",
            &[&"secret", &"create", &"x", &"--from-json", &missing],
            1,
            "no such file",
        ),
        case(
            "--from-dotenv missing",
            &[&"secret", &"create", &"x", &"--from-dotenv", &missing],
            1,
            "no such file",
        ),
        case(
            "import a missing file",
            &[&"import", &missing],
            1,
            "no such file",
        ),
        case(
            "a missing identity file",
            &[&"secret", &"list"],
            1,
            "no such file",
        )
        .env("VAULT_IDENTITY", missing.clone()),
        case(
            "a missing passphrase file",
            &[&"secret", &"list"],
            1,
            "no such file",
        )
        .env("VAULT_PASSPHRASE_FILE", missing.clone())
        .pass(),
        case(
            "a missing recipients file",
            &[&"recipients", &"add", &"-R", &missing],
            1,
            "no such file",
        ),
        case(
            "--vault missing",
            &[&"secret", &"list", &"--vault", &missing],
            1,
            "no vault at",
        ),
        // Dotenv lines that are not KEY=VALUE: nothing is imported.
        case(
            "a bare word",
            &[
                &"import",
                &"--name",
                &"x",
                &f("bare.env", format!("A={s}\nbare\n").as_bytes()),
            ],
            1,
            "line 2",
        ),
        case(
            "an unterminated quote",
            &[
                &"import",
                &"--name",
                &"x",
                &f("open.env", format!("A=\"{s}\nB=2\n").as_bytes()),
            ],
            1,
            "line 1",
        ),
        case(
            "text after a closing quote",
            &[
                &"import",
                &"--name",
                &"x",
                &f("after.env", format!("A=\"{s}\"tail\n").as_bytes()),
            ],
            1,
            "line 1",
        ),
        case(
            "a key that is not portable",
            &[
                &"import",
                &"--name",
                &"x",
                &f("dash.env", format!("A-B={s}\n").as_bytes()),
            ],
            1,
            "line 1",
        ),
        case(
            "an empty dotenv file",
            &[&"import", &"--name", &"x", &f("empty.env", b"")],
            1,
            "holds no variables",
        ),
        case(
            "a world-readable passphrase file",
            &[&"secret", &"list"],
            1,
            "readable by other users",
        )
        .env("VAULT_PASSPHRASE_FILE", f("open-pass.txt", b"catalogue\n"))
        .pass(),
        case(
            "an empty passphrase file",
            &[&"secret", &"list"],
            1,
            "is empty",
        )
        .env("VAULT_PASSPHRASE_FILE", priv_file("empty-pass.txt", b""))
        .pass(),
        // `run`: nothing runs when a source is bad.
        case(
            "run --dotenv missing",
            &[&"run", &"--dotenv", &missing, &"--", &"true"],
            1,
            "no dotenv file at",
        ),
        case(
            "run --dotenv a binary file",
            &[&"run", &"--dotenv", &bin, &"--", &"true"],
            1,
            "line 1",
        ),
        case(
            "run --dotenv a directory with no .env",
            &[&"run", &"--dotenv", &dir, &"--", &"true"],
            1,
            "no .env file",
        ),
        case(
            "run an unknown secret",
            &[&"run", &"-s", &"dc", &"--", &"true"],
            1,
            "no secret named `dc`",
        ),
        case(
            "run --require a missing key",
            &[
                &"run",
                &"-s",
                &"db",
                &"--require",
                &"MISSING",
                &"--",
                &"true",
            ],
            1,
            "`MISSING`",
        ),
        case(
            "run --set an invalid key",
            &[&"run", &"--set", &format!("1A={s}"), &"--", &"true"],
            1,
            "invalid key `1A`",
        ),
        case(
            "run --set without =",
            &[&"run", &"--set", &"A", &"--", &"true"],
            1,
            "has no `=`",
        ),
        case(
            "run --local-env an unset variable",
            &[
                &"run",
                &"--local-env",
                &"VAULT_TEST_UNSET_7F",
                &"--",
                &"true",
            ],
            1,
            "no such variable",
        ),
        case(
            "run without a command",
            &[&"run", &"-s", &"db"],
            2,
            "<COMMAND>",
        ),
        case(
            "run a command that does not exist",
            &[&"run", &"-s", &"db", &"--", &"/nonexistent/cmd"],
            127,
            "cannot run",
        ),
        case(
            "run a directory",
            &[&"run", &"-s", &"db", &"--", &"/etc"],
            126,
            "cannot execute",
        ),
        // `passwd`: identity.age is left as it was.
        case(
            "passwd, new passphrase file missing",
            &[&"passwd", &"--new-passphrase-file", &missing],
            1,
            "no such file",
        )
        .pass(),
        case(
            "passwd, new passphrase file world-readable",
            &[&"passwd", &"--new-passphrase-file", &bin],
            1,
            "readable by other users",
        )
        .pass(),
        case(
            "passwd, new passphrase file binary",
            &[&"passwd", &"--new-passphrase-file", &bin_private],
            1,
            "not UTF-8 text",
        )
        .pass(),
        case(
            "passwd, new passphrase file a directory",
            &[&"passwd", &"--new-passphrase-file", &dir],
            1,
            "is a directory",
        )
        .pass(),
        case(
            "passwd, new passphrase file empty",
            &[
                &"passwd",
                &"--new-passphrase-file",
                &priv_file("empty-new-pass.txt", b""),
            ],
            1,
            "is empty",
        )
        .pass(),
        // Invocations.
        case(
            "two bare keys on stdin",
            &[&"secret", &"create", &"x", &"A", &"B"],
            1,
            "only one can read stdin",
        )
        .stdin(s),
        case(
            "delete without --yes and no terminal",
            &[&"secret", &"delete", &"db"],
            1,
            "--yes",
        ),
        case(
            "an invalid recipient",
            &[&"recipients", &"add", &"age1notarecipient"],
            1,
            "is not an age or ssh recipient",
        ),
        case(
            "an unknown command",
            &[&"frobnicate"],
            2,
            "unrecognized subcommand",
        ),
        case("export without a name", &[&"export"], 2, "required"),
        case(
            "an unknown export format",
            &[&"export", &"db", &"--format", &"xml"],
            2,
            "invalid value",
        ),
        case(
            "--json without --dry-run",
            &[&"import", &"--json"],
            2,
            "--dry-run",
        ),
        case(
            "--from-json with a PATH",
            &[&"import", &bin, &"--from-json", &bin],
            2,
            "cannot be used with",
        ),
    ];
    let n = check(&key, &pass, cases);
    assert!(n >= 40, "{n}");
    eprintln!(
        "bad input: {n} malformed invocations and files, each exit 1 or 2 (126/127 for run), one clear line, no value, vault and identity unchanged"
    );
}

/// A named pipe with no writer where a file belongs: an error after a
/// moment (fsio::FIFO_WRITER_WAIT), never a hang.
#[test]
fn fifos_without_a_writer() {
    let (key, pass) = worlds();
    let fifo = key.path("fifo");
    mkfifo(&fifo);
    let pfifo = pass.path("fifo");
    mkfifo(&pfifo);
    fs::set_permissions(&pfifo, fs::Permissions::from_mode(0o600)).unwrap();
    let cases = vec![
        case(
            "--from-json",
            &[&"secret", &"create", &"x", &"--from-json", &fifo],
            1,
            "named pipe",
        ),
        case(
            "--from-dotenv",
            &[&"secret", &"create", &"x", &"--from-dotenv", &fifo],
            1,
            "named pipe",
        ),
        case(
            "import",
            &[&"import", &"--name", &"x", &fifo],
            1,
            "named pipe",
        ),
        case(
            "bulk import",
            &[&"import", &"--from-json", &fifo],
            1,
            "named pipe",
        ),
        case("identity", &[&"secret", &"list"], 1, "named pipe")
            .env("VAULT_IDENTITY", fifo.clone()),
        case(
            "recipients file",
            &[&"recipients", &"add", &"-R", &fifo],
            1,
            "named pipe",
        ),
        case("passphrase file", &[&"secret", &"list"], 1, "named pipe")
            .env("VAULT_PASSPHRASE_FILE", pfifo.clone())
            .pass(),
        case(
            "run --dotenv",
            &[&"run", &"--dotenv", &fifo, &"--", &"true"],
            1,
            "named pipe",
        ),
        case(
            "passwd --new-passphrase-file",
            &[&"passwd", &"--new-passphrase-file", &pfifo],
            1,
            "named pipe",
        )
        .pass(),
    ];
    let n = check(&key, &pass, cases);
    eprintln!("bad input: {n} FIFOs without a writer, each exit 1 within a second or so");
}

/// A pipe with a writer is a legitimate input: `<(cmd)` process
/// substitution, and a named pipe whose writer comes a moment later.
#[test]
fn fifos_with_a_writer_work() {
    let env = Env::new().init();
    if have("bash") {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{BIN} import --name sub <(sleep 0.3; printf 'A=from-a-pipe\\n') && {BIN} secret create j --from-json <(printf '{{\"J\": \"j\"}}')"
            ))
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let fifo = env.path("fifo");
    mkfifo(&fifo);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            fs::write(fifo, "B=from-a-fifo\n").unwrap();
        })
    };
    env.vault(["import", "--name", "fifo"])
        .arg_path(&fifo)
        .run()
        .success();
    writer.join().unwrap();
    let out = env
        .vault(["export", "fifo", "--format", "json"])
        .run()
        .success();
    assert!(out.stdout.contains("from-a-fifo"), "{out:?}");
}

/// A dotenv file of 100,000 lines is valid and imports, in one secret.
fn hundred_thousand_lines(env: &Env) -> PathBuf {
    let mut text = String::with_capacity(5 << 20);
    for i in 0..100_000 {
        text.push_str(&format!("KEY_{i:06}=value-{i:06}-{}\n", "v".repeat(24)));
    }
    env.write("huge/.env", text)
}

#[test]
fn a_dotenv_file_of_100k_lines_imports() {
    let env = Env::new().init();
    let file = hundred_thousand_lines(&env);
    let start = Instant::now();
    env.vault(["import", "--name", "huge"])
        .arg_path(&file)
        .run()
        .success();
    let took = start.elapsed();
    let out = env.vault(["secret", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["keys"], 100_000);
    eprintln!(
        "bad input: a dotenv file of 100,000 lines imports in {} ms",
        took.as_millis()
    );
}

/// ... and `vault run` on it, whose environment is too large to exec
/// (about 4 MB, past Linux's 2 MB for argv plus environment), says so in
/// one line and exits 1.
#[test]
fn run_with_an_environment_too_large_to_exec() {
    let env = Env::new().init();
    let file = hundred_thousand_lines(&env);
    env.vault(["import", "--name", "huge"])
        .arg_path(&file)
        .run()
        .success();
    env.vault(["run", "-s", "huge", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("too large")
        .lacks("value-000001");
}
