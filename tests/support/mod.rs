//! A small harness: `Env` is one user's world (HOME, VAULT_DIR, an identity
//! file or a passphrase file), `Env::vault(args)` builds a command, and `Out`
//! carries what it did.

#![allow(dead_code)]

pub mod crash;

use std::{
    ffi::OsStr,
    fs,
    io::Write,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_vault");

/// Variables cleared from every command so the host cannot leak in.
const CLEARED: &[&str] = &[
    "VAULT_DIR",
    "VAULT_FILE",
    "VAULT_IDENTITY",
    "VAULT_PASSPHRASE",
    "VAULT_PASSPHRASE_FILE",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "NO_COLOR",
];

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub dir: PathBuf,
    /// `VAULT_IDENTITY`, when this user unlocks with an identity file.
    pub identity: Option<PathBuf>,
    /// `VAULT_PASSPHRASE_FILE`, when this user unlocks with a passphrase.
    pub passfile: Option<PathBuf>,
}

impl Env {
    /// A user with no unlock source configured.
    pub fn bare_for_tests() -> Env {
        Env::bare()
    }

    fn bare() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("vault-test-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        // XDG_RUNTIME_DIR, as a login session has it: there, 0700.
        let run = tmp.path().join("run");
        fs::create_dir_all(&run).unwrap();
        fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let dir = home.join(".config/vault");
        Env {
            tmp,
            home,
            dir,
            identity: None,
            passfile: None,
        }
    }

    /// A user with an age identity file (`VAULT_IDENTITY`) and no vault yet.
    pub fn new() -> Env {
        let mut env = Env::bare();
        let key = env.home.join("key.txt");
        write_identity(&key);
        env.identity = Some(key);
        env
    }

    /// A user who unlocks `identity.age` with a passphrase from a 0600 file
    /// (`VAULT_PASSPHRASE_FILE`), with a low scrypt work factor.
    pub fn with_passphrase(pass: &str) -> Env {
        let mut env = Env::bare();
        let file = env.home.join("pass.txt");
        write_private(&file, format!("{pass}\n").as_bytes());
        env.passfile = Some(file);
        env
    }

    /// `vault init`, asserting success.
    pub fn init(self) -> Env {
        self.vault(["init"]).run().success();
        self
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("vault.age")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes a file under the temp dir and returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, content).unwrap();
        p
    }

    /// A `vault` command in this user's world.
    pub fn vault<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(BIN);
        c.args(args);
        for v in CLEARED {
            c.env_remove(v);
        }
        c.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_RUNTIME_DIR", self.tmp.path().join("run"))
            .env("VAULT_DIR", &self.dir)
            .env("VAULT_SCRYPT_WORK_FACTOR", "10")
            .current_dir(self.tmp.path());
        if let Some(id) = &self.identity {
            c.env("VAULT_IDENTITY", id);
        }
        if let Some(p) = &self.passfile {
            c.env("VAULT_PASSPHRASE_FILE", p);
        }
        Cmd {
            cmd: c,
            stdin: None,
            detach: true,
        }
    }

    /// Creates a secret from KEY=VALUE pairs, asserting success.
    pub fn create(&self, name: &str, pairs: &[&str]) {
        let mut args = vec!["secret", "create", name];
        args.extend(pairs);
        self.vault(args).run().success();
    }

    /// Every file under the temp dir (HOME and the vault directory).
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        walk(self.tmp.path(), &mut out);
        out
    }

    /// The keys of this identity-file user.
    pub fn keys(&self) -> vault::testing::Keys {
        vault::testing::parse_identity_file(
            &fs::read(self.identity.as_ref().expect("identity-file user")).unwrap(),
            "key",
        )
        .unwrap()
    }

    /// The recipient of this identity-file user, from its identity file.
    pub fn recipient(&self) -> String {
        fs::read_to_string(self.identity.as_ref().expect("identity-file user"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("an age-keygen identity file")
            .to_string()
    }

    /// The decrypted database bytes (needs an identity-file user).
    pub fn plaintext(&self) -> Vec<u8> {
        vault::testing::decrypt_vec(&fs::read(self.file()).unwrap(), &self.keys())
            .unwrap()
            .to_vec()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn write_identity(path: &Path) -> String {
    let id = vault::testing::generate();
    let text = vault::testing::identity_file_text(&id);
    write_private(path, text.as_bytes());
    id.to_public().to_string()
}

pub fn write_private(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

pub struct Cmd {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
    detach: bool,
}

impl Cmd {
    pub fn arg_path(mut self, p: &Path) -> Self {
        self.cmd.arg(p);
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Runs with a file-size limit of `bytes` (`ulimit -f`, a stand-in for
    /// a full disk).
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and allocates nothing.
        unsafe {
            self.cmd.pre_exec(move || {
                rustix::process::setrlimit(
                    rustix::process::Resource::Fsize,
                    rustix::process::Rlimit {
                        current: Some(bytes),
                        maximum: Some(bytes),
                    },
                )?;
                Ok(())
            });
        }
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Keep the test's controlling terminal, if any (by default commands run
    /// in a new session, so that "no terminal" is deterministic).
    pub fn attached(mut self) -> Self {
        self.detach = false;
        self
    }

    /// This command under `strace -f -qq -y -e trace=TRACE -o LOG`
    /// (descriptors shown with their paths), with the same arguments,
    /// environment and working directory. A `pre_exec` hook already set
    /// is not carried over; the session of its own (`attached`) is.
    pub fn under_strace(mut self, trace: &str, log: &Path) -> Self {
        let mut s = Command::new("strace");
        s.args(["-f", "-qq", "-y", "-e", trace, "-o"])
            .arg(log)
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args());
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        if let Some(dir) = self.cmd.get_current_dir() {
            s.current_dir(dir);
        }
        self.cmd = s;
        self
    }

    pub fn spawn(mut self) -> std::process::Child {
        self.prepare();
        self.cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().unwrap();
        if let Some(input) = self.stdin.take() {
            let mut sin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = sin.write_all(&input);
            });
        }
        child
    }

    fn prepare(&mut self) {
        if self.detach {
            // SAFETY: setsid is async-signal-safe and touches no memory.
            unsafe {
                self.cmd.pre_exec(|| {
                    rustix::process::setsid()?;
                    Ok(())
                });
            }
        }
    }

    pub fn run(self) -> Out {
        let child = self.spawn();
        child.wait_with_output().unwrap().into()
    }
}

#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

/// What a finished child left, for tests that spawn `vault` their own way.
impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Out {
        Out {
            code: o.status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&o.status),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            raw_stdout: o.stdout,
        }
    }
}

impl Out {
    #[track_caller]
    pub fn success(self) -> Out {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    /// Exit `code`, no panic, and for vault errors the one-line shape
    /// `vault: error: …` optionally followed by one `hint: …` line.
    #[track_caller]
    pub fn fails(self, code: i32) -> Out {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "panic: {self:#?}");
        if code == 1 {
            let lines: Vec<&str> = self
                .stderr
                .lines()
                .filter(|l| !l.starts_with("vault: warning:"))
                .collect();
            assert!(
                lines
                    .first()
                    .is_some_and(|l| l.starts_with("vault: error: ")),
                "error line: {self:#?}"
            );
            assert!(
                lines.len() <= 2,
                "one error line and at most one hint: {self:#?}"
            );
            if lines.len() == 2 {
                assert!(lines[1].starts_with("hint: "), "hint line: {self:#?}");
            }
        }
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Out {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Out {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}: {self:#?}"
        );
        self
    }

    #[track_caller]
    pub fn lacks(self, needle: &str) -> Out {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "output shows {needle:?}: {self:#?}"
        );
        self
    }
}

/// Whether an external tool is installed; under CI a missing tool fails the
/// test instead of skipping it, so a green CI never hides a skipped check.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(!in_ci(), "{tool} is required in CI");
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// The unprivileged user `nobody`, with a vault and a passphrase file of
/// its own, for what root's privileges would hide. Its agent is stopped
/// when this is dropped. Needs root and `setpriv`.
pub struct Nobody {
    pub env: Env,
    pub home: PathBuf,
}

impl Nobody {
    pub fn new() -> Nobody {
        let env = Env::bare_for_tests();
        fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = env.path("nobody");
        fs::create_dir_all(home.join("run")).unwrap();
        fs::set_permissions(home.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        write_private(&home.join("pass.txt"), b"pw\n");
        Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(&home)
            .status()
            .unwrap();
        Nobody { env, home }
    }

    /// `vault ARGS` as `nobody`, in its world.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(BIN, args)
    }

    /// `PROGRAM ARGS` as `nobody`, in its world.
    pub fn command_of(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("VAULT_DIR", self.home.join("vault"))
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("VAULT_PASSPHRASE_FILE", self.home.join("pass.txt"))
            .env("VAULT_SCRYPT_WORK_FACTOR", "10")
            .current_dir(self.env.tmp.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Nobody {
    fn drop(&mut self) {
        let _ = self.run(&["lock"]);
    }
}

/// Whether this test runs as root (and so needs an unprivileged user to
/// check permissions).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The value of `key` in `secret`, read through `vault export`, which must
/// succeed.
pub fn export_value(env: &Env, secret: &str, key: &str) -> String {
    let out = env
        .vault(["export", secret, "--format", "json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v[key].as_str().unwrap().to_string()
}

/// Whether this is a CI run (`CI` set, as CI services and .ci/run's caller
/// set it, to anything but empty, `0` or `false`): there a missing tool or
/// corpus fails its test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The shared dotenv corpus: `VAULT_DOTENV_CORPUS` if set (a worktree has
/// no `shared/` beside it), else `../shared/dotenv-corpus` beside the
/// checkout, where CI puts it. Absent, a test that needs it fails under CI
/// (a green CI must not hide a skipped check) and is skipped otherwise,
/// with a note saying so.
pub fn dotenv_corpus() -> Option<PathBuf> {
    let path = std::env::var_os("VAULT_DOTENV_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/dotenv-corpus"));
    locate_corpus(&path, in_ci()).unwrap_or_else(|message| panic!("{message}"))
}

/// `dotenv_corpus`'s decision, for a given path and CI-or-not.
pub fn locate_corpus(path: &Path, ci: bool) -> Result<Option<PathBuf>, String> {
    if path.join("files").is_dir() {
        return Ok(Some(path.to_path_buf()));
    }
    if ci {
        return Err(format!(
            "the dotenv corpus is missing at {} (CI is set, so this fails instead of skipping): \
             put shared/ beside the checkout or set VAULT_DOTENV_CORPUS",
            path.display()
        ));
    }
    eprintln!(
        "skipping: no dotenv corpus at {} (set VAULT_DOTENV_CORPUS to run this test)",
        path.display()
    );
    Ok(None)
}

/// The v1 schema exactly as version 1 of `vault` wrote it (the strict load
/// compares `sqlite_schema` byte for byte), with `user_version` 1: the base
/// of every hand-made version-1 fixture.
pub const V1_SCHEMA: &str = "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         name       TEXT NOT NULL UNIQUE,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );
     CREATE TABLE entries (
         secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (secret_id, key)
     ) WITHOUT ROWID;
     CREATE TABLE recipients (
         recipient TEXT NOT NULL UNIQUE,
         added_at  TEXT NOT NULL
     );
     PRAGMA user_version = 1;";

/// A PATH for git tests: the folder of the `vault` under test first (git
/// runs the merge driver and textconv by name, as `vault git setup` writes
/// them), then the system's.
pub fn path_with_vault() -> String {
    let bin = std::path::Path::new(BIN).parent().unwrap();
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// `git ARGS` in `dir` as the user of `env`: nothing of the host's
/// environment or git config, that user's VAULT_DIR and identity, the
/// `vault` under test first on PATH, no pager, and no terminal (a new
/// session, stdin from /dev/null), as git runs the merge driver and
/// textconv.
pub fn git_command(env: &Env, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", path_with_vault())
        .env("HOME", &env.home)
        .env("XDG_CONFIG_HOME", env.home.join(".config"))
        .env("XDG_RUNTIME_DIR", env.tmp.path().join("run"))
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_SCRYPT_WORK_FACTOR", "10")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "member")
        .env("GIT_AUTHOR_EMAIL", "member@example.com")
        .env("GIT_COMMITTER_NAME", "member")
        .env("GIT_COMMITTER_EMAIL", "member@example.com")
        .env("GIT_PAGER", "cat")
        .env("LANG", "C")
        .stdin(Stdio::null());
    if let Some(id) = &env.identity {
        c.env("VAULT_IDENTITY", id);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        c.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    c
}

/// The `diff_key` (hex) in `meta` of the vault database `db`, the key
/// `vault git show` fingerprints values with.
pub fn diff_key_hex(db: &[u8]) -> String {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, db, db.len(), true)
        .unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'diff_key'", [], |r| {
        r.get(0)
    })
    .unwrap()
}
