//! Messages that were wrong or unclear (an audit of the binary,
//! 2026-12-08): each test pins what a user now reads, and the exit code.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    process::Stdio,
    time::{Duration, Instant},
};

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

/// Runs `args` with a stdin that is never written to nor closed, and
/// returns its output, or panics when it waited on that stdin.
fn without_waiting_on_stdin(env: &Env, args: &[&str]) -> Out {
    let mut cmd = env.vault(args).cmd;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let held = child.stdin.take();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`vault {}` waited on stdin", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    let o = child.wait_with_output().unwrap();
    Out::from(o)
}

/// `secret create x A=1 B` read all of stdin for `B` before it found that
/// `x` exists (or that a later key is invalid): it now checks first.
#[test]
fn create_refuses_before_it_reads_stdin() {
    let env = Env::new().init();
    env.create("x", &["A=1"]);
    without_waiting_on_stdin(&env, &["secret", "create", "x", "A=1", "B"])
        .fails(1)
        .stderr_has("a secret named `x` already exists");
    without_waiting_on_stdin(&env, &["secret", "create", "y", "B", "bad-key=v"])
        .fails(1)
        .stderr_has("KEY[=VALUE] argument 2: invalid key");
    // --force still replaces, reading the value from stdin.
    env.vault(["secret", "create", "x", "B", "--force"])
        .stdin("two\n")
        .run()
        .success();
    assert_eq!(export_value(&env, "x", "B"), "two");
}

/// `vault import -` with an empty stdin said "- holds no variables".
#[test]
fn stdin_is_called_stdin_in_import_messages() {
    let env = Env::new().init();
    env.vault(["import", "-", "--name", "n"])
        .stdin("")
        .run()
        .fails(1)
        .stderr_has("vault: error: stdin holds no variables");
    let out = env
        .vault(["import", "-", "--name", "n", "--dry-run"])
        .stdin("A=vault://db/A\n")
        .run()
        .success()
        .stderr_has("stdin: `A` is a vault:// reference");
    assert!(!out.stderr.contains("-: "), "{out:?}");
}

/// `--from-json /dev/full` (a device that reads as endless zeros) said
/// "larger than 256 MiB"; a device is now named as one.
#[test]
fn a_device_as_an_input_file_is_named_as_one() {
    let env = Env::new().init();
    for dev in ["/dev/full", "/dev/null"] {
        let out = env
            .vault(["import", "--from-json", dev])
            .run()
            .fails(1)
            .stderr_has(&format!("{dev} is a device, not a file"));
        assert!(!out.stderr.contains("MiB"), "{out:?}");
    }
    // A regular file that is too large still says so, without reading it.
    let big = env.path("big.json");
    fs::File::create(&big)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    env.vault(["import", "--from-json"])
        .arg_path(&big)
        .run()
        .fails(1)
        .stderr_has("is larger than 256 MiB");
}

/// Key names in `run --require`, `--local-env` and `--as-file` errors were
/// printed whole (thousands of characters); they are shortened as other
/// messages shorten names.
#[test]
fn long_key_names_are_shortened_in_run_errors() {
    let env = Env::new().init();
    let key = "K".repeat(300);
    for args in [
        vec!["run", "--require", &key, "--", "true"],
        vec!["run", "--local-env", &key, "--", "true"],
        vec!["run", "--as-file", &key, "--", "true"],
        vec!["run", "--as-file", &key, "--as-file", &key, "--", "true"],
    ] {
        let out = env.vault(&args).run().fails(1).stderr_has("…");
        assert!(!out.stderr.contains(&key), "{out:?}");
    }
    // The "did you mean" of --require too.
    let set = format!("{key}A=1");
    let wanted = format!("{key}B");
    let out = env
        .vault(["run", "--set", &set, "--require", &wanted, "--", "true"])
        .run()
        .fails(1)
        .stderr_has("did you mean");
    assert!(!out.stderr.contains(&key), "{out:?}");
}

/// The environment-name hint left out "starting with a letter or digit",
/// which the secret-name hint states and both checks enforce.
#[test]
fn environment_name_hint_states_the_first_character_rule() {
    let env = Env::new().init();
    env.vault(["-e", "_x", "secret", "list"])
        .run()
        .fails(1)
        .stderr_has("`_x` is not a valid environment name")
        .stderr_has(
            "hint: an environment name is like a secret name: 1-64 characters of letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        );
}

/// `vault render` of a `vault://` reference with no vault suggested
/// `vault secret list`, which fails the same way; it now gives the hint
/// every command gives for a missing vault.
#[test]
fn render_without_a_vault_suggests_init() {
    let env = Env::new();
    let t = env.write("t.tmpl", "x={{ vault://db/A }}\n");
    let out = env
        .vault(["render"])
        .arg_path(&t)
        .run()
        .fails(1)
        .stderr_has("t.tmpl, line 1: no vault at ")
        .stderr_has("hint: create it with `vault init`");
    assert!(!out.stderr.contains("secret list"), "{out:?}");
    // A missing key names the command that lists the keys.
    let env = env.init();
    env.create("db", &["B=1"]);
    env.vault(["render"])
        .arg_path(&t)
        .run()
        .fails(1)
        .stderr_has("secret `db` has no key `A`")
        .stderr_has("hint: `vault secret show db` lists its keys");
}

/// A group-writable passphrase file (0620) was "readable by other users";
/// the message now says what the mode lets others do.
#[test]
fn a_loose_passphrase_file_says_what_others_can_do() {
    let env = Env::with_passphrase("pw").init();
    let pass = env.passfile.clone().unwrap();
    for (mode, said) in [
        (0o620, "is not private: its group can write it (mode 0620)"),
        (0o604, "is not private: others can read it (mode 0604)"),
        (
            0o644,
            "is not private: its group and others can read it (mode 0644)",
        ),
    ] {
        fs::set_permissions(&pass, fs::Permissions::from_mode(mode)).unwrap();
        let out = env
            .vault(["secret", "list"])
            .run()
            .fails(1)
            .stderr_has(said)
            .stderr_has("hint: chmod 600 ");
        if mode == 0o620 {
            assert!(!out.stderr.contains("readable"), "{out:?}");
        }
    }
}
