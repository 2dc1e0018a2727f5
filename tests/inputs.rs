//! Inputs that are unusual but valid: pipes that do have a writer (`<(cmd)`
//! process substitution, a FIFO written a moment later), and a dotenv file
//! of 100,000 lines, which imports, and whose environment is then too large
//! for `vault run` to exec. The malformed inputs are the bad-input
//! catalogue's (tests/badinput.rs, tests/cmd/).

use std::{
    fs,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use crate::support::*;

fn mkfifo(path: &std::path::Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// A pipe with a writer is a legitimate input: `<(cmd)` process
/// substitution, and a named pipe whose writer comes a moment later.
#[test]
fn fifos_with_a_writer_work() {
    let env = Env::new().init();
    if have("bash") {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{BIN} import --name sub <(sleep 0.3; printf 'A=from-a-pipe\\n') && {BIN} secret create j --from-json <(printf '{{\"J\": \"j\"}}')"
            ))
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let fifo = env.path("fifo");
    mkfifo(&fifo);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            fs::write(fifo, "B=from-a-fifo\n").unwrap();
        })
    };
    env.vault(["import", "--name", "fifo"])
        .arg_path(&fifo)
        .run()
        .success();
    writer.join().unwrap();
    let out = env
        .vault(["export", "fifo", "--format", "json"])
        .run()
        .success();
    assert!(out.stdout.contains("from-a-fifo"), "{out:?}");
}

/// A dotenv file of 100,000 lines is valid and imports, in one secret.
fn hundred_thousand_lines(env: &Env) -> PathBuf {
    let mut text = String::with_capacity(5 << 20);
    for i in 0..100_000 {
        text.push_str(&format!("KEY_{i:06}=value-{i:06}-{}\n", "v".repeat(24)));
    }
    env.write("huge/.env", text)
}

#[test]
fn a_dotenv_file_of_100k_lines_imports() {
    let env = Env::new().init();
    let file = hundred_thousand_lines(&env);
    let start = Instant::now();
    env.vault(["import", "--name", "huge"])
        .arg_path(&file)
        .run()
        .success();
    let took = start.elapsed();
    let out = env.vault(["secret", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["keys"], 100_000);
    eprintln!(
        "bad input: a dotenv file of 100,000 lines imports in {} ms",
        took.as_millis()
    );
}

/// ... and `vault run` on it, whose environment is too large to exec
/// (about 4 MB, past Linux's 2 MB for argv plus environment), says so in
/// one line and exits 1.
#[test]
fn run_with_an_environment_too_large_to_exec() {
    let env = Env::new().init();
    let file = hundred_thousand_lines(&env);
    env.vault(["import", "--name", "huge"])
        .arg_path(&file)
        .run()
        .success();
    env.vault(["run", "-s", "huge", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("too large")
        .lacks("value-000001");
}

/// An environment variable set but empty is one not set, as for most
/// tools (`VAULT_ENV= vault run …` to step out of a project's setting):
/// `VAULT_FILE=` was a usage error about a `--vault` no one typed.
#[test]
fn an_empty_vault_variable_is_an_unset_one() {
    let env = Env::with_passphrase("pw").init();
    env.vault(["secret", "create", "db", "K=v"]).run().success();
    for var in [
        "VAULT_DIR",
        "VAULT_FILE",
        "VAULT_IDENTITY",
        "VAULT_ENV",
        "VAULT_PASSPHRASE_FILE",
    ] {
        let out = env.vault(["secret", "list"]).env(var, "");
        let out = if var == "VAULT_PASSPHRASE_FILE" {
            // Without it there is no passphrase: the error is that, not
            // a usage error about --passphrase-file.
            out.run().fails(1)
        } else {
            let out = out.run().success();
            assert!(out.stdout.contains("db"), "{var}: {}", out.stdout);
            out
        };
        assert!(
            !out.stderr.contains("a value is required"),
            "{var}: {}",
            out.stderr
        );
    }
    // The option given on the command line still wins.
    env.vault(["--vault", "elsewhere.age", "secret", "list"])
        .env("VAULT_FILE", "")
        .run()
        .fails(1)
        .stderr_has("elsewhere.age");
}
