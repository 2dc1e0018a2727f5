//! `kill -9` in the middle of writes (issue 5): `secret set` and
//! `recipients add` on a 20 MB vault, `passwd` on identity.age. After every
//! kill the file opens and holds the old state or the new one. The harness
//! is tests/support/crash.rs; RELIABILITY.md records the figures each test
//! prints (`cargo test --test integration crash -- --nocapture`).

use std::cell::Cell;

use crate::support::crash::*;
use crate::support::*;

/// `kill -9` at random points of `secret set` on a 20 MB vault: after
/// every kill the vault opens and holds the old value or the new one.
#[test]
fn crash_during_secret_set() {
    let env = Env::new().init();
    let size = big_vault(&env);
    let op = CrashOp {
        name: "secret set",
        target: env.file(),
        command: Box::new(|i| env.vault(["secret", "set", "s123", &format!("K0=value-{i}")])),
        observe: Box::new(|_| export_value(&env, "s123", "K0")),
        next: Box::new(|_, i| format!("value-{i}")),
        untouched: vec![],
        about: format!("on a {:.1} MB vault", size as f64 / 1e6),
        loops: 50,
    };
    crash_loops(&op);
}

/// The same for `recipients add`, which re-encrypts the whole vault to a
/// longer list.
#[test]
fn crash_during_recipients_add() {
    let env = Env::new().init();
    let size = big_vault(&env);
    let others: Vec<String> = (0..60)
        .map(|i| write_identity(&env.path(&format!("r{i}.txt"))))
        .collect();
    let op = CrashOp {
        name: "recipients add",
        target: env.file(),
        command: Box::new(|i| env.vault(["recipients", "add", &others[i]])),
        observe: Box::new(|_| {
            let out = env.vault(["recipients", "list", "--json"]).run().success();
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let list: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["recipient"].as_str().unwrap())
                .collect();
            list.join(",")
        }),
        next: Box::new(|old, i| format!("{old},{}", others[i])),
        untouched: vec![],
        about: format!("on a {:.1} MB vault", size as f64 / 1e6),
        loops: 50,
    };
    crash_loops(&op);
}

/// `vault passwd` rewrites only identity.age: after every kill it opens
/// with the old passphrase or the new one, and vault.age is untouched.
#[test]
fn crash_during_passwd() {
    let env = Env::with_passphrase("pass-0").init();
    env.create("db", &["K=v"]);
    let passfile = |i: usize| {
        let f = env.path(&format!("pass-{i}.txt"));
        if !f.exists() {
            write_private(&f, format!("pass-{i}\n").as_bytes());
        }
        f
    };
    let current = Cell::new(0usize);
    let op = CrashOp {
        name: "passwd",
        target: env.dir.join("identity.age"),
        command: Box::new(|i| {
            env.vault(["passwd", "--new-passphrase-file"])
                .arg_path(&passfile(i))
                .env("VAULT_PASSPHRASE_FILE", passfile(current.get()))
        }),
        observe: Box::new(|i| {
            // The passphrase that opens it now: the last one that did, or
            // loop i's.
            for k in [current.get(), i] {
                let out = env
                    .vault(["secret", "list"])
                    .env("VAULT_PASSPHRASE_FILE", passfile(k))
                    .run();
                if out.code == Some(0) {
                    current.set(k);
                    return format!("pass-{k}");
                }
            }
            panic!("identity.age opens with neither the old nor the new passphrase");
        }),
        next: Box::new(|_, i| format!("pass-{i}")),
        untouched: vec![env.file()],
        about: "of identity.age".into(),
        loops: 50,
    };
    crash_loops(&op);
}
