//! Writes are whole or not at all (DESIGN.md invariants 3 and 5): stale
//! temp files from a crash are removed by the next write, and a write that
//! cannot finish (the file-size limit, a stand-in for a full disk) leaves
//! the old file; strace shows each write's fsyncs in their order. Killed
//! writes: tests/crash.rs.

use std::{fs, path::Path};

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
    let out = env
        .vault(["secret", "set", "a", &big])
        .file_size_limit(limit)
        .run();
    assert_eq!(out.signal, None, "killed by a signal: {out:?}");
    out.fails(1).stderr_has("cannot write");
    assert_eq!(fs::read(env.file()).unwrap(), before);
    assert!(vault::testing::stale_temps(&env.file()).is_empty());
}

/// Invariant 3: Writes are atomic *and durable*: the new ciphertext goes to
/// a temporary file beside the vault, which is written in full and
/// fsynced, then renamed over `vault.age`, and then the directory is
/// fsynced. Without the first fsync a crash after the rename can leave a
/// `vault.age` of zeros or of no length (the rename reached the disk, the
/// data did not); without the second the rename itself may be lost, and
/// the old vault comes back after a power cut. Neither shows in a `kill
/// -9` test (the page cache survives it), so strace watches the calls:
/// for the first write (`init`, a new directory entry) and later ones.
#[test]
fn a_write_fsyncs_the_temp_file_before_the_rename_and_the_directory_after() {
    if !have("strace") {
        return;
    }
    let env = Env::new();
    let log = env.path("strace.log");
    let trace = "trace=fsync,fdatasync,rename,renameat,renameat2,write,pwrite64,writev";
    for args in [
        &["init"][..],
        &["secret", "create", "a", "K=v"],
        &["secret", "set", "a", "K=w"],
    ] {
        env.vault(args).under_strace(trace, &log).run().success();
        let calls = calls(&fs::read_to_string(&log).unwrap());
        assert_durable(&calls, &env.dir, "vault.age", args);
    }
    assert_eq!(export_value(&env, "a", "K"), "w");
}

/// Panics unless `calls` (one command's strace) replace `dir/name` by a
/// rename from a temp file `dir/.name.XXXXXX.tmp` that was written, then
/// fsynced (no write to it after that), and the directory fsynced after
/// the rename.
#[track_caller]
fn assert_durable(calls: &[String], dir: &Path, name: &str, what: &[&str]) {
    // Paths as vault passes them (the rename's), and as strace's `-y`
    // shows a descriptor's (resolved).
    let real = fs::canonicalize(dir).unwrap().display().to_string();
    let dir = dir.display().to_string();
    let target = format!("{dir}/{name}");
    let temp_prefix = format!("{dir}/.{name}.");
    let (at, temp) = calls
        .iter()
        .enumerate()
        .find_map(|(i, c)| {
            if !c.starts_with("rename") || !succeeded(c) {
                return None;
            }
            let quoted: Vec<&str> = c.split('"').skip(1).step_by(2).collect();
            match quoted[..] {
                [from, to]
                    if to == target && from.starts_with(&temp_prefix) && from.ends_with(".tmp") =>
                {
                    Some((i, from.to_string()))
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("{what:?}: no rename of a temp file onto {target}: {calls:#?}"));
    let on_temp = format!("<{real}/{}>", temp.rsplit('/').next().unwrap());
    let is_sync = |c: &str| c.starts_with("fsync(") || c.starts_with("fdatasync(");
    let is_write = |c: &str| {
        ["write(", "pwrite64(", "writev("]
            .iter()
            .any(|w| c.starts_with(w))
    };
    let synced = calls[..at]
        .iter()
        .rposition(|c| is_sync(c) && c.contains(&on_temp) && succeeded(c))
        .unwrap_or_else(|| panic!("{what:?}: {temp} is not fsynced before its rename: {calls:#?}"));
    let written = calls[..at]
        .iter()
        .rposition(|c| is_write(c) && c.contains(&on_temp))
        .unwrap_or_else(|| panic!("{what:?}: nothing written to {temp}: {calls:#?}"));
    assert!(
        written < synced,
        "{what:?}: {temp} is written after its fsync: {calls:#?}"
    );
    let on_dir = format!("<{real}>)");
    assert!(
        calls[at + 1..]
            .iter()
            .any(|c| is_sync(c) && c.contains(&on_dir) && succeeded(c)),
        "{what:?}: {dir} is not fsynced after the rename: {calls:#?}"
    );
}

/// Whether a (joined) strace call returned 0 or more.
fn succeeded(call: &str) -> bool {
    call.rsplit_once(" = ").is_some_and(|(_, r)| {
        r.split_whitespace()
            .next()
            .is_some_and(|n| n.parse::<i64>().is_ok_and(|n| n >= 0))
    })
}

/// The calls of an `strace -f` log in order, without the pid, a call that
/// another thread interrupted (`<unfinished ...>` ... `<... fsync
/// resumed>`) joined into one line where it began.
fn calls(log: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut open: Vec<(String, usize)> = vec![];
    for line in log.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if let Some(rest) = call.strip_prefix("<... ") {
            if let Some(i) = open.iter().position(|(p, _)| p == pid) {
                let (_, at) = open.remove(i);
                let tail = rest.split_once("resumed>").map_or(rest, |(_, t)| t);
                out[at].push_str(tail);
            }
            continue;
        }
        if let Some(head) = call.strip_suffix(" <unfinished ...>") {
            open.push((pid.to_string(), out.len()));
            out.push(head.to_string());
        } else {
            out.push(call.to_string());
        }
    }
    out
}
