//! Many `vault` processes at once: no lost update, no torn value, readers
//! never blocked or shown half a write, and a writer that waits too long
//! for the lock gives up clearly (DESIGN.md invariant 4).

use std::{
    fs,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::support::*;

/// About 10 KB, different for every writer, so that a torn mix of two
/// writes cannot equal any one of them.
fn writer_value(i: usize) -> String {
    let unit = format!("writer-{i:02}:");
    unit.repeat(10_000 / unit.len())
}

/// Twenty concurrent `secret set` on one key leave exactly one writer's
/// whole value; readers (`secret list`, `export`) looping meanwhile all
/// succeed and only ever see whole values.
#[test]
fn twenty_writers_on_one_secret_and_readers_meanwhile() {
    let env = Arc::new(Env::new().init());
    let initial = writer_value(99);
    env.vault(["secret", "create", "s", "V"])
        .stdin(&initial)
        .run()
        .success();
    env.create("other", &["K=v"]);
    let values: Arc<Vec<String>> = Arc::new((0..20).map(writer_value).collect());
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (env, values, done, reads) =
                (env.clone(), values.clone(), done.clone(), reads.clone());
            let initial = initial.clone();
            thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if r == 0 {
                        env.vault(["secret", "list"])
                            .run()
                            .success()
                            .stdout_has("other");
                    } else {
                        let out = env
                            .vault(["export", "s", "--format", "json"])
                            .run()
                            .success();
                        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                        let seen = v["V"].as_str().unwrap();
                        assert!(
                            seen == initial || values.iter().any(|w| w == seen),
                            "a reader saw a value no writer wrote"
                        );
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let writers: Vec<_> = values
        .iter()
        .map(|v| env.vault(["secret", "set", "s", "V"]).stdin(v).spawn())
        .collect();
    for w in writers {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let last = export_value(&env, "s", "V");
    let winners: Vec<usize> = (0..20).filter(|&i| values[i] == last).collect();
    assert_eq!(winners.len(), 1, "the final value is no single writer's");
    let reads = reads.load(Ordering::Relaxed);
    assert!(reads >= 2, "the readers hardly ran: {reads}");
    assert!(vault::testing::stale_temps(&env.file()).is_empty());
    eprintln!(
        "concurrency: 20 writers on one secret in {} ms, writer {} won whole; {reads} reads meanwhile, all succeeded",
        took.as_millis(),
        winners[0]
    );
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
    assert!(vault::testing::stale_temps(&env.file()).is_empty());
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
