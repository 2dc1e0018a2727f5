//! Recovery without `vault`: the vault file and identity.age open with the
//! stock `age` and `sqlite3` tools, exactly as the README shows.

use std::{fs, process::Command};

use crate::support::*;

const CANARY: &str = "CANARY-c4f7e1-do-not-leak";

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
    assert!(
        dump.contains("INSERT INTO secrets VALUES(1,'main','db'"),
        "{dump}"
    );
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
