//! Issue 5, "prove it holds": `kill -9` in the middle of writes to a 20 MB
//! vault, writers racing on one secret while readers read, faults in the
//! files and the directory, and no plaintext on disk (strace shows every
//! file `vault` opens for writing). Figures go to stderr as one `…:` summary
//! line per test; RELIABILITY.md records them with the commands that
//! reproduce them (`cargo test --test integration reliability -- --nocapture`).
//!
//! Not repeated here (see tests/invariants.rs): the canary scan of HOME,
//! deleted-means-gone, 50 concurrent creates, the 10 s lock timeout, the
//! file-size limit, the hardened /proc state, stale temp files.

use std::{
    cell::Cell,
    collections::BTreeSet,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use crate::support::*;

// ---------------------------------------------------------------------------
// Crash safety

/// A small xorshift generator: the kill delays need to be random, not good;
/// the seed is printed so a run can be repeated (`VAULT_CRASH_SEED=…`).
struct Rng(Cell<u64>);

impl Rng {
    fn new() -> (Rng, u64) {
        let seed = std::env::var("VAULT_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(Cell::new(seed)), seed)
    }

    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }

    /// Uniform in `lo..=hi`.
    fn between(&self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.next() % (span + 1))
    }
}

/// A vault of about 20 MB: 400 secrets of 5 keys of 10,000 bytes (the file
/// is larger than the values: SQLite pages plus age's framing), imported in
/// one go through the bulk JSON path.
fn big_vault(env: &Env) -> u64 {
    let mut json = String::with_capacity(21 << 20);
    json.push('{');
    for s in 0..400 {
        if s > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"s{s:03}\":{{"));
        for k in 0..5 {
            if k > 0 {
                json.push(',');
            }
            let unit = format!("s{s:03}k{k}-");
            let value = unit.repeat(10_000 / unit.len() + 1);
            json.push_str(&format!("\"K{k}\":\"{}\"", &value[..10_000]));
        }
        json.push('}');
    }
    json.push('}');
    let file = env.write("big.json", &json);
    env.vault(["import", "--from-json"])
        .arg_path(&file)
        .run()
        .success();
    fs::remove_file(file).unwrap();
    let size = fs::metadata(env.file()).unwrap().len();
    assert!(size >= 20_000_000, "the vault is only {size} bytes");
    size
}

/// The state a command leads to from the old one, in loop `i`.
type Next<'a> = dyn Fn(&str, usize) -> String + 'a;

/// A command the crash test kills mid-write. Covering another command is
/// one more value of this type: what it replaces, how to run it for loop
/// `i`, how to read the state it changes, and what state it leads to.
struct CrashOp<'a> {
    name: &'a str,
    /// The file the command replaces by rename; its temp files are
    /// `.NAME.XXXXXX.tmp` beside it.
    target: PathBuf,
    /// The command for loop `i` (loop 0 calibrates, run to completion).
    command: Box<dyn Fn(usize) -> Cmd + 'a>,
    /// What the vault holds now, read through `vault`, which must succeed:
    /// a vault that no longer opens fails the test right here.
    observe: Box<dyn Fn(usize) -> String + 'a>,
    /// The state loop `i`'s command leads to from `old`.
    next: Box<Next<'a>>,
    /// Files the command must leave byte for byte as they were.
    untouched: Vec<PathBuf>,
    /// What it runs on, for the summary line.
    about: String,
    loops: usize,
}

#[derive(Debug, Default)]
struct Figures {
    loops: usize,
    /// Killed with this write's own temp file on disk: mid-write.
    mid_write: usize,
    /// Killed before the temp file appeared (still loading, say).
    before: usize,
    /// Killed after the rename, or the write had finished.
    after: usize,
    /// Kills timed from the command's start rather than the temp file's.
    anywhere: usize,
    /// Per kill: `m` mid-write (its temp file was left), `b` before the
    /// temp file existed, `a` after the rename.
    timeline: String,
    write: Duration,
    temp_from: Duration,
    temp_until: Duration,
}

fn temps(target: &Path) -> BTreeSet<PathBuf> {
    vault::fsio::stale_temps(target).into_iter().collect()
}

/// One uninterrupted run of the command, watching the directory: when does
/// its temp file appear and disappear, and when does it end?
fn calibrate(op: &CrashOp, i: usize) -> (Duration, Duration, Duration) {
    let start = Instant::now();
    let mut child = (op.command)(i).spawn();
    let (mut from, mut until) = (None, None);
    loop {
        let t = start.elapsed();
        if !temps(&op.target).is_empty() {
            from.get_or_insert(t);
            until = Some(t);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        thread::sleep(Duration::from_micros(300));
    }
    let total = start.elapsed();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}: {out:?}", op.name);
    let from = from.expect("the write's temp file was never seen");
    (total, from, until.unwrap())
}

fn crash_loops(op: &CrashOp) -> Figures {
    let (rng, seed) = Rng::new();
    let untouched: Vec<Vec<u8>> = op.untouched.iter().map(|f| fs::read(f).unwrap()).collect();
    // Calibrate on three full writes (loops 0, 1, 2); the median is the one
    // whose window the delays are drawn from.
    // Observing after each run keeps state-tracking commands (passwd's
    // current passphrase) in step.
    let mut runs: Vec<_> = (0..3)
        .map(|i| {
            let run = calibrate(op, i);
            (op.observe)(i);
            run
        })
        .collect();
    runs.sort();
    let (write, temp_from, temp_until) = runs[1];
    // How long the temp file lives, re-estimated as the loops go: a kill
    // that came too late shrinks it, one that landed widens it a little, so
    // that a change in the machine's load does not push every kill past the
    // rename.
    let mut width = temp_until.saturating_sub(temp_from);
    let mut state = (op.observe)(2);
    let mut f = Figures {
        loops: op.loops,
        write,
        temp_from,
        temp_until,
        ..Figures::default()
    };
    for i in 3..3 + op.loops {
        let stale = temps(&op.target);
        assert!(
            stale.len() <= 1,
            "{}: temp files pile up: {stale:?}",
            op.name
        );
        // One kill in five lands at any moment of the whole command. The
        // others land at a random moment of the write itself, timed from
        // the appearance of this write's temp file: the machine's load
        // moves when the write starts far more than how long it lasts.
        let anywhere = rng.next() % 5 == 0;
        let mut child = (op.command)(i).spawn();
        let start = Instant::now();
        if anywhere {
            f.anywhere += 1;
            thread::sleep(rng.between(Duration::ZERO, write + write / 10));
        } else {
            while temps(&op.target).difference(&stale).next().is_none()
                && child.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(30)
            {
                thread::sleep(Duration::from_micros(200));
            }
            thread::sleep(rng.between(Duration::ZERO, width + width / 5));
        }
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let status = child.wait().unwrap();
        // Either killed, or it finished first, and then successfully.
        assert!(
            matches!(status.code(), None | Some(0)),
            "{}: {status:?}",
            op.name
        );
        // After the process is gone, a temp file it created (not one left
        // from an earlier loop) means it died between creating the temp
        // file and renaming it: a kill mid-write.
        let own_temp = temps(&op.target).difference(&stale).count() > 0;
        let now = (op.observe)(i);
        let new = (op.next)(&state, i);
        assert!(
            now == state || now == new,
            "{}, loop {i} (seed {seed}): the vault holds neither the old nor the new state",
            op.name
        );
        if own_temp {
            assert_eq!(
                now, state,
                "{}: a kill mid-write changed the vault",
                op.name
            );
            f.mid_write += 1;
            f.timeline.push('m');
            if !anywhere {
                width = (width + width / 20).min(write);
            }
        } else if finished || now == new {
            f.after += 1;
            f.timeline.push('a');
            if !anywhere {
                width -= width / 5;
            }
        } else {
            f.before += 1;
            f.timeline.push('b');
        }
        state = now;
        for (file, before) in op.untouched.iter().zip(&untouched) {
            assert_eq!(
                &fs::read(file).unwrap(),
                before,
                "{} changed {}",
                op.name,
                file.display()
            );
        }
    }
    // The next successful write cleans up whatever the kills left.
    let i = 3 + op.loops;
    (op.command)(i).run().success();
    assert_eq!((op.observe)(i), (op.next)(&state, i));
    let left = temps(&op.target);
    assert!(
        left.is_empty(),
        "{}: stale temp files after a successful write: {left:?}",
        op.name
    );
    eprintln!(
        "crash {} {}: {} loops survived; kills mid-write (temp file present) {}, before the write {}, after it {} \
         ({} timed from the start, the rest from the temp file); \
         a write takes {} ms, its temp file exists from {} to {} ms; seed {seed}; kills: {}",
        op.name,
        op.about,
        f.loops,
        f.mid_write,
        f.before,
        f.after,
        f.anywhere,
        f.write.as_millis(),
        f.temp_from.as_millis(),
        f.temp_until.as_millis(),
        f.timeline,
    );
    // A run whose kills all land before or after the write proves nothing.
    assert!(
        f.mid_write * 4 >= f.loops,
        "{}: only {} of {} kills landed mid-write: {f:?}",
        op.name,
        f.mid_write,
        f.loops
    );
    f
}

fn state_of(env: &Env, secret: &str, key: &str) -> String {
    let out = env
        .vault(["export", secret, "--format", "json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v[key].as_str().unwrap().to_string()
}

/// `kill -9` at random points of `secret set` on a 20 MB vault: after
/// every kill the vault opens and holds the old value or the new one.
#[test]
fn crash_during_secret_set() {
    let env = Env::new().init();
    let size = big_vault(&env);
    let op = CrashOp {
        name: "secret set",
        target: env.file(),
        command: Box::new(|i| env.vault(["secret", "set", "s123", &format!("K0=value-{i}")])),
        observe: Box::new(|_| state_of(&env, "s123", "K0")),
        next: Box::new(|_, i| format!("value-{i}")),
        untouched: vec![],
        about: format!("on a {:.1} MB vault", size as f64 / 1e6),
        loops: 50,
    };
    crash_loops(&op);
}

/// The same for `recipients add`, which re-encrypts the whole vault to a
/// longer list.
#[test]
fn crash_during_recipients_add() {
    let env = Env::new().init();
    let size = big_vault(&env);
    let others: Vec<String> = (0..60)
        .map(|i| write_identity(&env.path(&format!("r{i}.txt"))))
        .collect();
    let op = CrashOp {
        name: "recipients add",
        target: env.file(),
        command: Box::new(|i| env.vault(["recipients", "add", &others[i]])),
        observe: Box::new(|_| {
            let out = env.vault(["recipients", "list", "--json"]).run().success();
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let list: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["recipient"].as_str().unwrap())
                .collect();
            list.join(",")
        }),
        next: Box::new(|old, i| format!("{old},{}", others[i])),
        untouched: vec![],
        about: format!("on a {:.1} MB vault", size as f64 / 1e6),
        loops: 50,
    };
    crash_loops(&op);
}

/// `vault passwd` rewrites only identity.age: after every kill it opens
/// with the old passphrase or the new one, and vault.age is untouched.
#[test]
fn crash_during_passwd() {
    let env = Env::with_passphrase("pass-0").init();
    env.create("db", &["K=v"]);
    let passfile = |i: usize| {
        let f = env.path(&format!("pass-{i}.txt"));
        if !f.exists() {
            write_private(&f, format!("pass-{i}\n").as_bytes());
        }
        f
    };
    let current = Cell::new(0usize);
    let op = CrashOp {
        name: "passwd",
        target: env.dir.join("identity.age"),
        command: Box::new(|i| {
            env.vault(["passwd", "--new-passphrase-file"])
                .arg_path(&passfile(i))
                .env("VAULT_PASSPHRASE_FILE", passfile(current.get()))
        }),
        observe: Box::new(|i| {
            // The passphrase that opens it now: the last one that did, or
            // loop i's.
            for k in [current.get(), i] {
                let out = env
                    .vault(["secret", "list"])
                    .env("VAULT_PASSPHRASE_FILE", passfile(k))
                    .run();
                if out.code == Some(0) {
                    current.set(k);
                    return format!("pass-{k}");
                }
            }
            panic!("identity.age opens with neither the old nor the new passphrase");
        }),
        next: Box::new(|_, i| format!("pass-{i}")),
        untouched: vec![env.file()],
        about: "of identity.age".into(),
        loops: 50,
    };
    crash_loops(&op);
}

// ---------------------------------------------------------------------------
// Concurrency

/// About 10 KB, different for every writer, so that a torn mix of two
/// writes cannot equal any one of them.
fn writer_value(i: usize) -> String {
    let unit = format!("writer-{i:02}:");
    unit.repeat(10_000 / unit.len())
}

/// Twenty concurrent `secret set` on one key leave exactly one writer's
/// whole value; readers (`secret list`, `export`) looping meanwhile all
/// succeed and only ever see whole values.
#[test]
fn twenty_writers_on_one_secret_and_readers_meanwhile() {
    let env = Arc::new(Env::new().init());
    let initial = writer_value(99);
    env.vault(["secret", "create", "s", "V"])
        .stdin(&initial)
        .run()
        .success();
    env.create("other", &["K=v"]);
    let values: Arc<Vec<String>> = Arc::new((0..20).map(writer_value).collect());
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (env, values, done, reads) =
                (env.clone(), values.clone(), done.clone(), reads.clone());
            let initial = initial.clone();
            thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if r == 0 {
                        env.vault(["secret", "list"])
                            .run()
                            .success()
                            .stdout_has("other");
                    } else {
                        let out = env
                            .vault(["export", "s", "--format", "json"])
                            .run()
                            .success();
                        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                        let seen = v["V"].as_str().unwrap();
                        assert!(
                            seen == initial || values.iter().any(|w| w == seen),
                            "a reader saw a value no writer wrote"
                        );
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let writers: Vec<_> = values
        .iter()
        .map(|v| env.vault(["secret", "set", "s", "V"]).stdin(v).spawn())
        .collect();
    for w in writers {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let last = state_of(&env, "s", "V");
    let winners: Vec<usize> = (0..20).filter(|&i| values[i] == last).collect();
    assert_eq!(winners.len(), 1, "the final value is no single writer's");
    let reads = reads.load(Ordering::Relaxed);
    assert!(reads >= 2, "the readers hardly ran: {reads}");
    assert!(vault::fsio::stale_temps(&env.file()).is_empty());
    eprintln!(
        "concurrency: 20 writers on one secret in {} ms, writer {} won whole; {reads} reads meanwhile, all succeeded",
        took.as_millis(),
        winners[0]
    );
}

// ---------------------------------------------------------------------------
// Faults

/// Runs `args` as `nobody` (root ignores modes, so a read-only directory
/// test must not run as root).
fn as_nobody(work: &Path, args: &[&str]) -> Out {
    let o = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(BIN)
        .args(args)
        .env_clear()
        .env("VAULT_DIR", work.join("vault"))
        .env("VAULT_IDENTITY", work.join("key.txt"))
        .env("HOME", work)
        .current_dir(work)
        .output()
        .unwrap();
    Out {
        code: o.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&o.status),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

/// A read-only vault directory: writes fail with exit 1 naming the
/// directory, the vault file is unchanged, and reads still work.
#[test]
fn read_only_vault_directory() {
    if !is_root() {
        // Not root: the test user itself is unprivileged.
        let env = Env::new().init();
        env.create("db", &["A=1"]);
        read_only_checks(&env.dir, &env.file(), &|args| env.vault(args).run());
        return;
    }
    if !have("setpriv") {
        return;
    }
    let env = Env::new();
    let work = env.path("nobody");
    fs::create_dir_all(&work).unwrap();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    write_identity(&work.join("key.txt"));
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&work)
        .status()
        .unwrap();
    assert!(st.success());
    as_nobody(&work, &["secret", "create", "db", "A=1"]).success();
    let dir = work.join("vault");
    read_only_checks(&dir, &dir.join("vault.age"), &|args| as_nobody(&work, args));
}

fn read_only_checks(dir: &Path, file: &Path, vault: &dyn Fn(&[&str]) -> Out) {
    let before = fs::read(file).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o500)).unwrap();
    let writes: &[&[&str]] = &[
        &["secret", "set", "db", "A=2"],
        &["secret", "create", "new", "B=1"],
        &["secret", "delete", "db", "--yes"],
    ];
    for args in writes {
        vault(args)
            .fails(1)
            .stderr_has("permission denied")
            .stderr_has(&dir.display().to_string());
        assert_eq!(
            fs::read(file).unwrap(),
            before,
            "{args:?} changed the vault"
        );
    }
    vault(&["secret", "list"]).success().stdout_has("db");
    vault(&["export", "db"]).success().stdout_has("A=1");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(vault::fsio::stale_temps(file).is_empty());
}

/// Every command that opens the vault, reading or writing.
const OPENERS: &[&[&str]] = &[
    &["secret", "list"],
    &["secret", "show", "db", "--reveal"],
    &["export", "db"],
    &["secret", "set", "db", "A=2"],
    &["secret", "create", "x", "B=1"],
    &["secret", "rename", "db", "pg"],
    &["secret", "delete", "db", "--yes"],
    &["recipients", "list"],
];

/// A damaged `vault.age` in every shape: each command exits 1 with a
/// one-line message that says what is wrong, and the file stays byte for
/// byte what it was. (tests/secret.rs checks two commands on some shapes.)
#[test]
fn damaged_vault_file_every_command() {
    let env = Env::new().init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let good = fs::read(env.file()).unwrap();
    let other = env.path("other-key.txt");
    let theirs = write_identity(&other);
    let foreign = vault::crypto::encrypt_vec(&[theirs], &env.plaintext()).unwrap();
    let mine = env
        .vault(["recipient"])
        .run()
        .success()
        .stdout
        .trim()
        .to_string();
    let not_a_db = vault::crypto::encrypt_vec(std::slice::from_ref(&mine), &[0x42; 8192]).unwrap();
    let nothing = vault::crypto::encrypt_vec(&[mine], b"").unwrap();
    let mac_at = good.windows(5).position(|w| w == b"\n--- ").unwrap();
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x01;
        b
    };
    let shapes: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty", vec![], &["is empty"]),
        (
            "truncated in the header",
            good[..40].to_vec(),
            &["is truncated"],
        ),
        (
            "truncated in the payload",
            good[..good.len() / 2].to_vec(),
            &["is damaged", "is truncated"],
        ),
        (
            "one byte short",
            good[..good.len() - 1].to_vec(),
            &["is damaged"],
        ),
        (
            "a byte appended",
            [&good[..], b"x"].concat(),
            &["is damaged"],
        ),
        (
            "flipped in the payload",
            flip(good.len() - 100),
            &["is damaged"],
        ),
        (
            "flipped in a recipient stanza",
            flip(27),
            &["not encrypted to your key"],
        ),
        (
            "flipped in the header MAC",
            flip(mac_at + 8),
            &["is damaged"],
        ),
        (
            "flipped in the version line",
            flip(3),
            &["is not an age file"],
        ),
        (
            "garbage",
            b"not an age file at all\n".to_vec(),
            &["is not an age file"],
        ),
        ("binary garbage", vec![0xff; 5000], &["is not an age file"]),
        (
            "another age version",
            b"age-encryption.org/v2\n-> X25519 abc\n--- xyz\n0123456789".to_vec(),
            &["is damaged: unknown age format"],
        ),
        (
            "armor with nothing inside",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec(),
            &["is damaged", "is truncated"],
        ),
        (
            "encrypted to someone else",
            foreign,
            &["is not encrypted to your key"],
        ),
        (
            "a payload that is not a database",
            not_a_db,
            &["not a vault database"],
        ),
        ("an empty payload", nothing, &["decrypts to nothing"]),
    ];
    let mut tried = 0;
    for (what, bytes, says) in &shapes {
        fs::write(env.file(), bytes).unwrap();
        for args in OPENERS {
            let out = env.vault(*args).run().fails(1).lacks("SENTINEL-VALUE");
            assert!(
                says.iter().any(|s| out.stderr.contains(s)),
                "{what}: {args:?} says: {}",
                out.stderr
            );
            assert_eq!(
                &fs::read(env.file()).unwrap(),
                bytes,
                "{what}: {args:?} changed it"
            );
            tried += 1;
        }
    }
    // Not a file at all: a directory, a FIFO (no writer: must not hang).
    fs::remove_file(env.file()).unwrap();
    fs::create_dir(env.file()).unwrap();
    for args in OPENERS {
        env.vault(*args).run().fails(1).stderr_has("is a directory");
        assert!(env.file().is_dir());
        tried += 1;
    }
    fs::remove_dir(env.file()).unwrap();
    let st = Command::new("mkfifo").arg(env.file()).status().unwrap();
    assert!(st.success());
    for args in OPENERS {
        let start = Instant::now();
        env.vault(*args)
            .run()
            .fails(1)
            .stderr_has("is not a regular file");
        assert!(start.elapsed() < Duration::from_secs(5));
        tried += 1;
    }
    eprintln!(
        "faults: {} damaged vault files x {} commands = {tried} runs, all exit 1, file unchanged",
        shapes.len() + 2,
        OPENERS.len()
    );
}

/// `identity.age` missing or damaged, for a user who unlocks with a
/// passphrase: exit 1, a clear message, and neither file changes. Missing
/// it must not make a write create a new identity that cannot open the
/// vault (regression: tests/regression.rs).
#[test]
fn missing_or_damaged_identity() {
    let env = Env::with_passphrase("right").init();
    env.create("db", &["A=SENTINEL-VALUE"]);
    let identity = env.dir.join("identity.age");
    let sealed = fs::read(&identity).unwrap();
    let vault_before = fs::read(env.file()).unwrap();
    let text = String::from_utf8(sealed.clone()).unwrap();
    // Flip a character of the armored body (line 2), keeping it base64.
    let body_at = text.find('\n').unwrap() + 10;
    let mut flipped = sealed.clone();
    flipped[body_at] = if flipped[body_at] == b'A' { b'B' } else { b'A' };
    let plain = {
        let p = env.path("plain.txt");
        write_identity(&p);
        fs::read(p).unwrap()
    };
    let shapes: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("missing", None, "no identity at"),
        ("empty", Some(vec![]), "is empty"),
        (
            "truncated",
            Some(sealed[..sealed.len() / 2].to_vec()),
            "identity.age is",
        ),
        ("flipped", Some(flipped), "identity.age"),
        (
            "garbage",
            Some(b"\x00\x01binary\xff".to_vec()),
            "is not an age file",
        ),
        ("a plain identity file", Some(plain), "is not an age file"),
    ];
    let commands: &[&[&str]] = &[
        &["secret", "list"],
        &["export", "db"],
        &["secret", "set", "db", "A=2"],
        &["secret", "create", "x", "B=1"],
        &[
            "recipients",
            "add",
            "age1mh6evuvvf9qpw5jrgtjamlg3sstkspdxv893jj8vrqupf6wg29ls0465sq",
        ],
        &["recipient"],
    ];
    for (what, bytes, says) in &shapes {
        match bytes {
            Some(b) => fs::write(&identity, b).unwrap(),
            None => fs::remove_file(&identity).unwrap(),
        }
        for args in commands {
            env.vault(*args)
                .run()
                .fails(1)
                .stderr_has(says)
                .lacks("SENTINEL-VALUE");
            assert_eq!(
                fs::read(env.file()).unwrap(),
                vault_before,
                "{what}: {args:?}"
            );
            match bytes {
                Some(b) => assert_eq!(&fs::read(&identity).unwrap(), b, "{what}: {args:?}"),
                None => assert!(
                    !identity.exists(),
                    "{what}: {args:?} made a new identity.age"
                ),
            }
        }
    }
    fs::remove_file(&identity).unwrap();
    fs::create_dir(&identity).unwrap();
    for args in commands {
        env.vault(*args).run().fails(1).stderr_has("is a directory");
    }
    fs::remove_dir(&identity).unwrap();
    fs::write(&identity, &sealed).unwrap();
    env.vault(["secret", "list"])
        .run()
        .success()
        .stdout_has("db");
    assert_eq!(fs::read(env.file()).unwrap(), vault_before);
}

// ---------------------------------------------------------------------------
// Nothing on disk

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
    let canary = "CANARY-5e1f0b-full-session";
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
/// SQLite journal, nothing in TMPDIR.
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
            || (name.starts_with(".vault.age.") || name.starts_with(".identity.age."))
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
