//! One test per bug the reliability suite found, named after what went
//! wrong, so that it cannot come back unnoticed.

use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

use crate::support::*;

/// A named pipe with no writer given as an input file (`--from-json`,
/// `import`, `--identity`, …) hung `vault` forever in `open(2)`. Now
/// `fsio::read` opens without blocking and gives a writer a moment.
#[test]
fn fifo_without_a_writer_does_not_hang() {
    let env = Env::new().init();
    let fifo = env.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    env.vault(["import", "--from-json"])
        .arg_path(&fifo)
        .run()
        .fails(1)
        .stderr_has("is a named pipe and nothing is writing to it");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A named pipe in place of vault.age hung every command in `open(2)`.
#[test]
fn vault_file_that_is_a_fifo_does_not_hang() {
    let env = Env::new().init();
    fs::remove_file(env.file()).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(env.file())
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is not a regular file");
    env.vault(["secret", "create", "a", "K=v"])
        .run()
        .fails(1)
        .stderr_has("is not a regular file");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// An endless input (`--from-json /dev/zero`, `yes | vault import -`) was
/// read until memory ran out. Inputs are now capped at fsio::MAX_INPUT,
/// and a device is refused before it is read at all.
#[test]
fn endless_input_is_refused_not_read_forever() {
    let env = Env::new().init();
    env.vault(["import", "--from-json", "/dev/zero"])
        .run()
        .fails(1)
        .stderr_has("/dev/zero is a device, not a file");
}

/// Some of age's error texts run over two lines ("unknown age format.\n
/// have you tried upgrading to the latest version?"), which broke the
/// one-line `vault: error:` shape.
#[test]
fn age_errors_are_one_line() {
    let env = Env::new().init();
    fs::write(
        env.file(),
        "age-encryption.org/v2\n-> X25519 abc\n--- xyz\n0123456789",
    )
    .unwrap();
    let out = env
        .vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is damaged: unknown age format");
    assert!(!out.stderr.contains("upgrading"), "{out:?}");
}

/// With identity.age missing, a write on an existing vault generated a new
/// identity, wrote a new identity.age, and only then failed ("not encrypted
/// to your key"): a stray identity in the place where the user's backup of
/// the real one belongs, and a misleading message.
#[test]
fn missing_identity_age_does_not_make_a_new_one() {
    let env = Env::with_passphrase("pw").init();
    env.create("db", &["K=v"]);
    let identity = env.dir.join("identity.age");
    fs::remove_file(&identity).unwrap();
    let before = fs::read(env.file()).unwrap();
    env.vault(["secret", "set", "db", "K=w"])
        .run()
        .fails(1)
        .stderr_has("no identity at")
        .stderr_has("restore identity.age from a backup");
    // A read says so too, not `vault init` (which refuses: the vault is
    // there).
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("restore identity.age from a backup")
        .lacks("vault init");
    assert!(!identity.exists());
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

/// An ASCII-armored vault file (`age -a`, as a user re-encrypts one by hand
/// after a recovery) failed with "header is invalid", though `age -d` opens
/// it and identity.age is read armored. The fuzz seeds found it.
#[test]
fn armored_vault_file_opens() {
    if !have("age") {
        return;
    }
    let env = Env::new().init();
    env.create("db", &["K=armored"]);
    let db = env.path("vault.db");
    fs::write(&db, env.plaintext()).unwrap();
    let recipient = env.vault(["recipient"]).run().success().stdout;
    let st = Command::new("age")
        .args(["-a", "-r", recipient.trim(), "-o"])
        .arg(env.file())
        .arg(&db)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(fs::read(env.file()).unwrap().starts_with(b"-----BEGIN AGE"));
    // Stock age cannot sign (DESIGN v2 "Trust"): the file is refused until
    // its owner vouches for it, which signs it.
    env.vault(["export", "db"])
        .run()
        .fails(1)
        .stderr_has("is not signed")
        .stderr_has("vault trust");
    env.vault(["trust", "--yes"]).run().success();
    env.vault(["export", "db"])
        .run()
        .success()
        .stdout_has("K=armored");
    env.vault(["secret", "set", "db", "K=binary-again"])
        .run()
        .success();
    env.vault(["export", "db"])
        .run()
        .success()
        .stdout_has("K=binary-again");
}

/// A database whose `PRAGMA user_version` is negative (the field is a
/// signed 32-bit integer) panicked in the migration code, slicing the
/// migration list from a negative index: any member of a team vault could
/// have made everyone's `vault` crash. Found by the `db_load` fuzz target;
/// its input is the seed `fuzz/seeds/db_load/negative-user-version.db`.
#[test]
fn negative_schema_version_is_refused_not_a_panic() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    let plain = env.plaintext();
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &plain[..], plain.len(), false)
        .unwrap();
    conn.pragma_update(None, "user_version", -156).unwrap();
    let hostile = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let recipient = env.vault(["recipient"]).run().success().stdout;
    let sealed = vault::testing::encrypt_vec(&[recipient.trim().to_string()], &hostile).unwrap();
    fs::write(env.file(), &sealed).unwrap();
    for args in [&["secret", "list"][..], &["secret", "set", "db", "K=w"]] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("not a vault database");
        assert_eq!(fs::read(env.file()).unwrap(), sealed);
    }
}
