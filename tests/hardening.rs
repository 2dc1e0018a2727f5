//! The running process is hardened (DESIGN.md invariant 7): umask, core
//! limit, not dumpable, as /proc shows them.

use std::{fs, os::unix::process::CommandExt, thread, time::Duration};

use crate::support::*;

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
