//! Hardening. First the running process (DESIGN.md invariant 7): umask,
//! core limit, not dumpable, as /proc shows them. Then issue 14, DESIGN
//! "v2: Hardening": each test performs the attack or the mistake an
//! adversarial review found and shows it refused, named, or harmless,
//! grouped as the issue numbers them.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt, symlink},
    path::Path,
    process::{Command, Stdio},
};

use crate::support::*;

use std::{os::unix::process::CommandExt, thread, time::Duration};

trait StdoutIs {
    fn stdout_is(self, want: &str) -> Out;
}

impl StdoutIs for Out {
    #[track_caller]
    fn stdout_is(self, want: &str) -> Out {
        assert_eq!(self.stdout, want, "{self:#?}");
        self
    }
}

/// Replaces `env`'s vault with its own database changed by `sql`, run
/// directly on the plaintext (no validation on the way), encrypted to the
/// same recipient: what a teammate, or anyone who knows a public
/// recipient, can write.
fn forge(env: &Env, sql: &str) {
    let plain = env.plaintext();
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &plain[..], plain.len(), false)
        .unwrap();
    conn.execute_batch(sql).unwrap();
    let hostile = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let recipient = env.vault(["recipient"]).run().success().stdout;
    let sealed = vault::testing::encrypt_vec(&[recipient.trim().to_string()], &hostile).unwrap();
    fs::write(env.file(), sealed).unwrap();
}

/// The directory of the binary under test, for scripts that call `vault`.
fn path_with_vault() -> String {
    let bin_dir = Path::new(BIN).parent().unwrap();
    format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap())
}

/// `COMPREPLY` after bash completes `words` (the last one being typed).
fn bash_complete(env: &Env, words: &str, cword: usize) -> (Vec<String>, std::process::Output) {
    let script = env.vault(["completions", "bash"]).run().success().stdout;
    let script = env.write("vault.bash", script);
    let probe = format!(
        "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _vault_with_secrets; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(probe)
        .current_dir(env.tmp.path())
        .env("PATH", path_with_vault())
        .env("HOME", &env.home)
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (words, out)
}

// ---- The process

/// Invariant 7: The process is hardened: a `vault` waiting on stdin shows umask 077
/// and a soft core limit of 0 (hard limit untouched). Not dumpable: the
/// next test.
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

/// Who runs the processes of `long_lived_processes_are_not_dumpable`:
/// `nobody` when the tests run as root, else the test's own user. An agent
/// started is stopped when this is dropped.
enum NotRoot {
    Nobody(Nobody),
    Me(Env),
}

impl NotRoot {
    fn uid(&self) -> u32 {
        match self {
            NotRoot::Nobody(n) => fs::metadata(&n.home).unwrap().uid(),
            NotRoot::Me(_) => rustix::process::geteuid().as_raw(),
        }
    }

    /// `vault ARGS` as this user.
    fn vault(&self, args: &[&str]) -> Command {
        match self {
            NotRoot::Nobody(n) => n.command(args),
            NotRoot::Me(env) => env.vault(args).cmd,
        }
    }

    /// `PROGRAM ARGS` (not vault) as this user.
    fn other(&self, program: &str, args: &[&str]) -> Command {
        match self {
            NotRoot::Nobody(n) => n.command_of(program, args),
            NotRoot::Me(_) => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        }
    }
}

impl Drop for NotRoot {
    fn drop(&mut self) {
        if let NotRoot::Me(env) = self {
            let _ = env.vault(["lock"]).run();
        }
    }
}

/// A filter reading a pipe this test holds open: it runs until `end`
/// closes the pipe, and is killed if the test fails first.
struct Filter {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Filter {
    fn spawn(mut c: Command) -> Filter {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        Filter { child, stdout }
    }

    /// Writes `line` and reads back what the filter made of it: once it
    /// has answered, it runs its loop (a vault has opened the vault and
    /// hardened itself long before).
    fn echo(&mut self, line: &str) -> String {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut back = String::new();
        self.stdout.read_line(&mut back).unwrap();
        back.trim_end().to_string()
    }

    /// The owner of its `/proc/PID/status`.
    fn proc_owner(&self) -> u32 {
        proc_owner(self.child.id())
    }

    fn end(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        self.child.wait().unwrap()
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The owner of `/proc/PID/status`: root's for a process that is not
/// dumpable, whoever runs it.
fn proc_owner(pid: u32) -> u32 {
    fs::metadata(format!("/proc/{pid}/status")).unwrap().uid()
}

/// Invariant 7, "not dumpable": every long-lived `vault` process, each of
/// which holds key material or values, has `PR_SET_DUMPABLE` 0, so that
/// no core dump, `ptrace` or `/proc/PID/mem` read by another process of
/// the same user reaches its memory. /proc shows it from outside: the
/// kernel gives a non-dumpable process's `/proc/PID` files to root. So
/// each runs as a user other than root (`nobody` through setpriv when the
/// tests run as root, else the test's own user), and once it is at work
/// its `/proc/PID/status` must be root's: `vault redact` filtering a pipe
/// (after it masked a line), `vault run --redact`, which stays as its
/// command's parent (after a line went through the command and it), and
/// the agent (`vault unlock`, after it answered). The control: a `cat`
/// run the same way keeps its user's files, so the check can tell.
#[test]
fn long_lived_processes_are_not_dumpable() {
    let user = if is_root() {
        if !have("setpriv") {
            return;
        }
        NotRoot::Nobody(Nobody::new())
    } else {
        NotRoot::Me(Env::with_passphrase("pw"))
    };
    let uid = user.uid();
    assert_ne!(uid, 0);
    let ok = |mut c: Command| {
        let o = c.stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        o
    };
    ok(user.vault(&["init"]));
    ok(user.vault(&["secret", "create", "x", "TOKEN=not-dumpable"]));

    let mut cat = Filter::spawn(user.other("cat", &[]));
    assert_eq!(cat.echo("plain"), "plain");
    assert_eq!(cat.proc_owner(), uid, "the control");
    assert!(cat.end().success());

    for args in [
        &["redact", "-s", "x"][..],
        &["run", "--redact=always", "-s", "x", "--", "cat"],
    ] {
        let mut p = Filter::spawn(user.vault(args));
        assert_eq!(p.echo("token not-dumpable"), "token ********", "{args:?}");
        let owner = p.proc_owner();
        assert_eq!(
            owner, 0,
            "{args:?} is dumpable (its files are uid {owner}'s)"
        );
        assert!(p.end().success(), "{args:?}");
    }

    ok(user.vault(&["unlock", "--timeout", "2m"]));
    let status = ok(user.vault(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["unlocked"], true, "{v}");
    let agent = v["agent_pid"].as_u64().expect("an agent pid") as u32;
    let owner = proc_owner(agent);
    assert_eq!(
        owner, 0,
        "the agent is dumpable (its files are uid {owner}'s)"
    );
}

// ---- 1. Completion never lets the shell expand stored names

/// A stored name `d$(touch${IFS}PWNED)` created the file on TAB: the bash
/// script passed names to `compgen -W`, which expands `$(…)`.
#[test]
fn bash_completion_never_runs_a_stored_name() {
    if !have("bash") {
        return;
    }
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    env.create("dx", &["K=v"]);
    forge(
        &env,
        "UPDATE secrets SET name = 'd$(touch${IFS}PWNED)' WHERE name = 'dx';
         INSERT INTO secrets (name, created_at, updated_at)
             VALUES ('d`touch PWNED2`', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z');",
    );
    for (words, cword) in [
        ("vault run -s d", 3),
        ("vault export d", 2),
        ("vault secret show d", 3),
    ] {
        let (got, out) = bash_complete(&env, words, cword);
        assert!(!env.path("PWNED").exists(), "{words}: $(…) ran");
        assert!(!env.path("PWNED2").exists(), "{words}: backticks ran");
        // A vault that refuses the forged rows as a whole completes nothing;
        // otherwise only the valid name.
        assert!(got.is_empty() || got == ["db"], "{words}: {got:?} {out:?}");
    }
    // The helper itself never prints an invalid name.
    let out = env.vault(["__complete-secrets"]).run().success();
    assert!(
        !out.stdout.contains('$') && !out.stdout.contains('`'),
        "{out:?}"
    );
}

/// Prefixes are matched by `vault`, so the shell gets only the candidates.
#[test]
fn completion_helper_matches_the_prefix_itself() {
    let env = Env::new().init();
    for n in ["db", "db-prod", "dz", "web"] {
        env.create(n, &["K=v"]);
    }
    env.vault(["__complete-secrets", "--", "db"])
        .run()
        .success()
        .stdout_is("db\ndb-prod\n");
    env.vault(["__complete-secrets", "--", "-x"])
        .run()
        .success()
        .stdout_is("");
    if have("bash") {
        let (got, out) = bash_complete(&env, "vault secret delete web d", 4);
        assert_eq!(got, ["db", "db-prod", "dz"], "{out:?}");
    }
}

// ---- 4. Symlinks: the lock, the vault, the identity

/// With `--vault /tmp/shared/x`, another user could plant `x.lock` as a
/// symlink and have `vault`'s O_CREAT create (as root: anywhere) the file
/// it points to.
#[test]
fn lock_file_symlink_is_not_followed() {
    let env = Env::new().init();
    let team = env.path("shared/x.vault");
    fs::create_dir_all(team.parent().unwrap()).unwrap();
    let victim = env.path("victim-file");
    symlink(&victim, env.path("shared/x.vault.lock")).unwrap();
    env.vault(["init", "--vault"])
        .arg_path(&team)
        .run()
        .fails(1)
        .stderr_has("is a symbolic link");
    assert!(!victim.exists(), "the lock's O_CREAT followed the symlink");
    assert!(!team.exists());
}

/// A directory where the lock file goes (a stray `mkdir`) is refused with
/// the same hint as any other lock that is not a regular file, and the
/// vault is left as it was.
#[test]
fn a_directory_in_place_of_the_lock_file_is_named_with_a_hint() {
    let env = Env::new().init();
    let before = fs::read(env.file()).unwrap();
    let lock = env.file().with_file_name("vault.lock");
    let _ = fs::remove_file(&lock);
    fs::create_dir(&lock).unwrap();
    env.vault(["secret", "create", "db", "K=v"])
        .run()
        .fails(1)
        .stderr_has(&format!(
            "vault: error: the lock file {} is a directory, not a regular file\nhint: move it aside; vault creates the lock itself\n",
            lock.display()
        ));
    assert_eq!(fs::read(env.file()).unwrap(), before);
    assert!(lock.is_dir());
}

/// A vault with secret `db` (`K=v1`) whose `vault.age` is a symlink to
/// `sync/vault.age` (a dotfile repo, a sync folder): the env, `sync` and
/// the real file.
fn symlinked_vault() -> (Env, std::path::PathBuf, std::path::PathBuf) {
    let env = Env::new().init();
    env.create("db", &["K=v1"]);
    let sync = env.path("sync");
    fs::create_dir(&sync).unwrap();
    let real = sync.join("vault.age");
    fs::rename(env.file(), &real).unwrap();
    symlink(&real, env.file()).unwrap();
    (env, sync, real)
}

/// A symlinked vault.age (a dotfile repo, a sync folder) was replaced by a
/// regular file on the first write, so its real target silently stopped
/// getting updates.
#[test]
fn a_symlinked_vault_keeps_receiving_updates() {
    let (env, sync, _real) = symlinked_vault();
    env.vault(["secret", "set", "db", "K=v2"]).run().success();
    assert!(
        fs::symlink_metadata(env.file())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    env.vault(["export", "db"])
        .run()
        .success()
        .stdout_is("K=v2\n");
    // The write happened beside the real file, under the lock beside it.
    assert!(sync.join("vault.lock").exists());
    assert!(
        fs::read_dir(&sync).unwrap().count() == 2,
        "a stray temp file"
    );
    // --vault through a relative symlink: FILE.lock beside the target.
    let team = sync.join("team.vault");
    env.vault(["init", "--vault"])
        .arg_path(&team)
        .run()
        .success();
    symlink("sync/team.vault", env.path("team-link")).unwrap();
    env.vault(["secret", "create", "t", "K=v", "--vault"])
        .arg_path(&env.path("team-link"))
        .run()
        .success();
    assert!(
        fs::symlink_metadata(env.path("team-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(sync.join("team.vault.lock").exists());
    assert!(!env.path("team-link.lock").exists());
    env.vault(["export", "t", "--vault"])
        .arg_path(&team)
        .run()
        .success()
        .stdout_is("K=v\n");
}

/// `--vault` naming the default vault (its own path, or the real file a
/// symlinked `vault.age` points at) took `FILE.lock`, while a writer
/// without `--vault` took `vault.lock`: two locks on one file, so both could
/// read the old vault and the later rename dropped the other's update.
#[test]
fn vault_naming_the_default_vault_waits_for_the_default_lock() {
    fn waits_for(env: &Env, lock: &Path, via: &[&Path]) {
        let held = fs::OpenOptions::new().write(true).open(lock).unwrap();
        held.lock().unwrap();
        let mut writers: Vec<_> = via
            .iter()
            .enumerate()
            .map(|(i, path)| {
                env.vault(["secret", "set", "db", &format!("K{i}=v"), "--vault"])
                    .arg_path(path)
                    .spawn()
            })
            .collect();
        thread::sleep(Duration::from_millis(1500));
        for (w, path) in writers.iter_mut().zip(via) {
            assert!(
                w.try_wait().unwrap().is_none(),
                "--vault {path:?} wrote while a writer held {lock:?}"
            );
        }
        drop(held);
        for w in writers {
            let o = w.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let shown = env.vault(["secret", "show", "db"]).run().success();
        for i in 0..via.len() {
            assert!(shown.stdout.contains(&format!("K{i}")), "{shown:#?}");
        }
    }

    let env = Env::new().init();
    env.create("db", &["K=v1"]);
    waits_for(&env, &env.dir.join("vault.lock"), &[&env.file()]);
    assert!(!env.dir.join("vault.age.lock").exists());

    let (env, sync, real) = symlinked_vault();
    env.vault(["secret", "set", "db", "K=v2"]).run().success();
    waits_for(&env, &sync.join("vault.lock"), &[&real, &env.file()]);
    assert!(!sync.join("vault.age.lock").exists());
}

/// The same for identity.age: `passwd` re-sealed a copy in place of the link.
#[test]
fn a_symlinked_identity_keeps_receiving_updates() {
    let env = Env::with_passphrase("old").init();
    env.create("db", &["K=v"]);
    let sync = env.path("sync");
    fs::create_dir(&sync).unwrap();
    let identity = env.dir.join("identity.age");
    let real = sync.join("identity.age");
    fs::rename(&identity, &real).unwrap();
    symlink(&real, &identity).unwrap();
    let before = fs::read(&real).unwrap();
    let new = env.path("new-pass");
    write_private(&new, b"new\n");
    env.vault(["passwd", "--new-passphrase-file"])
        .arg_path(&new)
        .run()
        .success();
    assert!(
        fs::symlink_metadata(&identity)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_ne!(
        fs::read(&real).unwrap(),
        before,
        "the target was not updated"
    );
    env.vault(["secret", "list"])
        .env("VAULT_PASSPHRASE_FILE", &new)
        .run()
        .success()
        .stdout_has("db");
}

/// `--vault /dev/stdin` replaced the /dev/stdin symlink: a vault path that
/// resolves to something other than a regular file is refused, and the
/// link stays. (A link of our own to /dev/null stands in for /dev/stdin.)
#[test]
fn a_vault_path_that_is_not_a_regular_file_is_refused() {
    let env = Env::new().init();
    let link = env.path("null-link");
    symlink("/dev/null", &link).unwrap();
    for args in [
        &["secret", "create", "x", "K=v"][..],
        &["init"],
        &["secret", "list"],
    ] {
        env.vault(args)
            .arg("--vault")
            .arg_path(&link)
            .run()
            .fails(1)
            .stderr_has("/dev/null is not a regular file");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/dev/null"));
    }
    let dir = env.path("a-dir");
    fs::create_dir(&dir).unwrap();
    env.vault(["secret", "create", "x", "K=v", "--vault"])
        .arg_path(&dir)
        .run()
        .fails(1)
        .stderr_has("is a directory");
}

/// A lock file that belongs to another user is refused: whoever owns it
/// can hold it (or be it, as a FIFO or a device).
#[test]
fn lock_file_of_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let env = Env::new().init();
    let lock = env.dir.join("vault.lock");
    fs::write(&lock, "").unwrap();
    Command::new("chown")
        .arg("nobody")
        .arg(&lock)
        .status()
        .unwrap();
    env.vault(["secret", "create", "a", "K=v"])
        .run()
        .fails(1)
        .stderr_has("belongs to uid 65534");
}

// ---- 5. Upward searches stop at other users' folders

/// A bare `--dotenv` and `vault import` used `/tmp/shared/.env`, written by
/// another user, when run below it.
#[test]
fn upward_search_does_not_enter_another_users_folder() {
    if !is_root() {
        return;
    }
    let env = Env::new().init();
    let shared = env.path("shared");
    let proj = shared.join("proj");
    fs::create_dir_all(&proj).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(shared.join(".env"), "LD_PRELOAD=/tmp/evil.so\n").unwrap();
    Command::new("chown")
        .arg("nobody")
        .arg(&shared)
        .status()
        .unwrap();
    env.vault(["import", "--dry-run"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no .env file")
        .stderr_has("another user owns it")
        .lacks("LD_PRELOAD");
    env.vault(["run", "--dotenv", "--explain"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("no .env file");
}

/// A `.env` that another user owns is named in a warning and not used,
/// even in a folder of the user's own.
#[test]
fn upward_search_skips_a_file_another_user_owns() {
    if !is_root() {
        return;
    }
    let env = Env::new().init();
    let proj = env.path("proj/sub");
    fs::create_dir_all(&proj).unwrap();
    let planted = env.path("proj/.env");
    fs::write(&planted, "A=planted\n").unwrap();
    Command::new("chown")
        .arg("nobody")
        .arg(&planted)
        .status()
        .unwrap();
    env.vault(["run", "--dotenv", "--explain"])
        .current_dir(&proj)
        .run()
        .fails(1)
        .stderr_has("vault: warning: ")
        .stderr_has("belongs to uid 65534")
        .lacks("dotenv:");
    // The user's own file is found as before.
    fs::write(env.path("proj/sub/.env"), "A=mine\n").unwrap();
    env.vault(["run", "--dotenv", "--explain"])
        .current_dir(&proj)
        .run()
        .success()
        .stdout_has("proj/sub/.env");
}

// ---- 6. Key material and values never appear in errors

#[test]
fn a_private_key_given_as_a_recipient_is_not_printed() {
    let env = Env::new().init();
    let key = env.path("key.txt");
    write_identity(&key);
    let secret_line = fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let out = env
        .vault(["recipients", "add", "-R"])
        .arg_path(&key)
        .run()
        .fails(1)
        .stderr_has(", line ")
        .stderr_has("private key");
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{out:?}");
    let out = env
        .vault(["recipients", "add", "age1ok", &secret_line])
        .run()
        .fails(1)
        .stderr_has("recipient argument 1");
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{out:?}");
    let out = env
        .vault(["recipients", "add", &secret_line])
        .run()
        .fails(1)
        .stderr_has("recipient argument 1")
        .stderr_has("private key");
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{out:?}");
    // Anywhere a name is echoed, key material is not.
    let out = env.vault(["secret", "show", &secret_line]).run().fails(1);
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{out:?}");
}

/// `vault secret create n K=v 'p@ssVALUE'` echoed the value as "invalid key".
#[test]
fn a_value_in_a_key_position_is_named_by_position() {
    let env = Env::new().init();
    for args in [
        &["secret", "create", "n", "K=v", "p@ssw0rd"][..],
        &["secret", "create", "n", "K=v", "p@ss=w0rd"],
        &["secret", "set", "n", "K=v", "1w0rd"],
    ] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("argument 2")
            .lacks("w0rd");
    }
    env.vault(["run", "--set", "A=1", "--set", "p@ss=w0rd", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("--set argument 2")
        .lacks("w0rd");
}

// ---- 7. Output: a closed stdout is quiet, a full one is an error, no panic

/// Every command that prints to stdout, on a vault with something in it.
fn printing_commands() -> Vec<Vec<&'static str>> {
    [
        "secret list",
        "secret list --json",
        "secret show db",
        "secret show db --json --reveal",
        "secret templates",
        "doctor",
        "run -s db --explain",
        "run -s db --explain --json",
        "status",
        "status --json",
        "export db",
        "export db --format json",
        "recipients list",
        "recipient",
        "completions bash",
        "__complete-secrets",
        "--help",
        "--version",
    ]
    .iter()
    .map(|c| c.split(' ').collect())
    .collect()
}

fn run_with_stdout(cmd: Cmd, stdout: Stdio) -> std::process::Output {
    let mut cmd = cmd.cmd;
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    cmd.spawn().unwrap().wait_with_output().unwrap()
}

/// `list/doctor/run --explain > /dev/full` exited 101 (a panic) and
/// `status > /dev/full` exited 0: now each is one error line and exit 1.
#[test]
fn a_full_stdout_is_one_error_line_and_exit_1() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    for args in printing_commands() {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run_with_stdout(env.vault(&args), Stdio::from(full));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("vault: error: cannot write to stdout: no space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A reader that is gone (`| head -1`) ends vault quietly, exit 0, where
/// it panicked (exit 101). The pipe's read end is closed before vault
/// starts, so every write fails with EPIPE, however small the output.
#[test]
fn a_closed_stdout_ends_vault_quietly() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    for args in printing_commands() {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run_with_stdout(env.vault(&args), Stdio::from(writer));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            stderr.is_empty() || !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The case from the issue: `vault secret list | head -1` on a large vault.
#[test]
fn secret_list_into_head_on_a_large_vault() {
    if !have("head") {
        return;
    }
    let env = Env::new().init();
    let mut json = String::from("{");
    for i in 0..3000 {
        json.push_str(&format!(
            "{}\"secret-{i:05}\": {{\"K\": \"v\"}}",
            if i > 0 { "," } else { "" }
        ));
    }
    json.push('}');
    let file = env.write("bulk.json", json);
    env.vault(["import", "--from-json"])
        .arg_path(&file)
        .run()
        .success();
    let mut vault = env.vault(["secret", "list"]).cmd;
    let mut child = vault
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = Command::new("head")
        .arg("-1")
        .stdin(Stdio::from(child.stdout.take().unwrap()))
        .output()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&head.stdout).starts_with("NAME"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- 8. Terminal escapes from the database are escaped in tables

#[test]
fn control_characters_from_the_database_never_reach_the_terminal() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    forge(
        &env,
        "UPDATE secrets SET name = 'x' || char(27) || ']0;pwned' || char(7),
                            created_at = char(27) || '[2J', updated_at = char(155) || '31m';
         UPDATE recipients SET added_at = char(27) || '[5m';",
    );
    for args in [&["secret", "list"][..], &["recipients", "list"]] {
        let out = env.vault(args).run();
        // A vault that refuses forged rows outright is fine too; what must
        // never happen is the raw byte on either stream.
        assert!(
            !out.raw_stdout.contains(&0x1b) && !out.stderr.contains('\u{1b}'),
            "{args:?}: {out:?}"
        );
        assert!(!out.stdout.contains('\u{9b}') && !out.stdout.contains('\u{7}'));
        if out.code == Some(0) {
            assert!(out.stdout.contains("\\x1b"), "{out:?}");
        }
    }
}

// ---- 9. Dangerous keys are warned about at run and shell

#[test]
fn dangerous_keys_are_warned_about_when_run() {
    let env = Env::new().init();
    env.create(
        "team",
        &[
            "GIT_CONFIG_COUNT=0",
            "LESSOPEN=x",
            "https_proxy=http://127.0.0.1:9",
            "OK=1",
        ],
    );
    let dotenv = env.write("proj/.env", "ZDOTDIR=/tmp/x\nSHELL=/bin/sh\n");
    let out = env
        .vault(["run", "-s", "team", "--dotenv"])
        .arg_path(&dotenv)
        .args(["--", "true"])
        .run()
        .success();
    for key in ["GIT_CONFIG_COUNT", "LESSOPEN", "https_proxy", "ZDOTDIR"] {
        assert!(out.stderr.contains(&format!("`{key}`")), "{key}: {out:?}");
    }
    assert!(out.stderr.contains("secret `team` sets"), "{out:?}");
    assert!(!out.stderr.contains("`OK`") && !out.stderr.contains("`SHELL`"));
    // `vault shell` runs SHELL itself: there it is dangerous.
    env.vault(["shell", "--dotenv"])
        .arg_path(&dotenv)
        .run()
        .success()
        .stderr_has("`SHELL`");
    // --set is the user's own command line: no warning.
    let out = env
        .vault(["run", "--set", "LD_PRELOAD=", "--", "true"])
        .run()
        .success();
    assert!(!out.stderr.contains("warning"), "{out:?}");
}

// ---- 10. Permissions are checked where they are used

#[test]
fn a_world_readable_identity_file_is_refused() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    let key = env.identity.clone().unwrap();
    for mode in [0o644, 0o640, 0o604] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        env.vault(["secret", "list"])
            .run()
            .fails(1)
            .stderr_has(&format!(
                "is not private: {} (mode {mode:04o})",
                match mode {
                    0o644 => "its group and others can read it",
                    0o640 => "its group can read it",
                    _ => "others can read it",
                }
            ))
            .stderr_has(&format!("hint: chmod 600 {}", key.display()));
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    env.vault(["secret", "list"]).run().success();
}

#[test]
fn a_vault_dir_others_may_write_is_refused() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    let before = fs::read(env.file()).unwrap();
    for mode in [0o777, 0o770, 0o1777] {
        fs::set_permissions(&env.dir, fs::Permissions::from_mode(mode)).unwrap();
        for args in [
            &["secret", "list"][..],
            &["secret", "set", "db", "K=w"],
            &["run", "-s", "db", "--", "true"],
        ] {
            env.vault(args)
                .run()
                .fails(1)
                .stderr_has("may be written by other users")
                .stderr_has("hint: chmod 700");
        }
    }
    assert_eq!(fs::read(env.file()).unwrap(), before);
    fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
    env.vault(["secret", "list"]).run().success();
}

#[test]
fn a_vault_dir_another_user_owns_is_refused() {
    if !is_root() {
        return;
    }
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    Command::new("chown")
        .arg("nobody")
        .arg(&env.dir)
        .status()
        .unwrap();
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("belongs to uid 65534, not to you");
    env.vault(["secret", "create", "x", "K=v"])
        .run()
        .fails(1)
        .stderr_has("belongs to uid 65534");
}

// ---- 11. dotenv

/// Runs `cmd` with its address space capped at `mib`, so that a blow-up
/// fails the test instead of the machine.
fn capped(mut cmd: Cmd, mib: u64) -> Out {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches no memory.
    unsafe {
        cmd.cmd.pre_exec(move || {
            let lim = rustix::process::Rlimit {
                current: Some(mib << 20),
                maximum: Some(mib << 20),
            };
            rustix::process::setrlimit(rustix::process::Resource::As, lim)?;
            Ok(())
        });
    }
    cmd.run()
}

/// `K1=${K0}${K0}`, `K2=${K1}${K1}`, …: 30 lines took 2.6 GB and 5,000 got
/// vault killed, on every path that reads a dotenv file.
#[test]
fn doubling_dotenv_chains_fail_at_the_limit_in_bounded_memory() {
    let env = Env::new().init();
    let mut chain = String::from("K0=x\n");
    for i in 0..5000 {
        chain.push_str(&format!("K{}=${{K{i}}}${{K{i}}}\n", i + 1));
    }
    let file = env.write("proj/.env", &chain);
    for args in [&["import"][..], &["import", "--dry-run"]] {
        capped(env.vault(args).arg_path(&file), 1024)
            .fails(1)
            .stderr_has("line 18: K17: the value is too large: more than 131071 bytes");
    }
    let out = capped(
        env.vault(["import", "--skip-invalid", "--dry-run"])
            .arg_path(&file),
        1024,
    )
    .success()
    .stderr_has("line 18: K17: the value is too large");
    assert!(out.stdout.contains("(5000 keys)"), "{}", &out.stdout[..200]);
    capped(
        env.vault(["run", "--dotenv"])
            .arg_path(&file)
            .args(["--", "true"]),
        1024,
    )
    .fails(1)
    .stderr_has("line 18: K17");
    env.vault(["secret", "list"]).run().success().lacks("proj");
}

/// POSIX `${X:?msg}` fails before anything runs, naming key and message;
/// `${X:+alt}` gives alt; `\$` is a literal `$` unquoted too.
#[test]
fn dotenv_posix_forms_and_escaped_dollars() {
    let env = Env::new().init();
    let file = env.write(
        "p/.env",
        "A=1\nB=${A:+set}\nC=${U+x}\nD=x\\$A\nE=${U:?U must be set}\n",
    );
    env.vault(["run", "--dotenv"])
        .arg_path(&file)
        .args(["--", "true"])
        .run()
        .fails(1)
        .stderr_has("line 5: E: `U` is not set or empty: U must be set");
    let file = env.write("p/.env", "A=1\nB=${A:+set}\nC=${U+x}\nD=x\\$A\n");
    env.vault(["import", "--name", "p"])
        .arg_path(&file)
        .run()
        .success();
    env.vault(["export", "p", "--format", "json"])
        .run()
        .success()
        .stdout_is("{\n  \"A\": \"1\",\n  \"B\": \"set\",\n  \"C\": \"\",\n  \"D\": \"x$A\"\n}\n");
}

#[test]
fn import_warns_about_command_substitutions_it_does_not_run() {
    let env = Env::new().init();
    let file = env.write("p/.env", "A=$(id)\nB='$(id)'\nC=\"`id`\"\n");
    let out = env
        .vault(["import", "--dry-run", "--name", "p"])
        .arg_path(&file)
        .run()
        .success()
        .stderr_has("line 1: A: `$(…)` and backticks are not run")
        .stderr_has("line 3: C:");
    assert!(!out.stderr.contains("line 2"), "{out:?}");
}

/// `export UID=…` aborts an `eval` under `bash --posix` (readonly), so
/// every key after it was silently missing.
#[test]
fn export_shell_refuses_keys_the_shell_treats_as_special() {
    let env = Env::new().init();
    env.create("s", &["A=1", "UID=5", "status=x"]);
    env.vault(["export", "s", "--format", "shell"])
        .run()
        .fails(1)
        .stderr_has("cannot set `UID`, `status`")
        .lacks("export A");
    env.vault(["export", "s"])
        .run()
        .success()
        .stdout_has("UID=5");
    // Without them, the script evaluates in bash --posix to the end.
    env.vault(["secret", "unset", "s", "UID", "status"])
        .run()
        .success();
    let script = env
        .vault(["export", "s", "--format", "shell"])
        .run()
        .success()
        .stdout;
    if have("bash") {
        let out = Command::new("bash")
            .args([
                "--posix",
                "-c",
                "eval \"$1\" && printf %s \"$A\"",
                "sh",
                &script,
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1", "{out:?}");
    }
}

/// A value that ends in a backslash is double-quoted by `--format dotenv`:
/// `'C:\dir\'` is an escaped quote to python-dotenv and docker.
#[test]
fn export_dotenv_double_quotes_a_trailing_backslash() {
    let env = Env::new().init();
    env.create("s", &["P=C:\\dir\\"]);
    let out = env.vault(["export", "s"]).run().success();
    assert_eq!(out.stdout, "P=\"C:\\\\dir\\\\\"\n");
    let file = env.write("back.env", &out.stdout);
    env.vault(["import", "--name", "t"])
        .arg_path(&file)
        .run()
        .success();
    env.vault(["export", "t", "--format", "json"])
        .run()
        .success()
        .stdout_is("{\n  \"P\": \"C:\\\\dir\\\\\"\n}\n");
}

// ---- 12. Smaller ones

#[test]
fn an_empty_value_from_stdin_is_a_warning() {
    let env = Env::new().init();
    env.vault(["secret", "create", "x", "K"])
        .stdin("")
        .run()
        .success()
        .stderr_has("vault: warning: the value of `K` read from stdin is empty");
    let out = env
        .vault(["secret", "set", "x", "K"])
        .stdin("v\n")
        .run()
        .success();
    assert!(!out.stderr.contains("warning"), "{out:?}");
}

/// `doctor` said "a writer holds the lock" when the lock could not even be
/// opened (read-only file system, permissions). As `nobody`, with the lock
/// left root's, opening it fails with EACCES.
#[test]
fn doctor_tells_an_unusable_lock_from_a_held_one() {
    if !is_root() || !have("setpriv") {
        return;
    }
    let env = Env::new().init();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&env.home)
        .status()
        .unwrap();
    Command::new("chown")
        .args(["root:root"])
        .arg(env.dir.join("vault.lock"))
        .status()
        .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(BIN)
        .arg("doctor")
        .env_clear()
        .env("HOME", &env.home)
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("a writer holds the lock"), "{out:?}");
    assert!(
        stdout.contains("cannot open the lock, so no write can succeed"),
        "{out:?}"
    );
    assert!(stdout.contains("permission denied"), "{out:?}");
    assert_eq!(out.status.code(), Some(1));
    // And a lock that is held is still told as such.
    let held = fs::File::open(env.dir.join("vault.lock")).unwrap();
    held.lock().unwrap();
    env.vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("a writer holds the lock");
}

/// A passphrase-protected age identity (`age -p key.txt`) given to
/// --identity was reported as "not an ssh private key".
#[test]
fn an_encrypted_age_identity_is_named_as_such() {
    let env = Env::with_passphrase("pw").init();
    let sealed = env.dir.join("identity.age");
    let copy = env.path("key.age");
    fs::copy(&sealed, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env
        .vault(["secret", "list"])
        .env("VAULT_IDENTITY", &copy)
        .run()
        .fails(1)
        .stderr_has("is an encrypted age file")
        .stderr_has("age -d");
    assert!(!out.stderr.contains("ssh"), "{out:?}");
    // The binary form too.
    let recipient = env.vault(["recipient"]).run().success().stdout;
    let binary =
        vault::testing::encrypt_vec(&[recipient.trim().to_string()], b"AGE-SECRET-KEY-1X").unwrap();
    write_private(&copy, &binary);
    env.vault(["secret", "list"])
        .env("VAULT_IDENTITY", &copy)
        .run()
        .fails(1)
        .stderr_has("is an encrypted age file");
}

/// A flipped byte in the vault's own stanza sent the user to
/// `recipients add`, which cannot help: the message now names damage too,
/// and the hint the backup first.
#[test]
fn a_damaged_stanza_is_not_only_a_missing_recipient() {
    let env = Env::new().init();
    env.create("db", &["K=v"]);
    let mut bytes = fs::read(env.file()).unwrap();
    // Header: "age-encryption.org/v1\n-> X25519 SHARE\nBODY\n--- MAC\n".
    let body = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    bytes[body] = if bytes[body] == b'A' { b'B' } else { b'A' };
    fs::write(env.file(), &bytes).unwrap();
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("or its header is damaged")
        .stderr_has("hint: if it opened before, restore it from a backup");
}

#[test]
fn a_device_as_passphrase_file_is_not_told_to_chmod() {
    let env = Env::with_passphrase("pw").init();
    let out = env
        .vault(["secret", "list"])
        .env("VAULT_PASSPHRASE_FILE", "/dev/null")
        .run()
        .fails(1)
        .stderr_has("/dev/null is a device");
    assert!(!out.stderr.contains("chmod 600 /dev/null"), "{out:?}");
}

/// A private key pasted where clap does not expect it (a recipient that
/// starts with `-----BEGIN`, a forgotten `--`, a mistyped flag): clap's
/// usage error (exit 2) echoes the argument it refused, so vault masks it.
#[test]
fn a_usage_error_never_echoes_a_private_key() {
    let env = Env::new().init();
    let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEhunter2\n-----END OPENSSH PRIVATE KEY-----";
    let age = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQHUNTER2";
    let long = format!("--{age}");
    for args in [
        vec!["recipients", "add", pem],
        vec![age],
        vec!["run", "-s", "db", age],
        vec![long.as_str()],
        vec!["run", "--set", "-----BEGIN hunter2", "--", "true"],
    ] {
        let out = env.vault(&args).run().fails(2);
        let all = format!("{}{}", out.stdout, out.stderr).to_ascii_lowercase();
        assert!(!all.contains("hunter2"), "{args:?}: {all}");
        assert!(all.contains("not shown"), "{args:?}: {all}");
    }
    // Other usage errors keep clap's own message.
    env.vault(["bogus"])
        .run()
        .fails(2)
        .stderr_has("unrecognized subcommand 'bogus'");
}

/// A file name is printed as it is, except its control characters: a
/// newline or an escape sequence in a path (`vault import $'x\ny/.env'`)
/// is shown escaped, so an error stays one line (plus its hint) and never
/// drives the terminal.
#[test]
fn a_control_character_in_a_path_never_splits_or_paints_an_error() {
    let env = Env::new().init();
    let odd = env.path("nl\ndir/\u{1b}[2J.env");
    let odd = odd.to_str().unwrap();
    for args in [
        vec!["import", odd],
        vec!["--vault", odd, "secret", "list"],
        vec!["run", &format!("--dotenv={odd}"), "--", "true"],
    ] {
        let out = env.vault(&args).run().fails(1);
        assert!(
            out.stderr.contains("nl\\ndir/\\u{1b}[2J.env"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains('\u{1b}'), "{args:?}: {}", out.stderr);
        for line in out.stderr.lines() {
            assert!(
                line.starts_with("vault: error: ") || line.starts_with("hint: "),
                "{args:?}: {}",
                out.stderr
            );
        }
    }
}

/// A private key's text where a path belongs (`VAULT_IDENTITY="$(cat
/// key.txt)"`, the likeliest CI mistake; `--vault`, `--from-dotenv`) turns
/// up in errors as that path: it is masked there, and VAULT_IDENTITY's
/// error says where the text goes instead.
#[test]
fn a_key_given_where_a_path_belongs_is_never_shown() {
    let env = Env::new().init();
    let key = env.path("other.txt");
    write_identity(&key);
    let text = fs::read_to_string(&key).unwrap();
    let secret_line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let data = &secret_line["AGE-SECRET-KEY-1".len()..];
    let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEhunter2\n-----END OPENSSH PRIVATE KEY-----";
    let outs = [
        env.vault(["secret", "list"])
            .env("VAULT_IDENTITY", &text)
            .run()
            .fails(1)
            .stderr_has("VAULT_IDENTITY holds the text of a key")
            .stderr_has("VAULT_AGE_KEY"),
        env.vault(["secret", "list"])
            .env("VAULT_FILE", &secret_line)
            .run()
            .fails(1),
        env.vault([
            "secret",
            "create",
            "x",
            "K=v",
            "--from-dotenv",
            &secret_line,
        ])
        .run()
        .fails(1),
        env.vault(["secret", "list"])
            .env("VAULT_FILE", env.path(pem))
            .run()
            .fails(1),
    ];
    for out in outs {
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains(data) && !all.contains("hunter2"), "{all}");
    }
}

/// Paths in `status`, `doctor` and `import --dry-run` are printed with
/// their control characters escaped, as in every table: a file name with
/// an escape sequence (one that sets the terminal's title) stays text.
#[test]
fn paths_on_stdout_never_drive_the_terminal() {
    let env = Env::new().init();
    let odd = env.path("e\u{1b}]0;pwned\u{7}.vault");
    let status = env
        .vault(["status"])
        .env("VAULT_FILE", &odd)
        .run()
        .success();
    let dir = env.path("d\u{1b}[31m/v");
    let doctor = env.vault(["doctor"]).env("VAULT_DIR", &dir).run().fails(1);
    let file = env.write("f\u{1b}[31m/.env", "EX=1\n");
    let import = env
        .vault(["import", "--dry-run"])
        .arg_path(&file)
        .run()
        .success();
    for (out, want) in [
        (&status, "e\\x1b]0;pwned\\x07.vault"),
        (&doctor, "d\\x1b[31m/v"),
        (&import, "f\\x1b[31m/.env"),
    ] {
        assert!(out.stdout.contains(want), "{}", out.stdout);
        assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
    }
}

/// A member's own signed database with a row that breaks the rules (an
/// invalid timestamp on the secret, a key that is no key) is a damaged
/// vault for `run` too (DESIGN v2 "Schema": every row validated as it is
/// read, nothing run), not a command started with it.
#[test]
fn run_refuses_a_secret_whose_rows_fail_validation() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=pw"]);
    let keys = env.keys();
    let original = env.plaintext();
    let recipient = env.recipient();
    for change in [
        "UPDATE secrets SET created_at = 'yesterday'",
        "UPDATE entries SET key = 'BAD KEY'",
    ] {
        let db = {
            let mut c = rusqlite::Connection::open_in_memory().unwrap();
            c.deserialize_read_exact(rusqlite::MAIN_DB, &original[..], original.len(), false)
                .unwrap();
            c.execute(change, []).unwrap();
            c.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
        };
        let signature = vault::testing::forge::signature(&db, &keys).unwrap();
        let sealed =
            vault::testing::forge::seal(&db, std::slice::from_ref(&recipient), Some(signature))
                .unwrap();
        fs::write(env.file(), &sealed).unwrap();
        env.vault(["run", "-s", "db", "--", "sh", "-c", "echo RAN"])
            .run()
            .fails(1)
            .stderr_has("is damaged")
            .lacks("RAN");
    }
}
