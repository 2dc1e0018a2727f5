//! `vault secret …`: the happy paths, and bad input that must fail cleanly
//! with the vault file unchanged byte for byte.

use std::fs;

use crate::support::*;

#[test]
fn create_list_show_reveal() {
    let env = Env::new().init();
    env.create("db", &["PGHOST=localhost", "PGPASSWORD=s3cr3t"]);
    env.vault(["secret", "list"])
        .run()
        .success()
        .stdout_has("NAME")
        .stdout_has("db    2");
    env.vault(["secret", "show", "db"])
        .run()
        .success()
        .stdout_has("PGPASSWORD  ********")
        .lacks("s3cr3t");
    env.vault(["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("PGPASSWORD  s3cr3t");
}

#[test]
fn json_shapes() {
    let env = Env::new().init();
    env.create("db", &["A=1", "B=two"]);
    let out = env.vault(["secret", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "db");
    assert_eq!(v[0]["keys"], 2);
    assert!(v[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let out = env
        .vault(["secret", "show", "db", "--json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["B"], "********");
    let out = env
        .vault(["secret", "show", "db", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["B"], "two");
    assert_eq!(v["name"], "db");
}

#[test]
fn bare_key_reads_stdin_less_one_newline() {
    let env = Env::new().init();
    env.vault(["secret", "create", "api", "TOKEN", "URL=https://x"])
        .stdin("multi\nline value\n\n")
        .run()
        .success();
    let out = env
        .vault(["secret", "show", "api", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["TOKEN"], "multi\nline value\n");
    env.vault(["secret", "create", "two", "A", "B"])
        .stdin("x")
        .run()
        .fails(1)
        .stderr_has("only one can read stdin");
    // A file read from stdin and a key with no value: one would get
    // nothing, so neither runs.
    for args in [
        &["secret", "create", "three", "--from-json", "-", "A"][..],
        &["secret", "create", "three", "--from-dotenv", "-", "A"][..],
        &[
            "secret",
            "create",
            "three",
            "--from-dotenv",
            "-",
            "--from-json",
            "-",
        ][..],
    ] {
        env.vault(args)
            .stdin("{\"X\": \"1\"}")
            .run()
            .fails(1)
            .stderr_has("stdin can be read once");
    }
    env.vault(["secret", "show", "three"]).run().fails(1);
}

#[test]
fn values_survive_unchanged() {
    let env = Env::new().init();
    let tricky = "a b\n'\"$HOME #x =\\ é 数据 `id` $(id)";
    env.vault(["secret", "create", "t", "V"])
        .stdin(tricky)
        .run()
        .success();
    let out = env
        .vault(["secret", "show", "t", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["V"], tricky);
}

#[test]
fn from_json_and_args_win_over_files() {
    let env = Env::new().init();
    let j = env.write("in.json", r#"{"A": "from-json", "B": "b"}"#);
    env.vault(["secret", "create", "s", "A=from-arg", "--from-json"])
        .arg_path(&j)
        .run()
        .success();
    let out = env
        .vault(["secret", "show", "s", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["A"], "from-arg");
    assert_eq!(v["entries"]["B"], "b");
}

#[test]
fn from_dotenv() {
    let env = Env::new().init();
    let f = env.write(".env", "export A=1\nB='two words'\n# c\n");
    env.vault(["secret", "create", "s", "--from-dotenv"])
        .arg_path(&f)
        .run()
        .success();
    let out = env
        .vault(["secret", "show", "s", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"]["A"], "1");
    assert_eq!(v["entries"]["B"], "two words");
}

#[test]
fn set_unset_rename_delete() {
    let env = Env::new().init();
    env.create("db", &["A=1", "B=2"]);
    env.vault(["secret", "set", "db", "A=9", "C=3"])
        .run()
        .success();
    env.vault(["secret", "unset", "db", "B"]).run().success();
    env.vault(["secret", "unset", "db", "Z"])
        .run()
        .fails(1)
        .stderr_has("has no key `Z`");
    env.vault(["secret", "rename", "db", "pg"]).run().success();
    let out = env
        .vault(["secret", "show", "pg", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"], serde_json::json!({"A": "9", "C": "3"}));
    env.vault(["secret", "delete", "pg"])
        .run()
        .fails(1)
        .stderr_has("--yes");
    env.vault(["secret", "delete", "pg", "--yes"])
        .run()
        .success();
    env.vault(["secret", "delete", "pg", "--yes"])
        .run()
        .fails(1)
        .stderr_has("no secret named `pg`");
    env.vault(["secret", "delete", "pg", "--yes", "--allow-missing"])
        .run()
        .success();
}

/// A `KEY=VALUE` typed where only a key belongs: refused, and the error
/// names the key but never the value (it may be the secret itself).
#[test]
fn a_value_typed_where_a_key_belongs_is_not_echoed() {
    let env = Env::new().init();
    env.create("db", &["PW=1"]);
    let before = fs::read(env.file()).unwrap();
    for args in [
        &["secret", "unset", "db", "PW=hunter2"][..],
        &["secret", "generate", "db", "PW=hunter2"][..],
        &["run", "-s", "db", "--require", "PW=hunter2", "--", "true"][..],
        // The secret's name forgotten: its first pair is taken for it.
        &["secret", "create", "PW=hunter2"][..],
        &["secret", "set", "PW=hunter2", "X=1"][..],
        &["run", "-s", "PW=hunter2", "--", "true"][..],
    ] {
        let out = env.vault(args).run().fails(1).stderr_has("`PW=…`");
        assert!(!out.stderr.contains("hunter2"), "{args:?}: {}", out.stderr);
        assert!(!out.stdout.contains("hunter2"), "{args:?}: {}", out.stdout);
    }
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

#[test]
fn delete_is_all_or_nothing() {
    let env = Env::new().init();
    env.create("a", &["K=1"]);
    let before = fs::read(env.file()).unwrap();
    env.vault(["secret", "delete", "a", "missing", "--yes"])
        .run()
        .fails(1);
    assert_eq!(fs::read(env.file()).unwrap(), before);
    // A name given twice is one secret to delete.
    env.vault(["secret", "delete", "a", "a", "--yes"])
        .run()
        .success()
        .stderr_has("Deleted `a`");
    env.vault(["secret", "show", "a"]).run().fails(1);
}

#[test]
fn create_on_missing_vault_creates_it() {
    let env = Env::new();
    env.create("first", &["K=v"]);
    assert!(env.file().exists());
    let env = Env::with_passphrase("pw");
    env.create("first", &["K=v"]);
    assert!(env.dir.join("identity.age").exists());
    env.vault(["secret", "list"])
        .run()
        .success()
        .stdout_has("first");
}

#[test]
fn did_you_mean() {
    let env = Env::new().init();
    env.create("db-prod", &["K=v"]);
    env.vault(["secret", "show", "db-prd"])
        .run()
        .fails(1)
        .stderr_has("did you mean `db-prod`");
}

/// Each bad input: exit 1 (or 2 for usage), one error line and a hint, no
/// value echoed, and the vault file byte-for-byte unchanged.
#[test]
fn bad_input_leaves_the_vault_unchanged() {
    let env = Env::new().init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let nonstring = env.write("n.json", r#"{"A": 1}"#);
    let array = env.write("a.json", r#"["A"]"#);
    let broken = env.write("b.json", r#"{"A": "SENTINEL-VALUE""#);
    let badkey = env.write("k.json", r#"{"1A": "x"}"#);
    let big = "x".repeat(131_070);
    let cases: Vec<Case> = vec![
        (
            args(&["secret", "create", "bad name", "A=1"]),
            None,
            1,
            "invalid secret name",
        ),
        (args(&["secret", "create", "-x", "A=1"]), None, 2, ""),
        (
            args(&["secret", "create", &"n".repeat(65), "A=1"]),
            None,
            1,
            "invalid secret name",
        ),
        (
            args(&["secret", "create", "x", "1A=1"]),
            None,
            1,
            "invalid key",
        ),
        (
            args(&["secret", "create", "x", "A-B=1"]),
            None,
            1,
            "invalid key",
        ),
        (args(&["secret", "create", "x"]), None, 1, "no keys"),
        (
            args(&["secret", "create", "db", "A=2"]),
            None,
            1,
            "already exists",
        ),
        (
            args(&["secret", "create", "x", "V"]),
            Some(b"a\0b"),
            1,
            "NUL",
        ),
        (
            args(&["secret", "create", "x", "V"]),
            Some(b"\xff\xfe"),
            1,
            "not UTF-8",
        ),
        (
            args(&["secret", "create", "x", "--from-json", p(&nonstring)]),
            None,
            1,
            "a number, not a string",
        ),
        (
            args(&["secret", "create", "x", "--from-json", p(&array)]),
            None,
            1,
            "not a JSON object",
        ),
        (
            args(&["secret", "create", "x", "--from-json", p(&broken)]),
            None,
            1,
            "not valid JSON",
        ),
        (
            args(&["secret", "create", "x", "--from-json", p(&badkey)]),
            None,
            1,
            "invalid key",
        ),
        (
            args(&["secret", "create", "x", "--from-json", "/nonexistent.json"]),
            None,
            1,
            "cannot read",
        ),
        (
            args(&["secret", "create", "x", "--from-json", "/tmp"]),
            None,
            1,
            "is a directory",
        ),
        (
            args(&["secret", "create", "x", "K"]),
            Some(big.as_bytes()),
            1,
            "too large",
        ),
        (
            args(&["secret", "set", "nope", "A=1"]),
            None,
            1,
            "no secret named",
        ),
        (args(&["secret", "set", "db"]), None, 2, ""),
        (args(&["secret", "unset", "db", "A"]), None, 1, "empty"),
        (
            args(&["secret", "rename", "db", "bad/name"]),
            None,
            1,
            "invalid secret name",
        ),
        (
            args(&["secret", "rename", "nope", "x"]),
            None,
            1,
            "no secret named",
        ),
        (
            args(&["secret", "show", "nope"]),
            None,
            1,
            "no secret named",
        ),
        (args(&["secret", "frobnicate"]), None, 2, ""),
        (args(&["--no-such-flag"]), None, 2, ""),
    ];
    for (argv, stdin, code, needle) in cases {
        let before = fs::read(env.file()).unwrap();
        let mut c = env.vault(&argv);
        if let Some(s) = stdin {
            c = c.stdin(s);
        }
        let out = c
            .run()
            .fails(code)
            .stderr_has(needle)
            .lacks("SENTINEL-VALUE");
        assert_eq!(
            fs::read(env.file()).unwrap(),
            before,
            "{argv:?} changed the vault: {out:?}"
        );
    }
}

#[test]
fn wrong_identity_and_damaged_files() {
    let env = Env::new().init();
    env.create("db", &["A=1"]);
    let before = fs::read(env.file()).unwrap();

    let other = env.path("other.txt");
    let theirs = write_identity(&other);
    env.vault(["secret", "set", "db", "A=2"])
        .env("VAULT_IDENTITY", &other)
        .run()
        .fails(1)
        .stderr_has("is not encrypted to your key")
        .stderr_has(&theirs)
        .lacks("No matching keys");
    assert_eq!(fs::read(env.file()).unwrap(), before);

    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", before[..before.len() / 2].to_vec()),
        ("flipped", {
            let mut b = before.clone();
            let n = b.len() - 100;
            b[n] ^= 0xff;
            b
        }),
        ("empty", vec![]),
        ("garbage", b"not an age file at all".to_vec()),
    ];
    for (what, bytes) in damaged {
        fs::write(env.file(), &bytes).unwrap();
        for argv in [&["secret", "list"][..], &["secret", "set", "db", "A=3"]] {
            env.vault(argv).run().fails(1);
            assert_eq!(
                fs::read(env.file()).unwrap(),
                bytes,
                "{what}: {argv:?} changed it"
            );
        }
    }
    fs::remove_file(env.file()).unwrap();
    fs::create_dir(env.file()).unwrap();
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is a directory");
    env.vault(["secret", "set", "db", "A=3"]).run().fails(1);
    assert!(env.file().is_dir());
}

#[test]
fn wrong_passphrase_leaves_everything_unchanged() {
    let env = Env::with_passphrase("right").init();
    env.create("db", &["A=1"]);
    let vault = fs::read(env.file()).unwrap();
    let identity = fs::read(env.dir.join("identity.age")).unwrap();
    let wrong = env.path("wrong.txt");
    write_private(&wrong, b"wrong\n");
    env.vault(["secret", "set", "db", "A=2"])
        .env("VAULT_PASSPHRASE_FILE", &wrong)
        .run()
        .fails(1)
        .stderr_has("wrong passphrase");
    assert_eq!(fs::read(env.file()).unwrap(), vault);
    assert_eq!(fs::read(env.dir.join("identity.age")).unwrap(), identity);
}

/// argv, stdin, exit code, what stderr must say.
type Case<'a> = (Vec<String>, Option<&'a [u8]>, i32, &'a str);

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// A name or key that is not UTF-8 is an invalid one: exit 1 with vault's
/// one-line error, as for any invalid name (DESIGN "Errors and exit
/// codes"), not clap's usage error (exit 2).
#[test]
fn arguments_that_are_not_utf8_are_invalid_input() {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    let bad = OsStr::from_bytes(b"a\xffb");
    let pair = OsStr::from_bytes(b"K=\xff");
    for args in [
        vec![OsStr::new("secret"), OsStr::new("show"), bad],
        vec![
            OsStr::new("secret"),
            OsStr::new("set"),
            OsStr::new("db"),
            pair,
        ],
        vec![
            OsStr::new("run"),
            OsStr::new("-s"),
            bad,
            OsStr::new("--"),
            OsStr::new("true"),
        ],
    ] {
        env.vault(&args)
            .run()
            .fails(1)
            .stderr_has("vault: error: an argument is not UTF-8 text");
    }
}
