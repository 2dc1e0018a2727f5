//! Messages that were wrong or unclear (an audit of the binary,
//! 2026-12-08): each test pins what a user now reads, and the exit code.

use std::fs;

use crate::support::*;

/// `project init -s "a b"` cited "vault.toml, line 6" of a file it never
/// wrote; a bad name given to it is now named by its option, as `run -s`
/// names one, and nothing is written.
#[test]
fn project_init_names_a_bad_argument_by_its_option() {
    let env = Env::new().init();
    let dir = env.path("proj");
    fs::create_dir_all(&dir).unwrap();
    for (args, said) in [
        (&["-s", "a b"][..], "--secret: invalid secret name `a b`"),
        (
            &["-s", "prod/a b"][..],
            "--secret: invalid secret name `a b`",
        ),
        (&["--require", "a b"][..], "--require: invalid key `a b`"),
        (&["--dotenv", ""][..], "--dotenv: an empty path"),
    ] {
        let out = env
            .vault(["project", "init"])
            .args(args)
            .current_dir(&dir)
            .run()
            .fails(1)
            .stderr_has(said);
        assert!(!out.stderr.contains("line"), "{out:?}");
        assert!(!dir.join("vault.toml").exists());
    }
}

/// A vault directory whose agent socket cannot fit in `sun_path` (108
/// bytes), with no runtime directory: no agent can run there, so `status`
/// says "locked" and `lock` has nothing to stop; both exited 1. `unlock`,
/// which needs the socket, says why in one line.
#[test]
fn no_place_for_the_agent_socket_means_no_agent() {
    let env = Env::with_passphrase("pw");
    let long = env.path(&format!("{}/v", "d".repeat(100)));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    let vault = |args: &[&str]| {
        env.vault(args)
            .env("VAULT_DIR", &long)
            .env_remove("XDG_RUNTIME_DIR")
    };
    vault(&["init"]).run().success();
    vault(&["status"])
        .run()
        .success()
        .stdout_has("state:    locked");
    vault(&["status", "--json"])
        .run()
        .success()
        .stdout_has("\"unlocked\": false");
    vault(&["lock"])
        .run()
        .success()
        .stderr_has("Already locked: no agent is running");
    vault(&["unlock"])
        .run()
        .fails(1)
        .stderr_has("no agent can run for ")
        .stderr_has("longer than the 107 bytes a Unix socket path may have")
        .stderr_has("hint: set XDG_RUNTIME_DIR to a short private directory");
    // A warning for doctor, not a problem: the vault itself is fine.
    vault(&["doctor"])
        .run()
        .success()
        .stdout_has("WARNING  no agent can run for ");
}
