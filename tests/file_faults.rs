//! Faults in the files and the directory: a read-only vault directory, a
//! damaged `vault.age` in every shape, a missing or damaged `identity.age`.
//! Each command exits 1 with a message that says what is wrong, and leaves
//! the files byte for byte as they were.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::support::*;

/// Runs `args` as `nobody` (root ignores modes, so a read-only directory
/// test must not run as root).
fn as_nobody(work: &Path, args: &[&str]) -> Out {
    let o = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(BIN)
        .args(args)
        .env_clear()
        .env("VAULT_DIR", work.join("vault"))
        .env("VAULT_IDENTITY", work.join("key.txt"))
        .env("HOME", work)
        .current_dir(work)
        .output()
        .unwrap();
    Out::from(o)
}

/// A read-only vault directory: writes fail with exit 1 naming the
/// directory, the vault file is unchanged, and reads still work.
#[test]
fn read_only_vault_directory() {
    if !is_root() {
        // Not root: the test user itself is unprivileged.
        let env = Env::new().init();
        env.create("db", &["A=1"]);
        read_only_checks(&env.dir, &env.file(), &|args| env.vault(args).run());
        return;
    }
    if !have("setpriv") {
        return;
    }
    let env = Env::new();
    let work = env.path("nobody");
    fs::create_dir_all(&work).unwrap();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    write_identity(&work.join("key.txt"));
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&work)
        .status()
        .unwrap();
    assert!(st.success());
    as_nobody(&work, &["secret", "create", "db", "A=1"]).success();
    let dir = work.join("vault");
    read_only_checks(&dir, &dir.join("vault.age"), &|args| as_nobody(&work, args));
}

fn read_only_checks(dir: &Path, file: &Path, vault: &dyn Fn(&[&str]) -> Out) {
    let before = fs::read(file).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o500)).unwrap();
    let writes: &[&[&str]] = &[
        &["secret", "set", "db", "A=2"],
        &["secret", "create", "new", "B=1"],
        &["secret", "delete", "db", "--yes"],
    ];
    for args in writes {
        vault(args)
            .fails(1)
            .stderr_has("permission denied")
            .stderr_has(&dir.display().to_string());
        assert_eq!(
            fs::read(file).unwrap(),
            before,
            "{args:?} changed the vault"
        );
    }
    vault(&["secret", "list"]).success().stdout_has("db");
    vault(&["export", "db"]).success().stdout_has("A=1");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(vault::testing::stale_temps(file).is_empty());
}

/// Every command that opens the vault, reading or writing.
const OPENERS: &[&[&str]] = &[
    &["secret", "list"],
    &["secret", "show", "db", "--reveal"],
    &["export", "db"],
    &["secret", "set", "db", "A=2"],
    &["secret", "create", "x", "B=1"],
    &["secret", "rename", "db", "pg"],
    &["secret", "delete", "db", "--yes"],
    &["recipients", "list"],
];

/// A damaged `vault.age` in every shape: each command exits 1 with a
/// one-line message that says what is wrong, and the file stays byte for
/// byte what it was. (tests/secret.rs checks two commands on some shapes.)
#[test]
fn damaged_vault_file_every_command() {
    let env = Env::new().init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let good = fs::read(env.file()).unwrap();
    let other = env.path("other-key.txt");
    let theirs = write_identity(&other);
    let foreign = vault::testing::encrypt_vec(&[theirs], &env.plaintext()).unwrap();
    let mine = env
        .vault(["recipient"])
        .run()
        .success()
        .stdout
        .trim()
        .to_string();
    let not_a_db = vault::testing::encrypt_vec(std::slice::from_ref(&mine), &[0x42; 8192]).unwrap();
    let nothing = vault::testing::encrypt_vec(&[mine], b"").unwrap();
    let mac_at = good.windows(5).position(|w| w == b"\n--- ").unwrap();
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x01;
        b
    };
    let shapes: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty", vec![], &["is empty"]),
        (
            "truncated in the header",
            good[..40].to_vec(),
            &["is truncated"],
        ),
        (
            "truncated in the payload",
            good[..good.len() / 2].to_vec(),
            &["is damaged", "is truncated"],
        ),
        (
            "one byte short",
            good[..good.len() - 1].to_vec(),
            &["is damaged"],
        ),
        (
            "a byte appended",
            [&good[..], b"x"].concat(),
            &["is damaged"],
        ),
        (
            "flipped in the payload",
            flip(good.len() - 100),
            &["is damaged"],
        ),
        (
            "flipped in a recipient stanza",
            flip(27),
            &["not encrypted to your key"],
        ),
        (
            "flipped in the header MAC",
            flip(mac_at + 8),
            &["is damaged"],
        ),
        (
            "flipped in the version line",
            flip(3),
            &["is not an age file"],
        ),
        (
            "garbage",
            b"not an age file at all\n".to_vec(),
            &["is not an age file"],
        ),
        ("binary garbage", vec![0xff; 5000], &["is not an age file"]),
        (
            "another age version",
            b"age-encryption.org/v2\n-> X25519 abc\n--- xyz\n0123456789".to_vec(),
            &["is damaged: unknown age format"],
        ),
        (
            "armor with nothing inside",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec(),
            &["is damaged", "is truncated"],
        ),
        (
            "encrypted to someone else",
            foreign,
            &["is not encrypted to your key"],
        ),
        (
            "a payload that is not a database",
            not_a_db,
            &["not a vault database"],
        ),
        ("an empty payload", nothing, &["decrypts to nothing"]),
    ];
    let mut tried = 0;
    for (what, bytes, says) in &shapes {
        fs::write(env.file(), bytes).unwrap();
        for args in OPENERS {
            let out = env.vault(*args).run().fails(1).lacks("SENTINEL-VALUE");
            assert!(
                says.iter().any(|s| out.stderr.contains(s)),
                "{what}: {args:?} says: {}",
                out.stderr
            );
            assert_eq!(
                &fs::read(env.file()).unwrap(),
                bytes,
                "{what}: {args:?} changed it"
            );
            tried += 1;
        }
    }
    // Not a file at all: a directory, a FIFO (no writer: must not hang).
    fs::remove_file(env.file()).unwrap();
    fs::create_dir(env.file()).unwrap();
    for args in OPENERS {
        env.vault(*args).run().fails(1).stderr_has("is a directory");
        assert!(env.file().is_dir());
        tried += 1;
    }
    fs::remove_dir(env.file()).unwrap();
    let st = Command::new("mkfifo").arg(env.file()).status().unwrap();
    assert!(st.success());
    for args in OPENERS {
        let start = Instant::now();
        env.vault(*args)
            .run()
            .fails(1)
            .stderr_has("is not a regular file");
        assert!(start.elapsed() < Duration::from_secs(5));
        tried += 1;
    }
    eprintln!(
        "faults: {} damaged vault files x {} commands = {tried} runs, all exit 1, file unchanged",
        shapes.len() + 2,
        OPENERS.len()
    );
}

/// A write to `--vault FILE` / `VAULT_FILE` naming a file that is not a
/// vault (a text file, a `vault.toml`, an empty file) left `FILE.lock`
/// beside it: it is refused before any lock is taken, saying it is not a
/// vault, and the file is unchanged.
#[test]
fn a_write_to_a_file_that_is_not_a_vault_leaves_no_lock() {
    let env = Env::new().init();
    let dir = env.path("proj");
    fs::create_dir_all(&dir).unwrap();
    let shapes: &[(&str, &[u8], &str)] = &[
        (
            "notes.txt",
            b"hello\n",
            "is not a vault: it is not an age file",
        ),
        (
            "vault.toml",
            b"secrets = [\"db\"]\n",
            "is not a vault: it is not an age file",
        ),
        ("empty.age", b"", "is empty"),
    ];
    for (name, content, says) in shapes {
        let file = dir.join(name);
        fs::write(&file, content).unwrap();
        for (how, args) in [
            ("--vault", &["secret", "set", "x", "A=1"][..]),
            ("VAULT_FILE", &["secret", "create", "x", "A=1"]),
            (
                "--vault",
                &[
                    "recipients",
                    "add",
                    "age1mh6evuvvf9qpw5jrgtjamlg3sstkspdxv893jj8vrqupf6wg29ls0465sq",
                ],
            ),
        ] {
            let cmd = env.vault(args).current_dir(&dir);
            let cmd = if how == "--vault" {
                cmd.arg("--vault").arg_path(&file)
            } else {
                cmd.env("VAULT_FILE", &file)
            };
            cmd.run()
                .fails(1)
                .stderr_has(&format!("{}", file.display()))
                .stderr_has(says);
            assert_eq!(fs::read(&file).unwrap(), *content, "{name}: {args:?}");
            let mut left: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left, [*name], "{name}: {how} {args:?} left files");
        }
        fs::remove_file(&file).unwrap();
    }
}

/// `identity.age` missing or damaged, for a user who unlocks with a
/// passphrase: exit 1, a clear message, and neither file changes. Missing
/// it must not make a write create a new identity that cannot open the
/// vault (regression: tests/regression.rs).
#[test]
fn missing_or_damaged_identity() {
    let env = Env::with_passphrase("right").init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let identity = env.dir.join("identity.age");
    let sealed = fs::read(&identity).unwrap();
    let vault_before = fs::read(env.file()).unwrap();
    let text = String::from_utf8(sealed.clone()).unwrap();
    // Flip a character of the armored body (line 2), keeping it base64.
    let body_at = text.find('\n').unwrap() + 10;
    let mut flipped = sealed.clone();
    flipped[body_at] = if flipped[body_at] == b'A' { b'B' } else { b'A' };
    let plain = {
        let p = env.path("plain.txt");
        write_identity(&p);
        fs::read(p).unwrap()
    };
    let shapes: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("missing", None, "no identity at"),
        ("empty", Some(vec![]), "is empty"),
        (
            "truncated",
            Some(sealed[..sealed.len() / 2].to_vec()),
            "identity.age is",
        ),
        ("flipped", Some(flipped), "identity.age"),
        (
            "garbage",
            Some(b"\x00\x01binary\xff".to_vec()),
            "is not an age file",
        ),
        ("a plain identity file", Some(plain), "is not an age file"),
    ];
    let commands: &[&[&str]] = &[
        &["secret", "list"],
        &["export", "db"],
        &["secret", "set", "db", "A=2"],
        &["secret", "create", "x", "B=1"],
        &[
            "recipients",
            "add",
            "age1mh6evuvvf9qpw5jrgtjamlg3sstkspdxv893jj8vrqupf6wg29ls0465sq",
        ],
        &["recipient"],
    ];
    for (what, bytes, says) in &shapes {
        match bytes {
            Some(b) => fs::write(&identity, b).unwrap(),
            None => fs::remove_file(&identity).unwrap(),
        }
        for args in commands {
            env.vault(*args)
                .run()
                .fails(1)
                .stderr_has(says)
                .lacks("SENTINEL-VALUE");
            assert_eq!(
                fs::read(env.file()).unwrap(),
                vault_before,
                "{what}: {args:?}"
            );
            match bytes {
                Some(b) => assert_eq!(&fs::read(&identity).unwrap(), b, "{what}: {args:?}"),
                None => assert!(
                    !identity.exists(),
                    "{what}: {args:?} made a new identity.age"
                ),
            }
        }
    }
    fs::remove_file(&identity).unwrap();
    fs::create_dir(&identity).unwrap();
    for args in commands {
        env.vault(*args).run().fails(1).stderr_has("is a directory");
    }
    fs::remove_dir(&identity).unwrap();
    fs::write(&identity, &sealed).unwrap();
    env.vault(["secret", "list"])
        .run()
        .success()
        .stdout_has("db");
    assert_eq!(fs::read(env.file()).unwrap(), vault_before);
}

/// Invariant 5, "unknown schema version": a vault file whose database
/// says it is of a schema newer than this `vault` knows (a teammate's
/// newer `vault` wrote it) is refused by every command, reading or
/// writing, with exit 1 and a message that says "newer", and stays byte
/// for byte as it was: an older `vault` that read on would misread the
/// rows, and one that wrote would replace the teammate's vault with one
/// it cannot have understood. Made as a user would by hand: stock `age
/// -d`, `sqlite3` to raise `PRAGMA user_version`, and `age -r` again;
/// then the same database signed by its owner, so that no missing
/// signature can be what refuses it.
#[test]
fn a_newer_schema_version_is_refused_and_the_file_left() {
    if !have("age") || !have("sqlite3") {
        return;
    }
    let env = Env::new().init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let db = env.path("vault.db");
    let st = Command::new("age")
        .args(["-d", "-i"])
        .arg(env.identity.as_ref().unwrap())
        .arg("-o")
        .arg(&db)
        .arg(env.file())
        .status()
        .unwrap();
    assert!(st.success());
    let sqlite3 = |sql: &str| {
        let o = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(o.status.success(), "{sql}: {o:?}");
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let current: i64 = sqlite3("PRAGMA user_version").parse().unwrap();
    sqlite3(&format!("PRAGMA user_version = {}", current + 1));
    assert_eq!(sqlite3("PRAGMA user_version"), (current + 1).to_string());
    let recipient = env.recipient();
    let st = Command::new("age")
        .args(["-r", &recipient, "-o"])
        .arg(env.file())
        .arg(&db)
        .status()
        .unwrap();
    assert!(st.success());
    let unsigned = fs::read(env.file()).unwrap();
    let newer = fs::read(&db).unwrap();
    let signature = vault::testing::forge::signature(&newer, &env.keys()).unwrap();
    let signed = vault::testing::forge::seal(&newer, &[recipient], Some(signature)).unwrap();
    let says = format!(
        "has schema version {}, newer than this vault understands ({current})",
        current + 1
    );
    for (what, bytes) in [("stock age", &unsigned), ("signed", &signed)] {
        fs::write(env.file(), bytes).unwrap();
        for args in OPENERS
            .iter()
            .chain([&["trust", "--yes"][..], &["doctor"]].iter())
        {
            let out = env.vault(*args).run().fails(1).lacks("SENTINEL-VALUE");
            // `doctor` reports it among its checks, on stdout.
            let report = if args[0] == "doctor" {
                &out.stdout
            } else {
                &out.stderr
            };
            assert!(report.contains(&says), "{what}: {args:?}: {out:#?}");
            assert_eq!(
                &fs::read(env.file()).unwrap(),
                bytes,
                "{what}: {args:?} changed it"
            );
        }
    }
    assert!(vault::testing::stale_temps(&env.file()).is_empty());
}
