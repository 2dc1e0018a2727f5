//! `vault doctor`: its checks, in the documented order, each problem with
//! its fix.

use std::{fs, os::unix::fs::PermissionsExt};

use crate::support::*;

#[test]
fn doctor_finds_and_explains_problems() {
    let env = Env::new().init();
    env.create("a", &["K=v"]);
    env.vault(["doctor"])
        .run()
        .success()
        .stdout_has("All good.")
        .stdout_has("integrity_check");
    fs::set_permissions(env.file(), fs::Permissions::from_mode(0o644)).unwrap();
    let stray = env.dir.join(".vault.age.Zz9.tmp");
    fs::write(&stray, b"x").unwrap();
    let out = env
        .vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("mode 0644; it should be 0600")
        .stdout_has(&format!("fix: chmod 600 {}", env.file().display()))
        .stdout_has("fix: the next write removes them")
        .stderr_has("2 problem(s) found");
    // The checks come in the documented order.
    let order = [
        "mode",
        "lock",
        "agent",
        "decrypts",
        "integrity_check",
        "schema version",
        "temporary",
        "identity",
    ];
    let mut at = 0;
    for word in order {
        let found = out.stdout[at..]
            .find(word)
            .unwrap_or_else(|| panic!("{word} after {at}: {}", out.stdout));
        at += found;
    }
    // A damaged vault is reported with its fix.
    fs::write(env.file(), b"garbage").unwrap();
    env.vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("cannot open the vault")
        .stdout_has("fix:");
}
