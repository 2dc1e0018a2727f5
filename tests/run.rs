//! `vault run` / `vault exec` / `vault shell` (issue 3): sources merged in
//! command-line order, a child that *is* the `vault` process, the caller's
//! umask and core limit, exit codes, and every check that stops a command
//! before it runs.

use std::{
    fs,
    io::Read,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::Command,
};

use proptest::prelude::*;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::support::*;

/// The child prints `$X` and nothing else.
const PRINT_X: [&str; 4] = ["--", "sh", "-c", "printf %s \"$X\""];

/// A user with a vault holding `a` (X=from-a) and `b` (X=from-b).
fn two_secrets() -> Env {
    let env = Env::new().init();
    env.create("a", &["X=from-a"]);
    env.create("b", &["X=from-b"]);
    env
}

/// Creates `name` from a JSON object written with serde_json: values never
/// pass through argv and may hold anything.
fn create_json(env: &Env, name: &str, object: &serde_json::Value) {
    let path = env.write(&format!("{name}.json"), serde_json::to_vec(object).unwrap());
    env.vault(["secret", "create", name, "--force", "--from-json"])
        .arg_path(&path)
        .run()
        .success();
}

/// Sets the umask and soft core limit the test (the "caller") runs `vault`
/// with, and an 8 MiB stack limit so exec's argument limit is 2 MiB.
pub(crate) fn as_caller(mut cmd: Cmd) -> Cmd {
    let hard = getrlimit(Resource::Core).maximum;
    let stack_hard = getrlimit(Resource::Stack).maximum;
    // SAFETY: umask and setrlimit are async-signal-safe and allocate nothing.
    unsafe {
        cmd.cmd.pre_exec(move || {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            let core = Some(hard.map_or(1 << 20, |h| h.min(1 << 20)));
            setrlimit(
                Resource::Core,
                Rlimit {
                    current: core,
                    maximum: hard,
                },
            )?;
            let stack = Some(stack_hard.map_or(8 << 20, |h| h.min(8 << 20)));
            setrlimit(
                Resource::Stack,
                Rlimit {
                    current: stack,
                    maximum: stack_hard,
                },
            )?;
            Ok(())
        });
    }
    cmd
}

/// Every ordered pair of source kinds: the later one wins.
#[test]
fn later_source_wins_for_every_pair_of_kinds() {
    let env = Env::new().init();
    env.create("s", &["X=from-secret"]);
    let dotenv = env.write("x.env", "X=from-dotenv\n");
    let dotenv_arg = format!("--dotenv={}", dotenv.display());
    let kinds: [(&str, Vec<String>); 4] = [
        ("from-secret", vec!["-s".into(), "s".into()]),
        ("from-dotenv", vec![dotenv_arg]),
        ("from-set", vec!["--set".into(), "X=from-set".into()]),
        ("from-local", vec!["--local-env".into(), "X".into()]),
    ];
    for (first_value, first) in &kinds {
        for (second_value, second) in &kinds {
            if first_value == second_value {
                continue;
            }
            let out = env
                .vault(["run"])
                .env("X", "from-local")
                .args(first)
                .args(second)
                .args(PRINT_X)
                .run()
                .success();
            assert_eq!(out.stdout, *second_value, "{first:?} then {second:?}");
        }
    }
}

#[test]
fn interleaved_kinds_keep_their_order() {
    let env = two_secrets();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "X=1", "-s", "a", "--set", "X=2"], "2"),
        (&["-s", "a", "--set", "X=1", "-s", "b"], "from-b"),
        (&["-s", "b", "-s", "a"], "from-a"),
        (
            &["--set=X=1", "--secret", "b", "--set", "X=3", "-s", "a"],
            "from-a",
        ),
    ];
    for (args, want) in cases {
        let out = env
            .vault(["exec"])
            .args(*args)
            .args(PRINT_X)
            .run()
            .success();
        assert_eq!(out.stdout, *want, "{args:?}");
    }
}

#[test]
fn sources_override_inherited_unless_no_override() {
    let env = two_secrets();
    let out = env
        .vault(["run", "-s", "a"])
        .env("X", "inherited")
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "from-a");
    let out = env
        .vault(["run", "--no-override", "-s", "a", "--set", "Y=y"])
        .env("X", "inherited")
        .args(["--", "sh", "-c", "printf '%s %s' \"$X\" \"$Y\""])
        .run()
        .success();
    assert_eq!(
        out.stdout, "inherited y",
        "inherited wins, new keys still come"
    );
}

/// `exec`, not spawn: the child has `vault`'s pid, and its parent is ours.
#[test]
fn run_replaces_the_vault_process() {
    let env = Env::new();
    let mut child = env
        .vault(["run", "--", "sh", "-c", "echo $$ $PPID"])
        .spawn();
    let vault_pid = child.id();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        out.trim(),
        format!("{vault_pid} {}", std::process::id()),
        "the command must be vault's process, a child of the caller"
    );
}

#[test]
fn exit_status_and_signals_are_the_childs() {
    let env = Env::new();
    let out = env.vault(["run", "--", "sh", "-c", "exit 42"]).run();
    assert_eq!(out.code, Some(42), "{out:#?}");
    let out = env.vault(["run", "--", "sh", "-c", "kill -TERM $$"]).run();
    assert_eq!(out.signal, Some(15), "{out:#?}");
    assert_eq!(out.code, None);
}

#[test]
fn not_found_is_127_and_not_executable_126() {
    let env = Env::new();
    env.vault(["run", "--", "no-such-command-3f9a"])
        .run()
        .fails(127)
        .stderr_has("vault: error: command not found: `no-such-command-3f9a`");
    env.vault(["run", "--", "./missing/file"])
        .run()
        .fails(127)
        .stderr_has("no such file");
    let script = env.write("script.sh", "#!/bin/sh\necho ran\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let dir = env.path("adir");
    fs::create_dir(&dir).unwrap();
    for target in [&script, &dir] {
        let out = env.vault(["run", "--"]).arg_path(target).run().fails(126);
        assert!(out.stdout.is_empty());
        assert_eq!(one_error_line(&out), 1, "{out:#?}");
        assert!(out.stderr.starts_with("vault: error: cannot execute"));
    }
}

/// A script whose `#!` interpreter is missing is found but cannot run: 126,
/// saying so, by path or by name on the PATH the command gets.
#[test]
fn missing_interpreter_is_126() {
    let env = Env::new();
    let bin = env.path("bin");
    fs::create_dir(&bin).unwrap();
    let script = env.write("bin/bad-interp", "#!/nonexistent/interpreter\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    env.vault(["run", "--"])
        .arg_path(&script)
        .run()
        .fails(126)
        .stderr_has("interpreter");
    env.vault(["run", "--set"])
        .arg(format!("PATH={}", bin.display()))
        .args(["--", "bad-interp"])
        .run()
        .fails(126)
        .stderr_has("`bad-interp`: the interpreter");
}

/// A file the kernel will not execute (no `#!` line, random bytes) is
/// never handed to `/bin/sh` as glibc's `execvp` would: 126, saying why,
/// by path, by name on the PATH, and under `--redact`; the script's
/// commands never run. A name on the PATH is looked for past a directory
/// where a file of that name is not executable, as execvp does.
#[test]
fn a_file_that_is_no_program_is_126_and_never_run_by_a_shell() {
    let env = Env::new();
    let bin = env.path("bin");
    fs::create_dir(&bin).unwrap();
    let marker = env.path("ran");
    let script = env.write(
        "bin/no-shebang",
        format!("touch '{}'\necho ran\n", marker.display()),
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let junk = env.path("bin/junk");
    fs::write(
        &junk,
        [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0xff, 0xfe, b')', b'('],
    )
    .unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("PATH={}", bin.display());
    for (how, args) in [
        ("by path", vec![script.display().to_string()]),
        ("by path", vec![junk.display().to_string()]),
        (
            "by name",
            vec![
                "--set".into(),
                path.clone(),
                "--".into(),
                "no-shebang".into(),
            ],
        ),
        (
            "redacted",
            vec!["--redact".into(), "--".into(), script.display().to_string()],
        ),
    ] {
        let mut cmd = env.vault(["run"]);
        if !args.contains(&"--".to_string()) {
            cmd = cmd.arg("--");
        }
        let out = cmd.args(&args).run().fails(126);
        assert!(out.stdout.is_empty(), "{how}: {out:#?}");
        assert_eq!(one_error_line(&out), 1, "{how}: {out:#?}");
        assert!(out.stderr.contains("no `#!` line"), "{how}: {}", out.stderr);
        assert!(!marker.exists(), "{how}: a shell ran the file");
    }
    // Found past an earlier PATH entry holding a non-executable namesake.
    let first = env.path("first");
    fs::create_dir(&first).unwrap();
    let shadow = env.write("first/hello-3f9a", "#!/bin/sh\necho shadow\n");
    fs::set_permissions(&shadow, fs::Permissions::from_mode(0o644)).unwrap();
    let real = env.write("bin/hello-3f9a", "#!/bin/sh\necho real\n");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .vault(["run", "--set"])
        .arg(format!("PATH={}:{}", first.display(), bin.display()))
        .args(["--", "hello-3f9a"])
        .run()
        .success();
    assert_eq!(out.stdout, "real\n");
    // Only the namesake that cannot run: permission denied, 126.
    env.vault(["run", "--set"])
        .arg(format!("PATH={}", first.display()))
        .args(["--", "hello-3f9a"])
        .run()
        .fails(126)
        .stderr_has("permission denied");
}

/// The command starts with the signal state a shell gives it: nothing
/// blocked, SIGPIPE not ignored (Rust ignores it in `vault` itself, and an
/// ignored signal stays ignored across exec).
#[test]
fn the_command_gets_no_ignored_or_blocked_signals() {
    let env = Env::new();
    let out = env
        .vault([
            "run",
            "--",
            "grep",
            "-E",
            "^Sig(Blk|Ign)",
            "/proc/self/status",
        ])
        .run()
        .success();
    let mask = |name: &str| {
        let line = out.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk"), 0, "{}", out.stdout);
    // Bit n-1 is signal n; SIGPIPE is 13. (What the test runner itself
    // ignores, glibc's internal signal 32 here, is inherited as it is.)
    assert_eq!(mask("SigIgn") & (1 << 12), 0, "{}", out.stdout);
}

fn one_error_line(out: &Out) -> usize {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("vault: error:"))
        .count()
}

/// argv reaches the command exactly, never through a shell: spaces, quotes,
/// globs, `$HOME`, empty and leading-dash arguments, a second `--`.
#[test]
fn argv_is_passed_exactly() {
    let env = Env::new();
    env.write("glob-bait.txt", "");
    let args = [
        "two words",
        "'single'",
        "\"double\"",
        "*",
        "$HOME",
        "",
        "-x",
        "--set",
        "--",
        "back\\slash",
        "new\nline",
        "é 数据",
    ];
    let out = env
        .vault(["run", "--", "sh", "-c", "printf '%s\\0' \"$@\"", "sh"])
        .args(args)
        .run()
        .success();
    let got: Vec<&[u8]> = out.raw_stdout.split(|b| *b == 0).collect();
    let want: Vec<&[u8]> = args
        .iter()
        .map(|a| a.as_bytes())
        .chain([&b""[..]])
        .collect();
    assert_eq!(got, want);
}

#[test]
fn vault_passphrase_is_never_passed_on() {
    let env = Env::new().init();
    let out = env
        .vault(["run", "--", "env"])
        .env("VAULT_PASSPHRASE", "hunter2-passphrase")
        .env("VAULT_OTHER", "kept")
        .run()
        .success();
    assert!(!out.stdout.contains("VAULT_PASSPHRASE"), "{}", out.stdout);
    assert!(out.stdout.contains("VAULT_OTHER=kept"));
    assert!(
        out.stdout.contains("VAULT_DIR="),
        "other VAULT_* pass through"
    );
    env.vault(["run", "--local-env", "VAULT_PASSPHRASE", "--", "true"])
        .env("VAULT_PASSPHRASE", "hunter2-passphrase")
        .run()
        .fails(1)
        .lacks("hunter2");
    env.create("nested", &["VAULT_PASSPHRASE=hunter3"]);
    env.vault(["run", "-s", "nested", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("`VAULT_PASSPHRASE`")
        .lacks("hunter3");
}

#[test]
fn clean_env_keeps_only_the_allowlist() {
    let env = Env::new().init();
    env.create("s", &["FROM_SECRET=yes"]);
    let out = env
        .vault([
            "run",
            "--clean-env",
            "-s",
            "s",
            "--set",
            "FROM_SET=1",
            "--",
            "env",
            "-0",
        ])
        .env("LC_CTYPE", "C.UTF-8")
        .env("TZ", "UTC")
        .env("TMPDIR", "/tmp")
        .env("TERM", "dumb")
        .env("AWS_PROFILE", "prod")
        .env("VAULT_OTHER", "x")
        .run()
        .success();
    let mut names: Vec<&str> = out
        .stdout
        .split('\0')
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('=').unwrap().0)
        .collect();
    names.sort();
    let allowed = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "TMPDIR",
    ];
    for n in &names {
        assert!(
            allowed.contains(n) || n.starts_with("LC_") || n.starts_with("FROM_"),
            "{n} leaked through --clean-env: {names:?}"
        );
    }
    for n in [
        "FROM_SECRET",
        "FROM_SET",
        "HOME",
        "PATH",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "TERM",
    ] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
}

/// The child gets the umask and soft core limit `vault` was started with,
/// not `vault`'s hardened 077 and 0 (the caller's values here are raised,
/// so a child that got vault's would show it).
#[test]
fn child_gets_the_callers_umask_and_core_limit() {
    let env = Env::new();
    let probe = ["sh", "-c", "umask; ulimit -c"];
    let caller = as_caller(env.vault(["run", "--"]).args(probe))
        .run()
        .success();
    let mut direct = Command::new(probe[0]);
    direct.args(&probe[1..]);
    let hard = getrlimit(Resource::Core).maximum;
    // SAFETY: as in `as_caller`.
    unsafe {
        direct.pre_exec(move || {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            let core = Some(hard.map_or(1 << 20, |h| h.min(1 << 20)));
            setrlimit(
                Resource::Core,
                Rlimit {
                    current: core,
                    maximum: hard,
                },
            )?;
            Ok(())
        });
    }
    let direct = String::from_utf8(direct.output().unwrap().stdout).unwrap();
    assert_eq!(caller.stdout, direct);
    let lines: Vec<&str> = direct.lines().collect();
    assert_eq!(lines[0], "0022");
    assert_ne!(
        lines[1], "0",
        "the caller's core limit must be raised to prove anything"
    );
}

/// vault ignores SIGPIPE (Rust does) and handles SIGXFSZ; the child must
/// start with the caller's dispositions and signal mask, not ours. Only the
/// standard signals 1-31 are compared: 32 and up are glibc's own, and how
/// they look depends on how the test spawns (fork or posix_spawn).
#[test]
fn child_gets_the_callers_signal_dispositions() {
    fn masks(status: &[u8]) -> Vec<(String, u64)> {
        String::from_utf8_lossy(status)
            .lines()
            .filter_map(|l| l.split_once(":\t"))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    u64::from_str_radix(v, 16).unwrap() & 0x7fff_ffff,
                )
            })
            .collect()
    }
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let env = Env::new();
    let probe = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"];
    let via_vault = env.vault(["run", "--"]).args(probe).run().success();
    let direct = Command::new(probe[0]).args(&probe[1..]).output().unwrap();
    let (via_vault, direct) = (masks(&via_vault.raw_stdout), masks(&direct.stdout));
    assert_eq!(via_vault.len(), 2);
    assert_eq!(via_vault, direct);
    let sigpipe = 1 << (13 - 1);
    assert_eq!(
        direct[1].1 & sigpipe,
        0,
        "the caller does not ignore SIGPIPE"
    );
}

#[test]
fn require_names_every_missing_key() {
    let env = Env::new().init();
    env.create("db", &["PGHOST=h"]);
    let ran = env.path("ran");
    let touch = format!("touch {}", ran.display());
    let out = env
        .vault([
            "run",
            "-s",
            "db",
            "--require",
            "PGHOST",
            "--require",
            "PGUSER",
        ])
        .args(["--require", "PGPASSWORD", "--", "sh", "-c", &touch])
        .run()
        .fails(1)
        .stderr_has("missing required keys: `PGUSER`, `PGPASSWORD`")
        .stderr_has("add a source that sets them (");
    assert!(!out.stderr.contains("`PGHOST`"));
    assert!(!ran.exists(), "nothing runs");
    env.vault([
        "run",
        "-s",
        "db",
        "--require",
        "PGHOST",
        "--require",
        "HOME",
    ])
    .args(["--", "true"])
    .run()
    .success();
    env.vault(["run", "--require", "not-a-key", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("invalid key");
}

#[test]
fn explain_shows_sources_masked_and_runs_nothing() {
    let env = two_secrets();
    env.create("db", &["PGPASSWORD=pw-SENTINEL"]);
    let dotenv = env.write("proj/.env", "X=dotenv-SENTINEL\n");
    let ran = env.path("ran");
    let touch = format!("touch {}", ran.display());
    let out = env
        .vault([
            "run",
            "-s",
            "a",
            "-s",
            "db",
            "--dotenv",
            "--set",
            "X=set-SENTINEL",
        ])
        .args(["--explain", "--", "sh", "-c", &touch])
        .env("X", "inherited-SENTINEL")
        .current_dir(env.path("proj"))
        .run()
        .success()
        .lacks("SENTINEL");
    assert!(!ran.exists(), "--explain runs nothing");
    let want = format!(
        "KEY         VALUE     SOURCE     OVERRIDES\n\
         PGPASSWORD  ********  secret:db  -\n\
         X           ********  set        inherited, secret:a, dotenv:{}\n",
        dotenv.display()
    );
    assert_eq!(out.stdout, want);

    let out = env
        .vault([
            "run",
            "-s",
            "a",
            "--set",
            "X=2",
            "-s",
            "db",
            "--explain",
            "--json",
        ])
        .run()
        .success()
        .lacks("pw-SENTINEL");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"key": "PGPASSWORD", "source": "secret:db", "overridden": []},
            {"key": "X", "source": "set", "overridden": ["secret:a"]},
        ])
    );
    // --no-override: the inherited value wins and says so.
    let out = env
        .vault(["run", "--no-override", "-s", "a", "--explain", "--json"])
        .env("X", "inherited")
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"key": "X", "source": "inherited", "overridden": ["secret:a"]}])
    );
    env.vault(["run", "-s", "a", "--json", "--", "true"])
        .run()
        .fails(2);
}

#[test]
fn conflicts_error_fails_before_running() {
    let env = two_secrets();
    env.create("same", &["X=from-a"]);
    env.vault([
        "run",
        "-s",
        "a",
        "-s",
        "b",
        "--conflicts=error",
        "--",
        "true",
    ])
    .run()
    .fails(1)
    .stderr_has("`X` (secret:a, secret:b)")
    .lacks("from-");
    env.vault(["run", "-s", "a", "-s", "same", "--conflicts", "error"])
        .args(PRINT_X)
        .run()
        .success();
    let out = env
        .vault(["run", "-s", "a", "-s", "b", "--conflicts=override"])
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "from-b");
}

#[test]
fn dotenv_paths_bare_directory_and_missing() {
    let env = Env::new();
    env.write("proj/.env", "X=nearest\n");
    env.write("proj/other.env", "X=named\n");
    fs::create_dir_all(env.path("proj/sub/deeper")).unwrap();
    // Bare: the nearest .env from the current directory upward.
    let out = env
        .vault(["run", "--dotenv"])
        .args(PRINT_X)
        .current_dir(env.path("proj/sub/deeper"))
        .run()
        .success();
    assert_eq!(out.stdout, "nearest");
    // Both spellings, a file and a directory to start from.
    for args in [vec!["--dotenv", "other.env"], vec!["--dotenv=other.env"]] {
        let out = env
            .vault(["run"])
            .args(args)
            .args(PRINT_X)
            .current_dir(env.path("proj"))
            .run()
            .success();
        assert_eq!(out.stdout, "named");
    }
    let out = env
        .vault(["run", "--dotenv", "proj/sub"])
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "nearest");
    env.vault(["run", "--dotenv=proj/nope.env", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("no dotenv file at proj/nope.env");
}

/// `$NAME` in a `--dotenv` file resolves against the environment built so
/// far (DESIGN.md, dotenv).
#[test]
fn dotenv_expands_against_the_sources_before_it() {
    let env = Env::new().init();
    env.create("db", &["PGHOST=db.internal"]);
    let f = env.write("x.env", "X=postgres://${PGHOST}/app\n");
    let out = env
        .vault(["run", "-s", "db", "--dotenv"])
        .arg_path(&f)
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "postgres://db.internal/app");
}

#[test]
fn local_env_must_be_set() {
    let env = Env::new();
    env.vault(["run", "--local-env", "NOT_SET_ANYWHERE_7c1", "--", "true"])
        .env_remove("NOT_SET_ANYWHERE_7c1")
        .run()
        .fails(1)
        .stderr_has("`NOT_SET_ANYWHERE_7c1`");
    let out = env
        .vault(["run", "--clean-env", "--local-env", "X"])
        .env("X", "kept despite clean-env")
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "kept despite clean-env");
}

#[test]
fn unknown_secret_suggests_the_closest() {
    let env = Env::new().init();
    env.create("db-prod", &["K=v"]);
    let ran = env.path("ran");
    env.vault(["run", "-s", "db-prd", "--", "touch"])
        .arg_path(&ran)
        .run()
        .fails(1)
        .stderr_has("no secret named `db-prd`")
        .stderr_has("did you mean `db-prod`");
    assert!(!ran.exists());
    env.vault(["run", "-s", "bad name", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("invalid secret name");
}

/// Without `--secret` the vault is not opened at all: no vault, or an
/// unreadable one, does not matter.
#[test]
fn no_secret_no_vault() {
    let env = Env::new();
    assert!(!env.file().exists());
    let out = env
        .vault(["run", "--set", "X=no vault needed"])
        .args(PRINT_X)
        .run()
        .success();
    assert_eq!(out.stdout, "no vault needed");
    let env = Env::new().init();
    fs::write(env.file(), b"not an age file").unwrap();
    env.vault(["run", "--set", "X=1"])
        .args(PRINT_X)
        .run()
        .success();
    env.vault(["run", "-s", "a", "--", "true"]).run().fails(1);
}

/// An environment too large to exec is refused before trying, in one line
/// with its size; one that fits still runs.
#[test]
fn too_large_environment_is_refused_with_its_size() {
    let env = Env::new().init();
    let value = "v".repeat(100_000);
    let big: serde_json::Map<String, serde_json::Value> = (0..26)
        .map(|i| (format!("BIG_{i}"), value.clone().into()))
        .collect();
    create_json(&env, "big", &big.into());
    let fits: serde_json::Map<String, serde_json::Value> = (0..18)
        .map(|i| (format!("FITS_{i}"), value.clone().into()))
        .collect();
    create_json(&env, "fits", &fits.into());

    let out = as_caller(env.vault(["run", "-s", "big", "--", "true"]))
        .run()
        .fails(1)
        .stderr_has("too large")
        .lacks("vvvvvvvv");
    let size: u64 = out
        .stderr
        .split_whitespace()
        .find_map(|w| w.parse().ok().filter(|n| *n > 2_600_000))
        .unwrap_or_else(|| panic!("no size in {}", out.stderr));
    assert!(size < 2_700_000, "{size}");
    as_caller(env.vault(["run", "-s", "fits", "--", "true"]))
        .run()
        .success();
}

#[test]
fn no_command_is_a_usage_error() {
    let env = Env::new().init();
    env.create("a", &["X=1"]);
    env.vault(["run", "-s", "a"]).run().fails(2);
    env.vault(["run", "-s", "a", "--"]).run().fails(2);
    env.vault(["run", "-s", "a", "true"]).run().fails(2);
    env.vault(["exec", "-s", "a"]).run().fails(2);
}

/// `vault shell` execs `$SHELL` with the merged environment; without
/// `$SHELL`, `/bin/sh` (which here reads its commands from stdin).
#[test]
fn shell_execs_the_users_shell() {
    let env = two_secrets();
    let shell = env.write("myshell", "#!/bin/sh\nprintf '%s|%s' \"$0\" \"$X\"\n");
    fs::set_permissions(&shell, fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .vault(["shell", "-s", "a", "--set", "Y=1"])
        .env("SHELL", &shell)
        .run()
        .success();
    assert_eq!(out.stdout, format!("{}|from-a", shell.display()));
    let out = env
        .vault(["shell", "-s", "b"])
        .env_remove("SHELL")
        .stdin("printf %s \"$X\"")
        .run()
        .success();
    assert_eq!(out.stdout, "from-b");
    env.vault(["shell", "-s", "nope"]).run().fails(1);
}

/// A `SHELL` that a secret or a dotenv file sets is a value from the
/// vault: when it cannot be started, the error names the variable, never
/// the value (127 or 126 as the shell's would be).
#[test]
fn a_shell_set_by_a_source_is_not_shown_when_it_fails() {
    let env = Env::new().init();
    let canary = "/bin/CANARY-9d2e41-shell";
    env.create("shx", &[&format!("SHELL={canary}")]);
    let dotenv = env.write("shell.env", format!("SHELL={canary}\n"));
    for args in [
        vec!["shell".to_string(), "-s".into(), "shx".into()],
        vec![
            "shell".into(),
            "--dotenv".into(),
            dotenv.display().to_string(),
        ],
    ] {
        let out = env.vault(&args).run().fails(127);
        assert!(!out.stderr.contains("CANARY"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("`SHELL`"), "{}", out.stderr);
    }
    // An inherited SHELL is the user's own: named as before.
    let out = env
        .vault(["shell", "-s", "shx", "--no-override"])
        .env("SHELL", "/nonexistent/user-shell")
        .run()
        .fails(127);
    assert!(
        out.stderr.contains("/nonexistent/user-shell"),
        "{}",
        out.stderr
    );
}

/// Writing a secret that sets a variable which changes how programs start
/// warns, by name (the value is not shown).
#[test]
fn dangerous_names_warn_when_written() {
    let env = Env::new().init();
    env.vault([
        "secret",
        "create",
        "d",
        "LD_PRELOAD=/tmp/evil-SENTINEL.so",
        "OK=1",
    ])
    .run()
    .success()
    .stderr_has("vault: warning: `LD_PRELOAD`")
    .lacks("SENTINEL");
    env.vault([
        "secret",
        "set",
        "d",
        "NODE_OPTIONS=--require=/x-SENTINEL.js",
    ])
    .run()
    .success()
    .stderr_has("vault: warning: `NODE_OPTIONS`")
    .lacks("SENTINEL");
    let out = env
        .vault(["secret", "set", "d", "PGHOST=h"])
        .run()
        .success();
    assert!(!out.stderr.contains("warning"), "{out:#?}");
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\\x00]{0,40}",
        "[ \\n\\t\\r'\"$`\\\\#=*?~{}()a-zé数-]{0,40}",
    ]
}

/// Any valid value (no NUL) reaches the child byte for byte, through a
/// stored secret (written as JSON) and through `--set`.
#[test]
fn any_value_reaches_the_child_unchanged() {
    let env = Env::new().init();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(value_strategy(), value_strategy()), |(stored, set)| {
            create_json(&env, "p", &serde_json::json!({ "V": stored }));
            let out = env
                .vault(["run", "-s", "p", &format!("--set=W={set}")])
                .args(["--", "sh", "-c", "printf '%s\\0%s' \"$V\" \"$W\""])
                .run()
                .success();
            let want = [stored.as_bytes(), b"\0", set.as_bytes()].concat();
            prop_assert_eq!(out.raw_stdout, want);
            Ok(())
        })
        .unwrap();
}
