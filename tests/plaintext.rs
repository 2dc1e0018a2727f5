//! No plaintext on disk (DESIGN.md invariants 1 and 2): a canary handed in
//! every way a user hands values in ends up in no file but the vault's
//! ciphertext; strace shows every file a session opens for writing; a
//! deleted value is gone from the decrypted database too.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use crate::support::*;

const CANARY: &str = "CANARY-c4f7e1-do-not-leak";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Invariant 1: Plaintext never touches the disk: after a session that creates,
/// changes and deletes a canary, no file anywhere under the test's HOME and
/// vault directory holds it.
#[test]
fn no_canary_in_any_file() {
    let env = Env::new().init();
    env.vault(["secret", "create", "c", "TOKEN"])
        .stdin(CANARY)
        .run()
        .success();
    env.vault(["secret", "set", "c", &format!("OTHER={CANARY}-2")])
        .run()
        .success();
    env.vault(["secret", "show", "c", "--reveal"])
        .run()
        .success();
    env.vault(["secret", "list"]).run().success();
    for f in env.all_files() {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, CANARY),
            "{} holds the canary",
            f.display()
        );
    }
    assert!(
        contains(&env.plaintext(), CANARY),
        "the canary is in the vault"
    );
}

/// Invariant 2: Deleted means gone: the decrypted database no longer holds the bytes.
#[test]
fn deleted_canary_is_gone_from_the_database() {
    let env = Env::new().init();
    env.create("keep", &["K=v"]);
    env.vault(["secret", "create", "gone", "TOKEN"])
        .stdin(CANARY)
        .run()
        .success();
    env.vault(["secret", "create", "partly", "A=1", "B"])
        .stdin(format!("{CANARY}-B"))
        .run()
        .success();
    assert!(contains(&env.plaintext(), CANARY));
    env.vault(["secret", "delete", "gone", "--yes"])
        .run()
        .success();
    env.vault(["secret", "unset", "partly", "B"])
        .run()
        .success();
    // Version 2 (DESIGN v2 "History"): an unset key stays in the secret's
    // earlier versions, so that the change can be undone; `delete` removes
    // those too.
    assert!(contains(&env.plaintext(), &format!("{CANARY}-B")));
    env.vault(["secret", "delete", "partly", "--yes"])
        .run()
        .success();
    assert!(!contains(&env.plaintext(), CANARY));
}

fn holds(path: &Path, canary: &str) -> bool {
    fs::read(path).is_ok_and(|b| b.windows(canary.len()).any(|w| w == canary.as_bytes()))
}

fn files_under(dir: &Path, since: SystemTime, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            files_under(&e.path(), since, out);
        } else if meta.is_file() && meta.modified().is_ok_and(|m| m >= since) {
            out.push(e.path());
        }
    }
}

/// The whole session of commands a user runs, each handed the canary the
/// way users hand values in (stdin, JSON, dotenv).
/// The input files it writes are `session_inputs`.
fn session(env: &Env, tmpdir: &Path, canary: &str) -> Vec<Cmd> {
    let [json, dotenv, bulk] = session_inputs(env);
    fs::write(&json, format!(r#"{{"J": "{canary}-json"}}"#)).unwrap();
    fs::create_dir_all(dotenv.parent().unwrap()).unwrap();
    fs::write(&dotenv, format!("D={canary}-dotenv\n")).unwrap();
    fs::write(&bulk, format!(r#"{{"bulk": {{"B": "{canary}-bulk"}}}}"#)).unwrap();
    let c = |args: &[&str]| env.vault(args).env("TMPDIR", tmpdir);
    vec![
        c(&["init"]),
        c(&["secret", "create", "c", "TOKEN"]).stdin(canary),
        c(&["secret", "create", "j", "--from-json"]).arg_path(&json),
        c(&["import", "--name", "proj"]).arg_path(&dotenv),
        c(&["import", "--from-json"]).arg_path(&bulk),
        c(&["secret", "set", "c", "OTHER"]).stdin(format!("{canary}-2")),
        c(&["secret", "show", "c", "--reveal"]),
        c(&["export", "c", "j", "--format", "shell"]),
        c(&["secret", "list"]),
        c(&[
            "recipients",
            "add",
            "age1mh6evuvvf9qpw5jrgtjamlg3sstkspdxv893jj8vrqupf6wg29ls0465sq",
        ]),
        c(&["secret", "rename", "c", "c2"]),
        c(&["secret", "unset", "c2", "OTHER"]),
        c(&["secret", "delete", "j", "--yes"]),
    ]
}

fn session_inputs(env: &Env) -> [PathBuf; 3] {
    [
        env.path("in.json"),
        env.path("proj/.env"),
        env.path("bulk.json"),
    ]
}

/// A full session leaves the canary in no file under HOME, the vault
/// directory, TMPDIR, /tmp or /var/tmp (the last two: files modified since
/// the session began).
#[test]
fn canary_in_no_file_after_a_full_session() {
    let since = SystemTime::now() - Duration::from_secs(1);
    let env = Env::with_passphrase("canary session");
    // Made at run time: this file, a copy of it in another checkout under
    // /tmp, or a test binary built from it must not hold the canary that
    // the scan of /tmp looks for.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let canary = format!("CANARY-5e1f0b-{}-{nanos}", std::process::id());
    let canary = canary.as_str();
    let tmpdir = env.path("tmpdir");
    fs::create_dir_all(&tmpdir).unwrap();
    for c in session(&env, &tmpdir, canary) {
        c.run().success();
    }
    // The session's own input files hold it, of course; nothing else may.
    let inputs = session_inputs(&env);
    let mut files = env.all_files();
    for dir in ["/tmp", "/var/tmp"] {
        files_under(Path::new(dir), since, &mut files);
    }
    let mut scanned = 0;
    for f in files.iter().filter(|f| !inputs.contains(f)) {
        assert!(!holds(f, canary), "{} holds the canary", f.display());
        scanned += 1;
    }
    assert!(scanned > 3);
    eprintln!("nothing on disk: {scanned} files scanned, none holds the canary");
}

/// Under strace, every file a session opens for writing (or creates, or
/// renames) is a temp file beside vault.age or identity.age, the lock, or
/// the target of a rename from such a temp file: no plaintext file, no
/// SQLite journal, nothing in TMPDIR. (Since issue 15 also `trusted.json`,
/// public data, and its lock; since issue 20 the verification cache.)
#[test]
fn strace_shows_only_temp_lock_and_rename_writes() {
    if !have("strace") {
        return;
    }
    let env = Env::with_passphrase("strace session");
    let tmpdir = env.path("tmpdir");
    fs::create_dir_all(&tmpdir).unwrap();
    let log = env.path("strace.log");
    let mut opened_for_writing = BTreeSet::new();
    let commands = session(&env, &tmpdir, "CANARY-77c2d0-strace");
    let n = commands.len();
    for mut c in commands {
        let argv: Vec<_> = std::iter::once(c.cmd.get_program().to_owned())
            .chain(c.cmd.get_args().map(|a| a.to_owned()))
            .collect();
        let mut s = Command::new("strace");
        s.args([
            "-f",
            "-qq",
            "-e",
            "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,mknod,mknodat",
            "-o",
        ])
        .arg(&log)
        .args(&argv);
        for (k, v) in c.cmd.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        s.current_dir(c.cmd.get_current_dir().unwrap());
        c.cmd = s;
        c.run().success();
        let trace = fs::read_to_string(&log).unwrap();
        for line in trace.lines() {
            if let Some(path) = written_path(line) {
                opened_for_writing.insert(path);
            }
        }
    }
    let dir = env.dir.display().to_string();
    let allowed = |p: &str| {
        let Some(name) = p.strip_prefix(&format!("{dir}/")) else {
            return p == "/dev/tty" || p == "/dev/null";
        };
        name == "vault.lock"
            || name == "vault.age"
            || name == "identity.age"
            || name == "trusted.json"
            || name == "trusted.lock"
            // Issue 20: the verification cache, public data, and its lock.
            || name == "cache"
            || name == "cache/verified"
            || name == "cache/verified.lock"
            || name.starts_with("cache/.verified.") && name.ends_with(".tmp")
            || (name.starts_with(".vault.age.")
                || name.starts_with(".identity.age.")
                || name.starts_with(".trusted.json."))
                && name.ends_with(".tmp")
    };
    let bad: Vec<_> = opened_for_writing.iter().filter(|p| !allowed(p)).collect();
    assert!(bad.is_empty(), "opened for writing: {bad:?}");
    assert!(
        opened_for_writing.iter().any(|p| p.contains(".vault.age.")),
        "{opened_for_writing:?}"
    );
    let trace_tmp = opened_for_writing
        .iter()
        .any(|p| p.starts_with(&tmpdir.display().to_string()));
    assert!(!trace_tmp);
    let shown: BTreeSet<String> = opened_for_writing
        .iter()
        .map(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            match name.strip_suffix(".tmp") {
                Some(t) if t.starts_with(".vault.age.") => ".vault.age.XXXXXX.tmp".into(),
                Some(t) if t.starts_with(".identity.age.") => ".identity.age.XXXXXX.tmp".into(),
                _ => name.to_string(),
            }
        })
        .collect();
    eprintln!(
        "strace: {} commands, {} distinct paths opened for writing or renamed to: {shown:?}",
        n,
        opened_for_writing.len()
    );
}

/// Invariant 1, `PRAGMA temp_store = MEMORY`: SQLite's temporary
/// databases, sorts and statement journals stay in memory. The bundled
/// SQLite is built with its default `SQLITE_TEMP_STORE=1` (files unless
/// the pragma says otherwise), and it spills one of those to a file in
/// `SQLITE_TMPDIR`, `TMPDIR`, `/var/tmp` or `/tmp` as soon as it outgrows
/// its page cache (2 MB): without the pragma, the `VACUUM` of a bulk
/// import of a 5 MB vault writes the rebuilt database, plaintext, to an
/// unnamed `O_TMPFILE` there (`etilqs_…` in older SQLite). Small vaults
/// never spill, which is why the session test above cannot tell. Under
/// strace, a large import opens nothing for writing outside the vault
/// directory.
#[test]
fn a_large_bulk_import_spills_no_temp_file() {
    if !have("strace") {
        return;
    }
    let env = Env::new().init();
    let tmpdir = env.path("tmpdir");
    fs::create_dir_all(&tmpdir).unwrap();
    let json = crate::support::crash::big_json(500, 2_000);
    let input = env.write("big.json", &json);
    let log = env.path("strace.log");
    env.vault(["import", "--from-json"])
        .arg_path(&input)
        .env("TMPDIR", &tmpdir)
        .env("SQLITE_TMPDIR", &tmpdir)
        .under_strace("trace=open,openat,openat2,creat", &log)
        .run()
        .success();
    let size = fs::metadata(env.file()).unwrap().len();
    assert!(size > 5_000_000, "the vault is only {size} bytes");
    let trace = fs::read_to_string(&log).unwrap();
    let dir = format!("{}/", env.dir.display());
    let outside: Vec<&str> = trace
        .lines()
        .filter(|l| {
            l.contains("etilqs")
                || written_path(l)
                    .is_some_and(|p| !p.starts_with(&dir) && p != "/dev/null" && p != "/dev/tty")
        })
        .collect();
    assert!(outside.is_empty(), "opened for writing: {outside:#?}");
    assert_eq!(fs::read_dir(&tmpdir).unwrap().count(), 0);
    assert_eq!(
        export_value(&env, "s499", "K4"),
        "s499k4-".repeat(286)[..2_000]
    );
}

/// The path a strace line writes to, if it opens for writing, creates,
/// links or renames (the rename's destination too).
fn written_path(line: &str) -> Option<String> {
    let call = line.split_once(' ').map(|(_, rest)| rest.trim_start())?;
    let quoted: Vec<&str> = call.split('"').skip(1).step_by(2).collect();
    if call.starts_with("open") {
        let flags = call
            .split(", ")
            .nth(if call.starts_with("open(") { 1 } else { 2 })?;
        let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|f| flags.contains(f));
        if !writes || call.contains("= -1") {
            return None;
        }
        return quoted.first().map(|s| s.to_string());
    }
    if call.starts_with("creat") || call.starts_with("mknod") {
        return quoted.first().map(|s| s.to_string());
    }
    if call.starts_with("rename") || call.starts_with("link") {
        return quoted.last().map(|s| s.to_string());
    }
    None
}
