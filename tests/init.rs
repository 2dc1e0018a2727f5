//! `vault init` and where files live.

use std::{fs, os::unix::fs::PermissionsExt};

use crate::support::*;

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_with_identity_file_makes_no_identity_age() {
    let env = Env::new().init();
    assert!(env.file().exists());
    assert!(!env.dir.join("identity.age").exists());
    assert_eq!(mode(&env.dir), 0o700);
    assert_eq!(mode(&env.file()), 0o600);
}

#[test]
fn init_with_passphrase_makes_identity_age() {
    let env = Env::with_passphrase("correct horse").init();
    let id = env.dir.join("identity.age");
    assert!(id.exists());
    assert_eq!(mode(&id), 0o600);
    assert!(
        fs::read_to_string(&id)
            .unwrap()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    );
    env.create("db", &["A=1"]);
    env.vault(["secret", "list"])
        .run()
        .success()
        .stdout_has("db");
}

#[test]
fn init_refuses_an_existing_vault() {
    let env = Env::new().init();
    let before = fs::read(env.file()).unwrap();
    env.vault(["init"])
        .run()
        .fails(1)
        .stderr_has("already exists");
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

#[test]
fn init_without_any_source_and_no_terminal_fails_at_once() {
    let mut env = Env::new();
    env.identity = None;
    let start = std::time::Instant::now();
    env.vault(["init"])
        .run()
        .fails(1)
        .stderr_has("no terminal to ask for the passphrase of a new identity")
        .stderr_has("VAULT_PASSPHRASE_FILE")
        .stderr_has("VAULT_IDENTITY=key.txt vault init")
        .lacks("the vault is locked");
    assert!(start.elapsed().as_secs() < 5, "must never hang");
    assert!(!env.dir.join("identity.age").exists());
}

/// Only `init`, `secret create`, `generate` and `import` make a missing
/// vault. A change to one that does not exist (a typo in `--vault`, a new
/// machine) is "no vault at …", as a read is: `recipients add` made a new
/// vault for the recipient, and `secret set` a new identity.age (asking a
/// new passphrase twice on a terminal) before it said "no secret named".
#[test]
fn changes_to_a_missing_vault_create_nothing() {
    let env = Env::with_passphrase("pw");
    let member = "age1rp0wv74rqpsp9wdl0m0c353sz9zh80maff2tyvj30d5etssd3vmqdlpfff";
    let changes: &[&[&str]] = &[
        &["secret", "set", "db", "A=1"],
        &["secret", "unset", "db", "A"],
        &["secret", "rename", "db", "db2"],
        &["secret", "delete", "db", "--yes"],
        &["secret", "describe", "db", "A", "text"],
        &["secret", "copy", "db", "--to-env", "prod"],
        &["secret", "rollback", "db"],
        &["recipients", "add", member],
        &["recipients", "remove", member],
    ];
    for args in changes {
        env.vault(*args)
            .run()
            .fails(1)
            .stderr_has(&format!("no vault at {}", env.file().display()));
        assert!(
            !env.dir.exists() || fs::read_dir(&env.dir).unwrap().next().is_none(),
            "{args:?} left {:?}",
            fs::read_dir(&env.dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect::<Vec<_>>()
        );
    }
    // A team vault named by a path that does not exist: nothing beside it.
    let env = env.init();
    let team = env.path("repo/team.vault");
    fs::create_dir_all(team.parent().unwrap()).unwrap();
    for args in changes {
        env.vault(*args)
            .env("VAULT_FILE", &team)
            .run()
            .fails(1)
            .stderr_has("no vault at");
        assert_eq!(
            fs::read_dir(team.parent().unwrap()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    // `delete --allow-missing` finds nothing to delete, as in a vault
    // without the name: success, and still nothing created or asked.
    let fresh = Env::with_passphrase("pw");
    fresh
        .vault(["secret", "delete", "db", "--allow-missing"])
        .run()
        .success()
        .stderr_has("No secret deleted: `db` does not exist");
    assert!(!fresh.dir.exists() || fs::read_dir(&fresh.dir).unwrap().next().is_none());
    // A first write still makes the vault.
    env.vault(["secret", "generate", "db", "A"])
        .env("VAULT_FILE", &team)
        .run()
        .success();
    assert!(team.exists());
}

#[test]
fn vault_passphrase_variable_works() {
    let mut env = Env::bare_for_tests();
    env.passfile = None;
    env.vault(["init"])
        .env("VAULT_PASSPHRASE", "pw")
        .run()
        .success();
    env.vault(["secret", "create", "a", "K=v"])
        .env("VAULT_PASSPHRASE", "pw")
        .run()
        .success();
    env.vault(["secret", "list"])
        .env("VAULT_PASSPHRASE", "nope")
        .run()
        .fails(1)
        .stderr_has("wrong passphrase");
}

/// A `VAULT_PASSPHRASE` that is not UTF-8 was ignored as if unset (a
/// prompt, or "no terminal"): it is an error naming the variable, never
/// showing its bytes, for `init` as for an unlock.
#[test]
fn a_vault_passphrase_that_is_not_utf8_is_an_error() {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
    let mut env = Env::bare_for_tests();
    env.passfile = None;
    let bad = OsStr::from_bytes(b"pw-SENTINEL\xff");
    let check = |args: &[&str]| {
        env.vault(args)
            .env("VAULT_PASSPHRASE", bad)
            .run()
            .fails(1)
            .stderr_has("VAULT_PASSPHRASE is not valid UTF-8")
            .stderr_has("hint: ")
            .lacks("SENTINEL")
            .lacks("no terminal");
    };
    check(&["init"]);
    assert!(!env.dir.join("identity.age").exists());
    env.vault(["init"])
        .env("VAULT_PASSPHRASE", "pw")
        .run()
        .success();
    check(&["secret", "list"]);
    check(&["secret", "create", "a", "K=v"]);
}

#[test]
fn world_readable_passphrase_file_is_refused() {
    let env = Env::with_passphrase("pw");
    let p = env.passfile.clone().unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    env.vault(["init"])
        .run()
        .fails(1)
        .stderr_has("is not private: its group and others can read it (mode 0644)")
        .stderr_has("chmod 600");
    assert!(!env.dir.join("identity.age").exists());
}

#[test]
fn vault_file_flag_puts_vault_and_lock_elsewhere() {
    let env = Env::new();
    let team = env.path("repo/secrets.vault");
    fs::create_dir_all(team.parent().unwrap()).unwrap();
    env.vault(["init", "--vault"])
        .arg_path(&team)
        .run()
        .success();
    env.vault(["secret", "create", "t", "A=1", "--vault"])
        .arg_path(&team)
        .run()
        .success();
    assert!(team.exists());
    assert!(env.path("repo/secrets.vault.lock").exists());
    assert!(!env.file().exists(), "the personal vault is untouched");
    env.vault(["secret", "list"])
        .env("VAULT_FILE", &team)
        .run()
        .success()
        .stdout_has("t ");
}

#[test]
fn modes_hold_for_an_unprivileged_user() {
    // Root ignores modes, so run the binary as `nobody` in a directory it owns.
    if !is_root() || !have("setpriv") {
        return;
    }
    let env = Env::new();
    let work = env.path("nobody");
    fs::create_dir_all(&work).unwrap();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let key = work.join("key.txt");
    write_identity(&key);
    std::process::Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&work)
        .status()
        .unwrap();
    let dir = work.join("vault");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(BIN)
        .args(["secret", "create", "db", "A=1"])
        .env_clear()
        .env("VAULT_DIR", &dir)
        .env("VAULT_IDENTITY", &key)
        .env("HOME", &work)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("vault.age")), 0o600);
    assert_eq!(mode(&dir.join("vault.lock")), 0o600);
    assert_eq!(fs::metadata(&dir).unwrap().uid_of(), 65534);
}

trait Uid {
    fn uid_of(&self) -> u32;
}

impl Uid for fs::Metadata {
    fn uid_of(&self) -> u32 {
        std::os::unix::fs::MetadataExt::uid(self)
    }
}
