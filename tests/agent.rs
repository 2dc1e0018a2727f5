//! `vault unlock` / `lock` / `status` and `vault passwd`.

use std::{
    fs,
    io::{Read, Write},
    os::unix::{
        fs::PermissionsExt,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
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

/// The agent's key as the fourth recipient of a team vault: its first read
/// notes that stanza, and later reads ask the agent for that one first
/// (`Keys::prefer_stanza`); every read answers.
#[test]
fn the_agent_is_asked_for_its_own_stanza_first_and_answers() {
    let u = unlocked("5m");
    let env = &u.0;
    let team = env.path("team.age");
    let a_key = env.path("a.key");
    write_identity(&a_key);
    let as_a = |args: &[&str]| {
        env.vault(["--identity"])
            .arg_path(&a_key)
            .args(["--vault"])
            .arg_path(&team)
            .args(args)
    };
    as_a(&["init"]).run().success();
    as_a(&["secret", "create", "db", "PW=team-pw"])
        .run()
        .success();
    for i in 0..2 {
        let other = write_identity(&env.path(&format!("other{i}.key")));
        as_a(&["recipients", "add", &other]).run().success();
    }
    let mine = env.vault(["recipient"]).run().success().stdout;
    as_a(&["recipients", "add", mine.trim()]).run().success();
    fs::remove_file(env.dir.join("cache/verified")).unwrap();
    let bare = || {
        env.vault(["--vault"])
            .arg_path(&team)
            .args(["secret", "show", "db", "--reveal"])
            .env_remove("VAULT_PASSPHRASE_FILE")
    };
    for _ in 0..3 {
        bare().run().success().stdout_has("team-pw");
        assert_eq!(
            vault::testing::cached_stanza(&env.dir, &team),
            Some(Some(3))
        );
    }
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
        .stderr_has("is not private: its group and others can read it (mode 0644)");
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
    let nobody = Nobody::new();
    let as_nobody = |args: &[&str]| nobody.run(args);
    assert!(as_nobody(&["init"]).status.success());
    let o = as_nobody(&["unlock", "--timeout", "2m"]);
    assert!(o.status.success(), "{o:?}");
    let socket = fs::read_dir(nobody.home.join("run/vault"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sock"))
        .unwrap();
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
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["unlocked"], true, "{o:?}");
    // Without CAP_IPC_LOCK, under the default RLIMIT_MEMLOCK, the identity's
    // buffer is locked all the same (an mlockall would not fit).
    let pid = s["agent_pid"].as_u64().unwrap();
    assert_eq!(
        mappings_with(pid, &["lo", "dd"]),
        1,
        "agent {pid} as nobody"
    );
    assert!(as_nobody(&["lock"]).status.success());
}

// ------------------------------------------------ issue 14: the agent, hardened

fn socket_of(env: &Env) -> PathBuf {
    PathBuf::from(status(env)["socket"].as_str().unwrap())
}

fn pid_of(env: &Env) -> u64 {
    status(env)["agent_pid"].as_u64().unwrap()
}

/// A status request as a client sends it: the length, then the body.
fn status_frame() -> Vec<u8> {
    let body = br#"{"op":"status"}"#;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Everything the peer sends until it closes (or 5 s pass): what a client
/// that connected at some point gets.
fn answer_to(mut stream: UnixStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = vec![];
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The agents serving `socket` that are alive (not zombies).
fn agents_on(socket: &Path) -> Vec<u64> {
    let want = socket.as_os_str().as_encoded_bytes();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&&b"__agent"[..]) && args.contains(&want)
            })
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// Stops (SIGSTOP) an agent, and continues and kills it when dropped.
struct Frozen(u64);

impl Frozen {
    fn new(pid: u64) -> Self {
        signal("STOP", pid);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", self.0);
        signal("KILL", self.0);
    }
}

fn signal(sig: &str, pid: u64) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
}

#[test]
fn a_trickling_client_delays_nobody_and_is_cut_off_after_a_second() {
    let u = unlocked("5m");
    let env = &u.0;
    let trickler = UnixStream::connect(socket_of(env)).unwrap();
    let connected = Instant::now();
    // One byte every 3 s: under a per-read timeout it never times out.
    let writer = trickler.try_clone().unwrap();
    let trickling = thread::spawn(move || {
        for _ in 0..3 {
            if (&writer).write_all(&[0]).is_err() {
                return false;
            }
            thread::sleep(Duration::from_secs(3));
        }
        true
    });
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    env.vault(["secret", "show", "db", "--reveal"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success()
        .stdout_has("pw-in-vault");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "another client waited {took:?}"
    );
    // The agent hangs up on the trickler at its deadline, unanswered.
    let answer = answer_to(trickler);
    let cut = connected.elapsed();
    assert!(answer.is_empty(), "the trickler got {answer:?}");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_millis(2500),
        "cut off after {cut:?}"
    );
    assert!(!trickling.join().unwrap(), "the trickler's next byte fails");
    eprintln!(
        "agent, a client trickling a byte every 3 s: another client's `secret show` took {took:.2?}; the trickler was cut off after {cut:.2?}"
    );
}

#[test]
fn nothing_is_answered_after_a_lock_and_lock_is_not_kept_waiting() {
    let u = unlocked("5m");
    let env = &u.0;
    let pid = pid_of(env);
    // A client that has connected (the agent is busy with it) and not yet
    // asked anything.
    let early = UnixStream::connect(socket_of(env)).unwrap();
    let started = Instant::now();
    env.vault(["lock"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success()
        .stderr_has("Locked");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "lock took {took:?}");
    eprintln!("agent, `vault lock` while a client is connected: {took:.2?}");
    let _ = (&early).write_all(&status_frame());
    assert!(answer_to(early).is_empty(), "answered after the lock");
    thread::sleep(Duration::from_millis(300));
    assert!(!alive(pid), "the agent {pid} still runs after `lock`");
}

#[test]
fn nothing_is_answered_after_the_agent_expires() {
    let u = unlocked("2s");
    let returned = Instant::now();
    let socket = socket_of(&u.0);
    // Connect before the expiry (the agent started listening before
    // `unlock` returned), ask after it, within the request deadline.
    thread::sleep(Duration::from_millis(1500).saturating_sub(returned.elapsed()));
    let late = UnixStream::connect(&socket).unwrap();
    thread::sleep(Duration::from_millis(2300).saturating_sub(returned.elapsed()));
    let _ = (&late).write_all(&status_frame());
    let answer = answer_to(late);
    assert!(
        answer.is_empty(),
        "answered after its expiry: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn lock_status_and_reads_say_the_agent_did_not_answer() {
    let u = unlocked("5m");
    let env = &u.0;
    let socket = socket_of(env);
    let frozen = Frozen::new(pid_of(env));
    let started = Instant::now();
    // A read: not "damaged", not "locked".
    env.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .fails(1)
        .stderr_has("the agent did not answer")
        .lacks("damaged");
    env.vault(["status"])
        .run()
        .fails(1)
        .stderr_has("the agent did not answer")
        .lacks("locked");
    env.vault(["lock"])
        .run()
        .fails(1)
        .stderr_has("the agent did not answer")
        .lacks("no agent is running");
    eprintln!(
        "agent, stopped with SIGSTOP: a read, `status` and `lock` each said \"the agent did not answer\", {:.2?} for the three",
        started.elapsed()
    );
    // `lock` put it out of reach: its socket is gone, and once it runs
    // again it exits.
    assert!(
        !socket.exists(),
        "the socket of the silent agent is removed"
    );
    signal("CONT", frozen.0);
    thread::sleep(Duration::from_millis(2500));
    assert!(!alive(frozen.0), "the agent exits once it runs again");
    env.vault(["status", "--json"])
        .run()
        .success()
        .stdout_has("\"unlocked\": false");
}

/// A stopped agent cost a read two deadlines (6 s: the unwrap, then the
/// question that followed it); once it has not answered, the same process
/// does not ask it again.
#[test]
fn a_stopped_agent_costs_a_read_one_deadline_not_two() {
    let u = unlocked("5m");
    let env = &u.0;
    let _frozen = Frozen::new(pid_of(env));
    for args in [&["secret", "list"][..], &["secret", "show", "db"]] {
        let started = Instant::now();
        env.vault(args)
            .env_remove("VAULT_PASSPHRASE_FILE")
            .run()
            .fails(1)
            .stderr_has("the agent did not answer (nothing within 3 s)");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
            "{args:?} took {took:?}"
        );
        eprintln!("agent, stopped with SIGSTOP: {args:?} gave up after {took:.2?}");
    }
}

#[test]
fn timeouts_are_at_most_seven_days_and_huge_ones_do_not_panic() {
    let u = Unlocked(Env::with_passphrase("pw").init());
    let env = &u.0;
    for long in [
        "8d",
        "604801",
        "18446744073709551615",
        "99999999999999999999d",
    ] {
        let o = env.vault(["unlock", "--timeout", long]).run().fails(2);
        assert!(!o.stderr.contains("panicked"), "{o:#?}");
    }
    env.vault(["unlock", "--timeout", "8d"])
        .run()
        .fails(2)
        .stderr_has("longer than 7 days");
    assert_eq!(status(env)["unlocked"], false);
    // The agent itself, asked directly for an overflowing lifetime.
    let socket = env.path("direct.sock");
    env.vault(["__agent", "--socket"])
        .arg_path(&socket)
        .args(["--seconds", "18446744073709551615"])
        .stdin("AGE-SECRET-KEY-1NOTAKEY\n")
        .run()
        .fails(2)
        .lacks("panicked");
    assert!(!socket.exists());
    env.vault(["unlock", "--timeout", "7d"]).run().success();
    assert!(status(env)["seconds_left"].as_u64().unwrap() > 6 * 86400);
    env.vault(["lock"]).run().success();
}

/// A script that holds a `flock` on fd 9 while it runs `vault unlock`
/// (issue 14): the agent must not keep the lock, nor the script's working
/// directory, for its whole life.
#[test]
fn the_agent_keeps_no_inherited_descriptor_and_no_working_directory() {
    if !have("flock") {
        return;
    }
    let u = Unlocked(Env::with_passphrase("pw").init());
    let env = &u.0;
    let lock = env.path("script.lock");
    let template = env.vault(["unlock"]).cmd;
    let mut script = Command::new("sh");
    script
        .args([
            "-c",
            r#"exec 9>>"$1" && flock 9 && exec "$2" unlock --timeout 5m"#,
            "sh",
        ])
        .arg(&lock)
        .arg(BIN)
        .current_dir(env.tmp.path());
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let o = script.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let pid = pid_of(env);
    let held = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|target| target == &lock)
        .count();
    assert_eq!(held, 0, "the agent {pid} holds the script's lock file");
    let free = Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert!(free.success(), "the script's flock is still held");
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    env.vault(["lock"]).run().success();
}

/// The mappings of `pid` whose VmFlags include all of `flags`.
fn mappings_with(pid: u64, flags: &[&str]) -> usize {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("VmFlags:"))
        .filter(|f| {
            let have: Vec<&str> = f.split_whitespace().collect();
            flags.iter().all(|w| have.contains(w))
        })
        .count()
}

#[test]
fn the_identity_lives_in_locked_memory_left_out_of_core_dumps() {
    let u = unlocked("5m");
    let pid = pid_of(&u.0);
    assert_eq!(
        mappings_with(pid, &["lo", "dd"]),
        1,
        "one mapping of agent {pid} is mlocked (lo) and MADV_DONTDUMP (dd)"
    );
    // Only that one: not the whole process (an mlockall).
    assert_eq!(mappings_with(pid, &["lo"]), 1);
}

#[test]
fn a_runtime_directory_that_is_not_private_is_refused() {
    let u = Unlocked(Env::with_passphrase("pw").init());
    let env = &u.0;
    let dir = env.path("run/vault");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for args in [&["unlock"][..], &["status"], &["lock"], &["secret", "list"]] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("has mode 0755: the agent's directory must be 0700")
            .stderr_has(&format!("hint: chmod 700 {}", dir.display()));
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        env.vault(["unlock"])
            .run()
            .fails(1)
            .stderr_has("belongs to uid 65534, not to you")
            .stderr_has("hint: remove it");
        env.vault(["status"])
            .run()
            .fails(1)
            .stderr_has("belongs to uid 65534");
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    }
    env.vault(["unlock"]).run().success();
    env.vault(["lock"]).run().success().stderr_has("Locked");
}

/// A listener put where the agent's socket belongs, on a socket owned by
/// another user (`nobody`), answers every request with a status that says
/// "unlocked": clients must not believe it, nor send it anything.
#[test]
fn a_socket_of_another_user_is_not_trusted() {
    if !is_root() {
        return;
    }
    let u = unlocked("5m");
    let env = &u.0;
    let socket = socket_of(env);
    env.vault(["lock"]).run().success();
    let listener = UnixListener::bind(&socket).unwrap();
    std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (counter, stop) = (Arc::clone(&asked), Arc::clone(&done));
    listener.set_nonblocking(true).unwrap();
    let spoofer = thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok((mut s, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nonblocking(false);
            let body = br#"S{"pid":1,"expires_at":99999999999,"recipients":[]}"#;
            let _ = s.write_all(&(body.len() as u32).to_be_bytes());
            let _ = s.write_all(body);
        }
    });
    let o = env.vault(["status", "--json"]).run().success();
    assert!(o.stdout.contains("\"unlocked\": false"), "{o:#?}");
    assert!(o.stderr.contains("belongs to uid 65534"), "{o:#?}");
    let o = env.vault(["lock"]).run().success();
    assert!(o.stderr.contains("Already locked"), "{o:#?}");
    env.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .fails(1)
        .stderr_has("no terminal");
    env.vault(["unlock"])
        .run()
        .fails(1)
        .stderr_has("not an agent of yours");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "a client talked to it");
    done.store(true, Ordering::SeqCst);
    spoofer.join().unwrap();
    fs::remove_file(&socket).unwrap();
}

#[test]
fn six_concurrent_unlocks_all_succeed_and_leave_one_working_agent() {
    let u = Unlocked(Env::with_passphrase("pw").init());
    let env = &u.0;
    env.create("db", &["K=concurrent-value"]);
    let started = Instant::now();
    let children: Vec<_> = (0..6)
        .map(|_| env.vault(["unlock", "--timeout", "5m"]).spawn())
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let s = status(env);
    assert_eq!(s["unlocked"], true);
    let socket = PathBuf::from(s["socket"].as_str().unwrap());
    let pid = s["agent_pid"].as_u64().unwrap();
    // Replaced agents remove their socket, answer, and then exit: give
    // them a moment (a bound, not a wait: it ends as soon as one is left).
    let deadline = Instant::now() + Duration::from_secs(10);
    while agents_on(&socket).len() > 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(agents_on(&socket), [pid]);
    eprintln!(
        "agent, 6 concurrent `vault unlock`s: all exit 0, one agent left, in {:.2?}",
        started.elapsed()
    );
    env.vault(["secret", "show", "db", "--reveal"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success()
        .stdout_has("concurrent-value");
    env.vault(["lock"]).run().success();
}

/// The socket file is yours but the process listening on it is not (a
/// socket of `nobody`'s agent, moved into your runtime directory and given
/// to you): clients ask the kernel who listens (`SO_PEERCRED`) and ignore
/// it, instead of waiting on an agent that would never answer them.
#[test]
fn a_listener_of_another_user_is_not_trusted() {
    if !is_root() || !have("setpriv") {
        return;
    }
    let nobody = Nobody::new();
    let as_nobody = |args: &[&str]| nobody.run(args);
    assert!(as_nobody(&["init"]).status.success());
    assert!(as_nobody(&["unlock", "--timeout", "2m"]).status.success());
    let s: serde_json::Value =
        serde_json::from_slice(&as_nobody(&["status", "--json"]).stdout).unwrap();
    let their_socket = PathBuf::from(s["socket"].as_str().unwrap());
    // Stopped, it keeps listening (connections queue) but never answers,
    // and does not notice its socket moving.
    let _frozen = Frozen::new(s["agent_pid"].as_u64().unwrap());

    let u = unlocked("5m");
    let env = &u.0;
    let socket = socket_of(env);
    env.vault(["lock"]).run().success();
    fs::rename(&their_socket, &socket).unwrap();
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).unwrap();
    let started = Instant::now();
    let o = env.vault(["status", "--json"]).run().success();
    assert!(o.stdout.contains("\"unlocked\": false"), "{o:#?}");
    assert!(o.stderr.contains("runs as uid 65534"), "{o:#?}");
    env.vault(["secret", "list"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .fails(1)
        .stderr_has("no terminal");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a client waited on the foreign listener"
    );
    fs::remove_file(&socket).unwrap();
}

/// Without CAP_IPC_LOCK and with no locked memory allowed at all, the
/// agent still runs, and `unlock` says the identity may be swapped.
#[test]
fn unlock_warns_when_the_identity_cannot_be_locked_in_memory() {
    if !is_root() || !have("setpriv") || !have("prlimit") {
        return;
    }
    let nobody = Nobody::new();
    assert!(nobody.run(&["init"]).status.success());
    let mut unlock = Command::new("prlimit");
    unlock.args(["--memlock=0:0", "--"]);
    let inner = nobody.command(&["unlock", "--timeout", "2m"]);
    unlock.arg(inner.get_program()).args(inner.get_args());
    unlock
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    unlock.current_dir(nobody.env.tmp.path());
    let o = unlock.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stderr.contains("vault: warning: the agent could not lock its memory"),
        "{stderr}"
    );
    assert!(stderr.contains("Unlocked for"), "{stderr}");
    // And with the default limit, no warning.
    let o = nobody.run(&["unlock", "--timeout", "2m"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{o:?}"
    );
}

/// An XDG_RUNTIME_DIR that does not exist is no runtime directory: the
/// socket goes inside VAULT_DIR (DESIGN "Unlocking"), and vault creates no
/// directory at the variable's path (as root it could, anywhere).
#[test]
fn a_runtime_directory_that_does_not_exist_is_none() {
    let env = Env::with_passphrase("pw").init();
    let missing = env.path("no/such/run");
    env.vault(["unlock", "--timeout", "1m"])
        .env("XDG_RUNTIME_DIR", &missing)
        .run()
        .success();
    let status = env
        .vault(["status", "--json"])
        .env("XDG_RUNTIME_DIR", &missing)
        .run()
        .success();
    env.vault(["lock"])
        .env("XDG_RUNTIME_DIR", &missing)
        .run()
        .success();
    assert!(!env.path("no").exists(), "created {}", missing.display());
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let socket = v["socket"].as_str().unwrap();
    assert!(socket.starts_with(env.dir.to_str().unwrap()), "{socket}");
}

/// `vault unlock` with an agent running and no way to ask for the
/// passphrase says that an agent holds the key, not that the vault is
/// locked (it is not).
#[test]
fn unlock_again_without_a_terminal_says_an_agent_holds_the_key() {
    let env = Env::with_passphrase("pw").init();
    env.vault(["unlock", "--timeout", "1m"]).run().success();
    let out = env
        .vault(["unlock", "--timeout", "1m"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run();
    env.vault(["lock"]).run().success();
    out.fails(1)
        .stderr_has("an agent already holds the key")
        .lacks("the vault is locked");
}
