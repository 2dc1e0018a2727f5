//! Reads whose cost does not grow with the vault (issue 20, DESIGN v2
//! "Performance"): a file version verified once is read through the VFS,
//! a chunk at a time. Damage is still caught (by the first, full read of a
//! version, and by any read of a chunk a query touches), truncation always;
//! the verification cache is only ever a speed-up; a read writes nothing
//! but the cache and `trusted.json`, never takes `vault.lock`, and puts no
//! plaintext in any file.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use vault::testing;

use crate::support::*;

/// age's payload chunk, and what it takes in the file (with its tag).
const CHUNK: usize = 64 << 10;
const SEALED: usize = CHUNK + 16;

/// The value of key `K<k>` of secret `s<i>`: unique, so the test can find
/// where it lies in the database.
fn value(i: usize, k: usize) -> String {
    format!("value-{i:04}-{k}-{}", "x".repeat(90))
}

/// A vault of 1,000 secrets × 10 keys (about 20 chunks).
fn big_vault() -> Env {
    let env = Env::new().init();
    let mut json = String::from("{");
    for i in 0..1000 {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"s{i:04}\": {{"));
        for k in 0..10 {
            if k > 0 {
                json.push(',');
            }
            json.push_str(&format!("\"K{k}\": \"{}\"", value(i, k)));
        }
        json.push('}');
    }
    json.push('}');
    let path = env.write("all.json", json);
    env.vault(["import", "--from-json"])
        .arg_path(&path)
        .run()
        .success();
    fs::remove_file(path).unwrap();
    env
}

/// Where the payload's chunks start in a vault file: after the header's
/// MAC line and the 16-byte nonce.
fn payload_start(file: &[u8]) -> usize {
    let mac = file.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + file[mac..].iter().position(|&b| b == b'\n').unwrap() + 1 + 16
}

fn chunks(file: &[u8]) -> usize {
    (file.len() - payload_start(file)).div_ceil(SEALED)
}

/// `bytes` written over `path` in place (same inode), its modification
/// time kept as it was: only the change time, which no user can set,
/// tells the file changed.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    let mtime = fs::metadata(path).unwrap().modified().unwrap();
    fs::write(path, bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x20;
    b
}

fn export(env: &Env, name: &str) -> Out {
    env.vault(["export", name, "--format", "json"]).run()
}

/// A file version read once is in the cache; read again, it stays there.
fn warm(env: &Env, name: &str) -> [u8; 32] {
    export(env, name).success();
    let h = testing::cached_hash(&env.dir, &env.file()).expect("the first read records it");
    export(env, name).success();
    h
}

#[test]
fn a_chunk_flipped_anywhere_is_caught_by_the_first_read_of_that_version() {
    let env = big_vault();
    let good = fs::read(env.file()).unwrap();
    let n = chunks(&good);
    assert!(n >= 10, "{n} chunks");
    warm(&env, "s0001");
    let start = payload_start(&good);
    for k in 0..n {
        let at = (start + k * SEALED + 1000).min(good.len() - 1);
        rewrite_in_place(&env.file(), &flipped(&good, at));
        assert_eq!(testing::cached_hash(&env.dir, &env.file()), None);
        // The secret read lies in the first chunks: the damage is caught by
        // the full verification, not by the query.
        export(&env, "s0001")
            .fails(1)
            .stderr_has("damaged")
            .lacks("value-0001");
    }
    rewrite_in_place(&env.file(), &good);
    export(&env, "s0001").success().stdout_has(&value(1, 3));
}

#[test]
fn a_chunk_flipped_where_a_query_reads_is_caught_on_a_verified_version() {
    let env = big_vault();
    let good = fs::read(env.file()).unwrap();
    let db_sha256 = warm(&env, "s0001");
    let plain = env.plaintext();
    let chunk_of = |i: usize| {
        let needle = value(i, 5);
        plain
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
            / CHUNK
    };
    let (target, far) = (500, 999);
    let k = chunk_of(target);
    assert!(k > 0 && k != chunk_of(far), "{k}");
    let at = payload_start(&good) + k * SEALED + 2000;
    rewrite_in_place(&env.file(), &flipped(&good, at));
    // The worst case for the cache: it claims the damaged file is the
    // version verified before (as if its change time had not moved).
    testing::record_hash(&env.dir, &env.file(), db_sha256);
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), Some(db_sha256));
    // A query that reads the damaged chunk is refused as damaged...
    export(&env, &format!("s{target:04}"))
        .fails(1)
        .stderr_has("damaged")
        .lacks("value-0");
    env.vault(["run", "-s", &format!("s{target:04}"), "--", "true"])
        .run()
        .fails(1)
        .stderr_has("damaged");
    // ... while one that does not touch it reads, through the VFS (a full
    // verification would refuse the whole file).
    export(&env, &format!("s{far:04}"))
        .success()
        .stdout_has(&value(far, 5));
}

#[test]
fn a_truncated_file_is_refused_even_when_the_cache_claims_it() {
    let env = big_vault();
    let good = fs::read(env.file()).unwrap();
    let db_sha256 = warm(&env, "s0001");
    let start = payload_start(&good);
    for keep in [
        good.len() - 1,
        good.len() - 40,
        start + 3 * SEALED,
        start + SEALED + 10,
    ] {
        rewrite_in_place(&env.file(), &good[..keep]);
        export(&env, "s0001")
            .fails(1)
            .lacks("value-0001")
            .stderr_has(&env.file().display().to_string());
        testing::record_hash(&env.dir, &env.file(), db_sha256);
        let out = export(&env, "s0001").fails(1).lacks("value-0001");
        assert!(
            out.stderr.contains("truncated") || out.stderr.contains("damaged"),
            "{keep}: {out:?}"
        );
    }
}

#[test]
fn the_cache_is_ignored_for_a_replaced_or_rewritten_file_and_when_garbage() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=first"]);
    let first = fs::read(env.file()).unwrap();
    let h1 = warm(&env, "db");
    // Replaced: the same bytes at a new inode are another version.
    let copy = env.dir.join("copy.tmp");
    fs::copy(env.file(), &copy).unwrap();
    fs::rename(&copy, env.file()).unwrap();
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), None);
    export(&env, "db").success().stdout_has("first");
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), Some(h1));
    // Rewritten in place with other content (an older generation of the
    // vault): same inode, same modification time, another version.
    env.vault(["secret", "set", "db", "PGPASSWORD=second"])
        .run()
        .success();
    let h2 = warm(&env, "db");
    assert_ne!(h1, h2);
    rewrite_in_place(&env.file(), &first);
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), None);
    export(&env, "db")
        .success()
        .stdout_has("first")
        .lacks("second");
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), Some(h1));
    // Garbage, an empty file, or a directory where the cache should be.
    let cache = env.dir.join("cache/verified");
    for garbage in [b"garbage\n".as_slice(), b"", &[0xff; 300]] {
        fs::write(&cache, garbage).unwrap();
        export(&env, "db").success().stdout_has("first");
        assert_eq!(testing::cached_hash(&env.dir, &env.file()), Some(h1));
    }
    fs::remove_file(&cache).unwrap();
    fs::create_dir(&cache).unwrap();
    export(&env, "db").success().stdout_has("first");
    fs::remove_dir(&cache).unwrap();
    // Unreadable (a cache dir of the wrong kind) is a full read, no error.
    fs::remove_dir_all(env.dir.join("cache")).unwrap();
    fs::write(env.dir.join("cache"), "not a directory").unwrap();
    export(&env, "db").success().stdout_has("first");
}

/// A cache entry is for one file version: a different signed file put in
/// its place (a forgery re-signed by a stranger, a valid stanza moved onto
/// other content, another vault) is refused exactly as with no cache.
#[test]
fn a_cache_entry_cannot_be_reused_for_a_different_signed_file() {
    let owner = Env::new().init();
    owner.create("db", &["PGPASSWORD=hunter2"]);
    let keys = owner.keys();
    let recipient = owner.recipient();
    let old = fs::read(owner.file()).unwrap();
    let old_sha = warm(&owner, "db");
    let stanza = testing::forge::stanza_of(&old, &keys).unwrap().unwrap();
    owner
        .vault(["secret", "set", "db", "PGPASSWORD=changed"])
        .run()
        .success();
    let newer_db = owner.plaintext();
    warm(&owner, "db");
    // The old file's signature on the newer database, in place or renamed
    // over the file, with the cache warm.
    let moved =
        testing::forge::seal(&newer_db, std::slice::from_ref(&recipient), Some(stanza)).unwrap();
    for in_place in [true, false] {
        if in_place {
            rewrite_in_place(&owner.file(), &moved);
        } else {
            let tmp = owner.dir.join("forged.tmp");
            fs::write(&tmp, &moved).unwrap();
            fs::rename(&tmp, owner.file()).unwrap();
        }
        owner
            .vault(["secret", "list"])
            .run()
            .fails(1)
            .stderr_has("has a bad signature");
    }
    // Even a cache forged to map the moved file to the hash its stanza
    // signs (only this user can write the cache, as trusted.json): the
    // signature covers the generation, read from the file itself.
    testing::record_hash(&owner.dir, &owner.file(), old_sha);
    owner
        .vault(["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("has a bad signature");
    // A stranger's signature, with a cache claiming either hash.
    let resigned = signed_by(&newer_db, &recipient, &Env::new());
    rewrite_in_place(&owner.file(), &resigned);
    testing::record_hash(&owner.dir, &owner.file(), old_sha);
    owner
        .vault(["secret", "show", "db", "--reveal"])
        .run()
        .fails(1)
        .stderr_has("was written by a key you do not trust")
        .lacks("changed");
    let real: [u8; 32] = sha256(&newer_db);
    testing::record_hash(&owner.dir, &owner.file(), real);
    owner
        .vault(["secret", "show", "db", "--reveal"])
        .run()
        .fails(1)
        .stderr_has("was written by a key you do not trust")
        .lacks("changed");
}

/// `db` encrypted to `recipient` and signed by `signer`'s key.
fn signed_by(db: &[u8], recipient: &str, signer: &Env) -> Vec<u8> {
    let signature = testing::forge::signature(db, &signer.keys()).unwrap();
    testing::forge::seal(db, &[recipient.to_string()], Some(signature)).unwrap()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Every file under `dir` but the cache and trusted.json, with its length
/// and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "cache" || name.starts_with("trusted.") {
            continue;
        }
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.insert(p, (m.len(), m.modified().unwrap()));
        }
    }
    out
}

fn reads(name: &str) -> Vec<Vec<String>> {
    [
        vec!["run", "-s", name, "--", "true"],
        vec!["secret", "show", name, "--reveal"],
        vec!["export", name],
        vec!["secret", "list"],
        vec!["secret", "history", name],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(String::from).collect())
    .collect()
}

#[test]
fn reads_never_take_the_vault_lock_and_write_only_the_cache_and_trusted_json() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=hunter2"]);
    let lock = fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.dir.join("vault.lock"))
        .unwrap();
    lock.lock().unwrap();
    let before = snapshot(&env.dir);
    let vault_bytes = fs::read(env.file()).unwrap();
    // The first read (full, recording the cache) and later ones (paged).
    for round in 0..2 {
        for args in reads("db") {
            let t = Instant::now();
            env.vault(&args).run().success();
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{args:?} waited for the lock (round {round})"
            );
        }
    }
    assert!(testing::cached_hash(&env.dir, &env.file()).is_some());
    assert_eq!(snapshot(&env.dir), before);
    assert_eq!(fs::read(env.file()).unwrap(), vault_bytes);
    drop(lock);
}

/// The strace of a command: what it opened for writing, and which writes
/// carried `canary`, by descriptor.
fn strace(env: &Env, args: &[String], canary: &str) -> (Vec<String>, Vec<String>) {
    let log = env.path("strace.log");
    let mut c = Command::new("strace");
    c.args([
        "-f",
        "-qq",
        "-s",
        "1000000",
        "-e",
        "trace=open,openat,openat2,creat,rename,renameat,renameat2,mkdir,mkdirat,write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg",
        "-o",
    ])
    .arg(&log)
    .arg(BIN)
    .args(args);
    let base = env.vault(std::iter::empty::<&str>());
    for (k, v) in base.cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.current_dir(env.tmp.path());
    let out = c.output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    let trace = fs::read_to_string(&log).unwrap();
    let mut opened = vec![];
    let mut carried = vec![];
    for line in trace.lines() {
        let call = line.split_once(' ').map_or(line, |(_, r)| r.trim_start());
        if call.contains("= -1 ") {
            continue;
        }
        let is_open = call.starts_with("open") || call.starts_with("creat");
        let writing = ["O_WRONLY", "O_RDWR", "O_CREAT"]
            .iter()
            .any(|f| call.contains(f));
        if (is_open && writing) || call.starts_with("rename") || call.starts_with("mkdir") {
            opened.push(call.to_string());
        }
        let is_write = ["write(", "pwrite", "writev(", "sendto(", "sendmsg("]
            .iter()
            .any(|w| call.starts_with(w));
        if is_write && call.contains(canary) {
            carried.push(call.split(',').next().unwrap_or(call).to_string());
        }
    }
    (opened, carried)
}

#[test]
fn plaintext_reaches_no_file_and_reads_write_only_the_cache_strace() {
    if !have("strace") {
        return;
    }
    let canary = "CANARY-9d14ae-paged-read";
    let env = Env::new().init();
    env.vault(["secret", "create", "c", "TOKEN"])
        .stdin(canary)
        .run()
        .success();
    let dir = env.dir.display().to_string();
    let allowed = |call: &str| {
        let quoted: Vec<&str> = call.split('"').skip(1).step_by(2).collect();
        quoted.iter().all(|p| {
            let Some(name) = p.strip_prefix(&format!("{dir}/")) else {
                return *p == "/dev/null" || *p == "/dev/tty";
            };
            name == "trusted.json"
                || name == "trusted.lock"
                || name.starts_with(".trusted.json.") && name.ends_with(".tmp")
                || name == "cache"
                || name == "cache/verified"
                || name == "cache/verified.lock"
                || name.starts_with("cache/.verified.") && name.ends_with(".tmp")
        })
    };
    // Cold (the full verification, which records the cache), then warm.
    // (The write recorded the version it made: forgotten, the first read
    // verifies in full.)
    fs::remove_dir_all(env.dir.join("cache")).unwrap();
    let mut opened_cold = None;
    for round in 0..2 {
        for args in reads("c") {
            let (opened, carried) = strace(&env, &args, canary);
            let bad: Vec<_> = opened.iter().filter(|c| !allowed(c)).collect();
            assert!(bad.is_empty(), "{args:?} opened for writing: {bad:#?}");
            // Only `show --reveal` and `export` print it, on stdout.
            assert!(
                carried.iter().all(|c| c.ends_with("(1")),
                "{args:?} wrote the canary to: {carried:?}"
            );
            if round == 0 && opened_cold.is_none() {
                opened_cold = Some(opened);
            } else if round == 1 {
                assert!(
                    opened.iter().all(|c| !c.contains("cache/")),
                    "a warm read rewrote the cache: {opened:?}"
                );
            }
        }
    }
    assert!(
        opened_cold
            .unwrap()
            .iter()
            .any(|c| c.contains("cache/verified")),
        "the first read records the cache"
    );
    for f in env.all_files() {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{} holds the canary",
            f.display()
        );
    }
}

/// A write records the version it made (the next read opens it through
/// the VFS), and a write from a version the cache knows does not hash it
/// again; a wrong hash in the cache (forged, or stale) costs only that
/// speed-up: the write hashes, the signature decides, nothing is lost.
#[test]
fn a_write_records_its_version_and_a_wrong_cached_hash_only_slows_the_next_write() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=first"]);
    assert_eq!(
        testing::cached_hash(&env.dir, &env.file()),
        Some(sha256(&env.plaintext())),
        "the write recorded the version it made"
    );
    env.vault(["secret", "set", "db", "PGPASSWORD=second"])
        .run()
        .success();
    let h2 = sha256(&env.plaintext());
    assert_eq!(testing::cached_hash(&env.dir, &env.file()), Some(h2));
    export(&env, "db").success().stdout_has("second");
    // Forged: the cache claims another database for this very version.
    testing::record_hash(&env.dir, &env.file(), [7; 32]);
    env.vault(["secret", "set", "db", "PGUSER=app"])
        .run()
        .success();
    let out = export(&env, "db").success();
    out.stdout_has("second").stdout_has("app");
    assert_eq!(
        testing::cached_hash(&env.dir, &env.file()),
        Some(sha256(&env.plaintext()))
    );
    // A stranger's signature on this database, put in place, with the
    // cache claiming the hash it signs: the write refuses it as ever and
    // leaves the file as it was.
    let db = env.plaintext();
    let forged = signed_by(&db, &env.recipient(), &Env::new());
    rewrite_in_place(&env.file(), &forged);
    testing::record_hash(&env.dir, &env.file(), sha256(&db));
    env.vault(["secret", "set", "db", "PGUSER=mallory"])
        .run()
        .fails(1)
        .stderr_has("was written by a key you do not trust");
    assert_eq!(fs::read(env.file()).unwrap(), forged, "no partial write");
}

/// Only a version a write made (and so validated row by row) lets the next
/// write check just the rows it changes. A file signed by a member but
/// never validated here, read in full (a read checks the signature, not
/// every row) and so recorded as verified, is validated in full by the
/// next write: a bad row in a secret the write does not touch is refused.
#[test]
fn a_write_validates_every_row_unless_a_write_made_the_version() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=first"]);
    env.create("other", &["TOKEN=x"]);
    let db = env.plaintext();
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &db[..], db.len(), false)
        .unwrap();
    conn.execute_batch(
        "UPDATE entries SET key = 'BAD-KEY' WHERE key = 'TOKEN';
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';",
    )
    .unwrap();
    let bad = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let sealed = signed_by(&bad, &env.recipient(), &env);
    let tmp = env.dir.join("signed.tmp");
    fs::write(&tmp, &sealed).unwrap();
    fs::rename(&tmp, env.file()).unwrap();
    env.vault(["secret", "list"]).run().success();
    assert_eq!(
        testing::cached_hash(&env.dir, &env.file()),
        Some(sha256(&bad)),
        "the read recorded the version"
    );
    env.vault(["secret", "set", "db", "PGPASSWORD=second"])
        .run()
        .fails(1)
        .stderr_has("secret `other` has an invalid key");
    assert_eq!(fs::read(env.file()).unwrap(), sealed, "no partial write");
}
