//! `vault unlock` / `lock` / `status` and `vault passwd`.

use std::{
    fs,
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    process::Command,
    thread,
    time::Duration,
};

use crate::support::*;

/// A passphrase user whose agent is stopped when the test ends, pass or fail.
struct Unlocked(Env);

impl Drop for Unlocked {
    fn drop(&mut self) {
        let _ = self.0.vault(["lock"]).run();
    }
}

fn unlocked(timeout: &str) -> Unlocked {
    let env = Env::with_passphrase("agent pw").init();
    env.create("db", &["PGPASSWORD=pw-in-vault"]);
    env.vault(["unlock", "--timeout", timeout])
        .run()
        .success()
        .stderr_has("Unlocked for");
    Unlocked(env)
}

/// Running, as opposed to gone or a zombie nobody reaped (an orphaned
/// agent's parent is init, which in a container may not reap).
fn alive(pid: u64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

fn status(env: &Env) -> serde_json::Value {
    let out = env.vault(["status", "--json"]).run().success();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn unlock_once_then_no_passphrase_source_is_needed() {
    let u = unlocked("5m");
    let env = &u.0;
    // No passphrase file, no VAULT_PASSPHRASE, no terminal: the agent answers.
    let bare = |args: &[&str]| env.vault(args).env_remove("VAULT_PASSPHRASE_FILE");
    bare(&["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("pw-in-vault");
    bare(&["secret", "set", "db", "X=1"]).run().success();
    bare(&["secret", "list"]).run().success().stdout_has("db");
    let s = status(env);
    assert_eq!(s["unlocked"], true);
    assert_eq!(s["secrets"], 1);
    assert!(s["seconds_left"].as_u64().unwrap() > 250);
    bare(&["lock"]).run().success().stderr_has("Locked");
    bare(&["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("no terminal");
    assert_eq!(status(env)["unlocked"], false);
}

#[test]
fn socket_and_directory_modes() {
    let u = unlocked("5m");
    let s = status(&u.0);
    let socket = std::path::PathBuf::from(s["socket"].as_str().unwrap());
    assert!(
        socket.starts_with(u.0.tmp.path().join("run/vault")),
        "{socket:?}"
    );
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
}

#[test]
fn the_agent_exits_when_its_time_is_up() {
    let u = unlocked("2s");
    let socket = status(&u.0)["socket"].as_str().unwrap().to_string();
    thread::sleep(Duration::from_millis(4000));
    assert_eq!(status(&u.0)["unlocked"], false);
    assert!(
        !std::path::Path::new(&socket).exists(),
        "the socket is removed"
    );
}

#[test]
fn the_agent_exits_when_its_socket_is_removed() {
    let u = unlocked("5m");
    let s = status(&u.0);
    let pid = s["agent_pid"].as_u64().unwrap();
    fs::remove_file(s["socket"].as_str().unwrap()).unwrap();
    thread::sleep(Duration::from_millis(2500));
    assert!(!alive(pid), "agent {pid} still runs");
}

#[test]
fn unlocking_again_replaces_the_agent() {
    let u = unlocked("5m");
    let first = status(&u.0)["agent_pid"].as_u64().unwrap();
    u.0.vault(["unlock", "--timeout", "10m"]).run().success();
    let s = status(&u.0);
    assert_ne!(s["agent_pid"].as_u64().unwrap(), first);
    assert!(s["seconds_left"].as_u64().unwrap() > 500);
    thread::sleep(Duration::from_millis(200));
    assert!(!alive(first), "the old agent {first} still runs");
}

#[test]
fn a_killed_agent_leaves_a_stale_socket_that_is_cleaned_up() {
    let u = unlocked("5m");
    let s = status(&u.0);
    let socket = s["socket"].as_str().unwrap().to_string();
    let pid = s["agent_pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(
        std::path::Path::new(&socket).exists(),
        "kill -9 leaves the socket"
    );
    // Without another source: the ordinary "locked" error, not a socket error.
    u.0.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .fails(1)
        .stderr_has("no terminal")
        .lacks("refused");
    assert!(
        !std::path::Path::new(&socket).exists(),
        "the stale socket is removed"
    );
    u.0.vault(["secret", "list"]).run().success();
}

#[test]
fn unlock_with_an_identity_file_is_refused() {
    let env = Env::new().init();
    env.vault(["unlock"])
        .run()
        .fails(1)
        .stderr_has("nothing to unlock");
}

#[test]
fn passwd_changes_only_identity_age_and_the_agent_keeps_working() {
    let u = unlocked("5m");
    let env = &u.0;
    let vault_before = fs::read(env.file()).unwrap();
    let identity_before = fs::read(env.dir.join("identity.age")).unwrap();
    let new = env.path("new.txt");
    write_private(&new, b"brand new pw\n");
    env.vault(["passwd", "--new-passphrase-file"])
        .arg_path(&new)
        .run()
        .success();
    assert_eq!(
        fs::read(env.file()).unwrap(),
        vault_before,
        "vault.age is untouched"
    );
    assert_ne!(
        fs::read(env.dir.join("identity.age")).unwrap(),
        identity_before
    );
    // The agent still answers.
    env.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    env.vault(["lock"]).run().success();
    env.vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("wrong passphrase");
    env.vault(["secret", "list"])
        .env("VAULT_PASSPHRASE_FILE", &new)
        .run()
        .success();
    // A world-readable new passphrase file is refused, and nothing changes.
    let loose = env.path("loose.txt");
    fs::write(&loose, "x\n").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
    let id_now = fs::read(env.dir.join("identity.age")).unwrap();
    env.vault(["passwd", "--new-passphrase-file"])
        .arg_path(&loose)
        .env("VAULT_PASSPHRASE_FILE", &new)
        .run()
        .fails(1)
        .stderr_has("readable by other users");
    assert_eq!(fs::read(env.dir.join("identity.age")).unwrap(), id_now);
}

#[test]
fn unlock_and_passwd_prompt_on_a_terminal() {
    if !have("expect") {
        return;
    }
    let env = Env::with_passphrase("old pw").init();
    let _guard = Unlocked(Env::bare_for_tests());
    // Output to a file, not a pipe: the agent outlives expect and may hold
    // on to descriptors it inherited, and a pipe would wait for it.
    let log = env.path("expect.log");
    let expect = |script: String| {
        let status = Command::new("expect")
            .arg("-c")
            .arg(format!(
                "set timeout 30\n{script}\nexpect eof\nlassign [wait] p s o code\nexit $code\n"
            ))
            .stdout(fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", &env.home)
            .env("VAULT_DIR", &env.dir)
            .env("XDG_RUNTIME_DIR", env.tmp.path().join("run"))
            .env("VAULT_SCRYPT_WORK_FACTOR", "10")
            .status()
            .unwrap();
        (status.code(), fs::read_to_string(&log).unwrap_or_default())
    };
    let o = expect(format!(
        "spawn {BIN} passwd\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"old pw\\r\"\nexpect \"New passphrase\"\nsleep 0.3\nsend \"new pw\\r\"\nexpect \"Repeat\"\nsleep 0.3\nsend \"new pw\\r\""
    ));
    assert_eq!(o.0, Some(0), "{o:?}");
    let o = expect(format!(
        "spawn {BIN} unlock --timeout 2m\nexpect \"Passphrase for the vault\"\nsleep 0.3\nsend \"new pw\\r\"\nexpect \"Unlocked\""
    ));
    assert_eq!(o.0, Some(0), "{o:?}");
    env.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    env.vault(["lock"]).run().success();
}

/// Root passes a 0600 socket's mode, so only the agent's uid check can turn
/// it away: start the agent as `nobody` and knock as root.
#[test]
fn a_peer_with_another_uid_is_refused() {
    if !is_root() || !have("setpriv") {
        return;
    }
    let env = Env::bare_for_tests();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path("nobody");
    fs::create_dir_all(&home).unwrap();
    let pass = home.join("pass.txt");
    write_private(&pass, b"pw\n");
    Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&home)
        .status()
        .unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(BIN)
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("VAULT_DIR", home.join("vault"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("VAULT_PASSPHRASE_FILE", &pass)
            .env("VAULT_SCRYPT_WORK_FACTOR", "10")
            .output()
            .unwrap()
    };
    assert!(as_nobody(&["init"]).status.success());
    let o = as_nobody(&["unlock", "--timeout", "2m"]);
    assert!(o.status.success(), "{o:?}");
    let socket = fs::read_dir(home.join("run/vault"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // As root: connecting works (root ignores the mode), answering does not.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let req = br#"{"op":"status"}"#;
    let _ = stream.write_all(&(req.len() as u32).to_be_bytes());
    let _ = stream.write_all(req);
    let mut answer = vec![];
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "the agent answered another uid");
    // And nobody's own commands still get answers.
    let o = as_nobody(&["status", "--json"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"unlocked\": true"),
        "{o:?}"
    );
    assert!(as_nobody(&["lock"]).status.success());
}
