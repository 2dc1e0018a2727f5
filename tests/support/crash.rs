//! The crash harness: runs a command that replaces a file by rename, kills
//! it with SIGKILL at random moments (most of them timed from the
//! appearance of its temp file, so they land mid-write), and after every
//! kill checks that the file holds the old state or the new one, never
//! anything else, and that temp files do not pile up. `CrashOp` describes
//! the command; tests/crash.rs has one per command that writes.

use std::{
    cell::Cell,
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant, SystemTime},
};

use super::*;

/// A small xorshift generator: the kill delays need to be random, not good;
/// the seed is printed so a run can be repeated (`VAULT_CRASH_SEED=…`).
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn new() -> (Rng, u64) {
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

    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.next() % (span + 1))
    }
}

/// `{"s000": {"K0": …, …, "K4": …}, …}`: `secrets` secrets of 5 keys of
/// `len` bytes each, for `import --from-json`.
pub fn big_json(secrets: usize, len: usize) -> String {
    let mut json = String::with_capacity(secrets * 5 * (len + 16) + 2);
    json.push('{');
    for s in 0..secrets {
        if s > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"s{s:03}\":{{"));
        for k in 0..5 {
            if k > 0 {
                json.push(',');
            }
            let unit = format!("s{s:03}k{k}-");
            let value = unit.repeat(len / unit.len() + 1);
            json.push_str(&format!("\"K{k}\":\"{}\"", &value[..len]));
        }
        json.push('}');
    }
    json.push('}');
    json
}

/// A vault of about 20 MB: 400 secrets of 5 keys of 10,000 bytes (the file
/// is larger than the values: SQLite pages plus age's framing), imported in
/// one go through the bulk JSON path.
pub fn big_vault(env: &Env) -> u64 {
    let json = big_json(400, 10_000);
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
pub type Next<'a> = dyn Fn(&str, usize) -> String + 'a;

/// A command the crash test kills mid-write. Covering another command is
/// one more value of this type: what it replaces, how to run it for loop
/// `i`, how to read the state it changes, and what state it leads to.
pub struct CrashOp<'a> {
    pub name: &'a str,
    /// The file the command replaces by rename; its temp files are
    /// `.NAME.XXXXXX.tmp` beside it.
    pub target: PathBuf,
    /// The command for loop `i` (loop 0 calibrates, run to completion).
    pub command: Box<dyn Fn(usize) -> Cmd + 'a>,
    /// What the vault holds now, read through `vault`, which must succeed:
    /// a vault that no longer opens fails the test right here.
    pub observe: Box<dyn Fn(usize) -> String + 'a>,
    /// The state loop `i`'s command leads to from `old`.
    pub next: Box<Next<'a>>,
    /// Files the command must leave byte for byte as they were.
    pub untouched: Vec<PathBuf>,
    /// What it runs on, for the summary line.
    pub about: String,
    pub loops: usize,
}

#[derive(Debug, Default)]
pub struct Figures {
    pub loops: usize,
    /// Killed with this write's own temp file on disk: mid-write.
    pub mid_write: usize,
    /// Killed before the temp file appeared (still loading, say).
    pub before: usize,
    /// Killed after the rename, or the write had finished.
    pub after: usize,
    /// Kills timed from the command's start rather than the temp file's.
    pub anywhere: usize,
    /// Per kill: `m` mid-write (its temp file was left), `b` before the
    /// temp file existed, `a` after the rename.
    pub timeline: String,
    pub write: Duration,
    pub temp_from: Duration,
    pub temp_until: Duration,
}

pub fn temps(target: &Path) -> BTreeSet<PathBuf> {
    vault::testing::stale_temps(target).into_iter().collect()
}

/// One uninterrupted run of the command, watching the directory: when does
/// its temp file appear and disappear, and when does it end?
pub fn calibrate(op: &CrashOp, i: usize) -> (Duration, Duration, Duration) {
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

pub fn crash_loops(op: &CrashOp) -> Figures {
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
