//! DESIGN.md's invariants, each with a test that fails if it breaks.

use std::{
    fs,
    os::unix::process::CommandExt,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::support::*;

const CANARY: &str = "CANARY-c4f7e1-do-not-leak";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Invariant 1: Plaintext never touches the disk: after a session that creates,
/// changes and deletes a canary, no file anywhere under the test's HOME and
/// vault directory holds it.
#[test]
fn no_canary_in_any_file() {
    let env = Env::new().init();
    env.vault(["secret", "create", "c", "TOKEN"])
        .stdin(CANARY)
        .run()
        .success();
    env.vault(["secret", "set", "c", &format!("OTHER={CANARY}-2")])
        .run()
        .success();
    env.vault(["secret", "show", "c", "--reveal"])
        .run()
        .success();
    env.vault(["secret", "list"]).run().success();
    for f in env.all_files() {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, CANARY),
            "{} holds the canary",
            f.display()
        );
    }
    assert!(
        contains(&env.plaintext(), CANARY),
        "the canary is in the vault"
    );
}

/// Invariant 2: Deleted means gone: the decrypted database no longer holds the bytes.
#[test]
fn deleted_canary_is_gone_from_the_database() {
    let env = Env::new().init();
    env.create("keep", &["K=v"]);
    env.vault(["secret", "create", "gone", "TOKEN"])
        .stdin(CANARY)
        .run()
        .success();
    env.vault(["secret", "create", "partly", "A=1", "B"])
        .stdin(format!("{CANARY}-B"))
        .run()
        .success();
    assert!(contains(&env.plaintext(), CANARY));
    env.vault(["secret", "delete", "gone", "--yes"])
        .run()
        .success();
    env.vault(["secret", "unset", "partly", "B"])
        .run()
        .success();
    assert!(!contains(&env.plaintext(), CANARY));
}

/// Recovery with stock tools, exactly as the README shows.
#[test]
fn recovery_with_stock_age_and_sqlite3() {
    if !have("age") || !have("sqlite3") {
        return;
    }
    let env = Env::new().init();
    env.vault(["secret", "create", "db", "PGPASSWORD"])
        .stdin(CANARY)
        .run()
        .success();
    let db = env.path("vault.db");
    let st = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(env.identity.as_ref().unwrap())
        .arg("-o")
        .arg(&db)
        .arg(env.file())
        .status()
        .unwrap();
    assert!(st.success());
    let dump = Command::new("sqlite3")
        .arg(&db)
        .arg(".dump")
        .output()
        .unwrap();
    let dump = String::from_utf8(dump.stdout).unwrap();
    assert!(dump.contains("INSERT INTO secrets VALUES(1,'db'"), "{dump}");
    assert!(dump.contains(CANARY));
}

/// identity.age opens with stock `age -d` and the passphrase (typed on a
/// terminal, which `expect` provides).
#[test]
fn identity_age_opens_with_stock_age() {
    if !have("age") || !have("expect") {
        return;
    }
    let env = Env::with_passphrase("stock tools work").init();
    let key = env.path("key.txt");
    let script = format!(
        "set timeout 20\nspawn age -d -o {} {}\nexpect -re {{(?i)passphrase}}\nsleep 0.3\nsend \"stock tools work\\r\"\nexpect eof\n",
        key.display(),
        env.dir.join("identity.age").display()
    );
    let st = Command::new("expect")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let text = fs::read_to_string(&key).unwrap();
    assert!(text.contains("AGE-SECRET-KEY-1"));
    // That key opens the vault with stock age.
    let out = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg(env.file())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
}

/// The passphrase prompts, driven through a pseudo-terminal.
#[test]
fn passphrase_prompt_on_a_terminal() {
    if !have("expect") {
        return;
    }
    let env = Env::bare_for_tests();
    let bin = BIN;
    let run = |script: String| {
        Command::new("expect")
            .arg("-c")
            .arg(format!("set timeout 30\n{script}"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", &env.home)
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_SCRYPT_WORK_FACTOR", "10")
            .output()
            .unwrap()
    };
    // Two different passphrases: refused, nothing created.
    let o = run(format!(
        "spawn {bin} init\nexpect \"New passphrase\"\nsleep 0.3\nsend \"one\\r\"\nexpect \"Repeat\"\nsleep 0.3\nsend \"two\\r\"\nexpect \"differ\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!env.dir.join("identity.age").exists());
    // The same one twice: created. Input is not echoed.
    let o = run(format!(
        "spawn {bin} init\nexpect \"New passphrase\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect \"Repeat\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("typed secret\r\n"),
        "echoed: {o:?}"
    );
    // The bare KEY's value is asked (hidden) first, then the passphrase, once.
    let o = run(format!(
        "spawn {bin} secret create db PGPASSWORD\nexpect \"Value for PGPASSWORD\"\nsleep 0.3\nsend \"{CANARY}\\r\"\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(CANARY),
        "value echoed: {o:?}"
    );
    let o = run(format!(
        "spawn {bin} secret show db --reveal\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"typed secret\\r\"\nexpect eof\n"
    ));
    assert!(String::from_utf8_lossy(&o.stdout).contains(CANARY), "{o:?}");
    let o = run(format!(
        "spawn {bin} secret list\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"wrong\\r\"\nexpect \"wrong passphrase\"\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
    ));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

/// Invariant 4: No lost updates: 50 concurrent creates with distinct names leave 50
/// secrets, on an existing vault and on a missing one (which also races to
/// create the directory, the identity and the vault file).
fn fifty_writers(env: &Env) {
    let children: Vec<_> = (0..50)
        .map(|i| {
            env.vault(["secret", "create", &format!("s{i:02}"), &format!("K=v{i}")])
                .spawn()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = env.vault(["secret", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 50, "{}", out.stdout);
    assert!(vault::fsio::stale_temps(&env.file()).is_empty());
}

#[test]
fn fifty_concurrent_creates_on_an_existing_vault() {
    fifty_writers(&Env::new().init());
}

#[test]
fn fifty_concurrent_creates_on_a_missing_vault() {
    fifty_writers(&Env::new());
}

#[test]
fn fifty_concurrent_creates_on_a_missing_vault_and_identity() {
    let env = Env::with_passphrase("race");
    fifty_writers(&env);
    assert!(env.dir.join("identity.age").exists());
}

/// Invariant 4: A writer that waits more than 10 s for the lock fails clearly, while
/// readers, which take no lock, keep working.
#[test]
fn writer_gives_up_after_ten_seconds_readers_carry_on() {
    let env = Env::new().init();
    env.create("a", &["K=v"]);
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(env.dir.join("vault.lock"))
        .unwrap();
    lock.lock().unwrap();
    let start = Instant::now();
    let reader = env.vault(["secret", "list"]).run().success();
    assert!(reader.stdout.contains('a'));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "readers take no lock"
    );
    let before = fs::read(env.file()).unwrap();
    env.vault(["secret", "set", "a", "K=w"])
        .run()
        .fails(1)
        .stderr_has("for more than 10 s");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    assert_eq!(fs::read(env.file()).unwrap(), before);
    drop(lock);
    env.vault(["secret", "set", "a", "K=w"]).run().success();
}

/// Invariant 3: Stale temp files from a crash are cleaned up by the next write.
#[test]
fn stale_temp_files_are_removed_by_the_next_write() {
    let env = Env::new().init();
    let stale = env.dir.join(".vault.age.XyZ123.tmp");
    fs::write(&stale, b"half a vault").unwrap();
    env.vault(["secret", "list"]).run().success();
    assert!(stale.exists(), "readers leave it (a writer may own it)");
    env.create("a", &["K=v"]);
    assert!(!stale.exists());
}

/// Invariant 5: A write past the file-size limit (a stand-in for a full disk) exits 1
/// and leaves the old file: SIGXFSZ is handled, not fatal.
#[test]
fn file_size_limit_fails_cleanly() {
    let env = Env::new().init();
    env.create("a", &["K=v"]);
    let before = fs::read(env.file()).unwrap();
    let limit = (before.len() / 2) as u64;
    let big = format!("BIG={}", "x".repeat(100_000));
    let mut c = env.vault(["secret", "set", "a", &big]);
    unsafe {
        c.cmd.pre_exec(move || {
            rustix::process::setrlimit(
                rustix::process::Resource::Fsize,
                rustix::process::Rlimit {
                    current: Some(limit),
                    maximum: Some(limit),
                },
            )?;
            Ok(())
        });
    }
    let out = c.run();
    assert_eq!(out.signal, None, "killed by a signal: {out:?}");
    out.fails(1).stderr_has("cannot write");
    assert_eq!(fs::read(env.file()).unwrap(), before);
    assert!(vault::fsio::stale_temps(&env.file()).is_empty());
}

/// Invariant 7: The process is hardened: a `vault` waiting on stdin shows umask 077,
/// a soft core limit of 0 (hard limit untouched) and is not dumpable.
#[test]
fn running_process_is_hardened() {
    let env = Env::new().init();
    let mut c = env.vault(["secret", "create", "x", "K"]);
    unsafe {
        c.cmd.pre_exec(|| {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            rustix::process::setrlimit(
                rustix::process::Resource::Core,
                rustix::process::Rlimit {
                    current: Some(1 << 20),
                    maximum: None,
                },
            )?;
            Ok(())
        });
    }
    c.cmd.stdin(std::process::Stdio::piped());
    c.cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.cmd.spawn().unwrap();
    let pid = child.id();
    thread::sleep(Duration::from_millis(300));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(status.contains("Umask:\t0077"), "{status}");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(fields[4], "0", "soft limit: {core}");
    assert_eq!(fields[5], "unlimited", "hard limit untouched: {core}");
}
