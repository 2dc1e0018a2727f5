//! Writes are whole or not at all (DESIGN.md invariants 3 and 5): stale
//! temp files from a crash are removed by the next write, and a write that
//! cannot finish (the file-size limit, a stand-in for a full disk) leaves
//! the old file. Killed writes: tests/crash.rs.

use std::{fs, os::unix::process::CommandExt};

use crate::support::*;

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
    assert!(vault::testing::stale_temps(&env.file()).is_empty());
}
