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

/// `db` (the plaintext of a vault file) changed by `sql`, signed by `env`'s
/// own key and sealed to it: a damaged vault that passes the trust check,
/// as a buggy writer or a member could make it.
fn signed_with_change(env: &Env, db: &[u8], sql: &str) -> Vec<u8> {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, db, db.len(), false)
        .unwrap();
    conn.execute_batch(sql).unwrap();
    let changed = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let signature = vault::testing::forge::signature(&changed, &env.keys()).unwrap();
    vault::testing::forge::seal(&changed, &[env.recipient()], Some(signature)).unwrap()
}

/// A vault whose `entries.value` holds a BLOB: a write failed with
/// "database error: JSON cannot hold BLOB values" (from the history
/// snapshot) instead of naming a damaged vault as reads do.
#[test]
fn a_blob_value_is_a_damaged_vault_for_writes_too() {
    let env = Env::new().init();
    env.create("db", &["K=SENTINEL-VALUE", "L=other"]);
    let sealed = signed_with_change(
        &env,
        &env.plaintext(),
        "UPDATE entries SET value = X'00ff00' WHERE key = 'K'",
    );
    fs::write(env.file(), &sealed).unwrap();
    for args in [
        &["secret", "set", "db", "K=w"][..],
        &["secret", "set", "db", "M=w"],
        &["secret", "unset", "db", "L"],
        &["secret", "rename", "db", "pg"],
        &["secret", "show", "db"],
    ] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("is damaged")
            .stderr_has("`vault doctor`")
            .lacks("database error")
            .lacks("SENTINEL-VALUE");
        assert_eq!(fs::read(env.file()).unwrap(), sealed, "{args:?}");
    }
    env.vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("is damaged: secret `db` has an entry that is not text");
}

/// A secret with no keys in a version-1 vault (vault never makes one: a
/// secret without keys is deleted, not emptied): a write said "invalid
/// history row" (it recorded the empty version it could not read back),
/// and `vault doctor` found nothing wrong.
#[test]
fn a_secret_without_keys_is_a_damaged_vault_for_writes_and_doctor() {
    let env = Env::new().init();
    let recipient = env.recipient();
    let v1 = rusqlite::Connection::open_in_memory().unwrap();
    v1.execute_batch(&format!(
        "{}\n{}",
        V1_SCHEMA,
        "INSERT INTO secrets VALUES (1, 'db', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z');
         INSERT INTO entries VALUES (1, 'PW', 'SENTINEL-VALUE');
         INSERT INTO secrets VALUES (2, 'empty', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z');"
    ))
    .unwrap();
    v1.execute(
        "INSERT INTO recipients VALUES (?1, '2026-01-01T00:00:00Z')",
        [&recipient],
    )
    .unwrap();
    let mut v1 = v1;
    let plain = v1.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let sealed = vault::testing::encrypt_vec(&[recipient], &plain).unwrap();
    fs::write(env.file(), &sealed).unwrap();
    // Never seen signed on this machine, as a vault kept since version 1.
    fs::remove_file(env.dir.join("trusted.json")).unwrap();
    for args in [
        &["secret", "set", "empty", "K=w"][..],
        &["secret", "set", "db", "PW=w"],
        &["secret", "rename", "empty", "other"],
    ] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("is damaged: secret `empty` has no keys")
            .stderr_has("`vault doctor`")
            .lacks("history row")
            .lacks("SENTINEL-VALUE");
        assert_eq!(fs::read(env.file()).unwrap(), sealed, "{args:?}");
    }
    env.vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("secret `empty` has no keys");
}
