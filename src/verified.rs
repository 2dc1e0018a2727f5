//! The verification cache, `VAULT_DIR/cache/verified` (issue 20, DESIGN v2
//! "Performance"): which file versions were verified in full, and the
//! SHA-256 of the database each holds, so that a later read of the same
//! version can open it through the VFS (`crate::vfs`), reading only the
//! chunks it needs, and still check its signature (which covers that hash)
//! and the trust rules.
//!
//! A file version is named by what the kernel says of the open file
//! (device, inode, size, modification and change times in nanoseconds) and
//! by the SHA-256 of its age header and payload nonce. Replacing the file
//! (a new inode), rewriting it in place (a new change time, which no user
//! can set back) or a new encryption (a new header) each make a version the
//! cache does not know.
//!
//! The cache is only ever a speed-up: missing, unreadable, malformed, torn
//! or of another version, it is ignored and the read verifies in full (and
//! records the version again). What it records cannot make a read accept a
//! file that a full verification refuses, only skip hashing the database: a
//! wrong hash fails the signature, and `vault.rs` then verifies in full.
//! Writes record the version they make, and a write from a recorded
//! version skips hashing it (falling back to hashing likewise).
//! Each line also names the header stanza that is likely this user's (the
//! position of their recipient in the file's own list, in which order
//! `vault` encrypts): a later read of that version tries it first, so a
//! member of a large team does not pay one X25519 ladder per stanza before
//! theirs. Only the order of the attempts depends on it; a wrong one costs
//! the attempt it names (`Keys::prefer_stanza`).
//! Written atomically (temporary file and rename) under a short lock of its
//! own, `cache/verified.lock`, never `vault.lock`; not fsynced, since a
//! torn or lost cache is only a slower next read (the last line is a
//! checksum of the rest).

use std::{
    fs::File,
    io::Write,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    time::Duration,
};

use sha2::{Digest, Sha256};

use crate::fsio;

/// The first line of the cache.
/// (v2: every line says how far its database was checked, `verified` or
/// `validated`; v3: and which stanza to try first, or `-`. An older cache
/// is ignored, which costs one full read.)
const MAGIC: &str = "vault-verified v3";

/// The cache keeps this many file versions (a vault per line: the
/// default one and the team vaults a user reads), the latest.
const KEEP: usize = 32;

/// A cache larger than this is not ours.
const MAX_SIZE: u64 = 64 << 10;

/// A header larger than this (thousands of recipients) is verified in full
/// every time.
const MAX_HEADER: u64 = 1 << 20;

/// How long a read waits for another reader's cache update: it skips its
/// own rather than wait longer.
const LOCK_WAIT: Duration = Duration::from_millis(200);

/// One version of a vault file, as the kernel and its header tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i128,
    ctime: i128,
    header: [u8; 32],
}

impl Version {
    /// The version of the open `file`, or `None` when it is no binary age
    /// file (armored: always verified in full) or cannot be read.
    pub(crate) fn of(file: &File) -> Option<Version> {
        let meta = file.metadata().ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Version {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: ns(meta.mtime(), meta.mtime_nsec()),
            ctime: ns(meta.ctime(), meta.ctime_nsec()),
            header: header_sha256(file, meta.size())?,
        })
    }

    fn render(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.dev,
            self.ino,
            self.size,
            self.mtime,
            self.ctime,
            hex(&self.header)
        )
    }
}

/// SHA-256 of the age header of `file` (up to and including its MAC line)
/// and the payload nonce after it.
fn header_sha256(file: &File, size: u64) -> Option<[u8; 32]> {
    let with_nonce = crate::crypto::header_len(file)? + 16;
    if with_nonce > size.min(MAX_HEADER + 16) {
        return None;
    }
    let mut head = vec![0; usize::try_from(with_nonce).ok()?];
    file.read_exact_at(&mut head, 0).ok()?;
    Some(Sha256::digest(&head).into())
}

/// The cache in `vault_dir`.
pub(crate) struct Cache {
    file: PathBuf,
    lock: PathBuf,
}

impl Cache {
    pub(crate) fn new(vault_dir: &Path) -> Cache {
        let dir = vault_dir.join("cache");
        Cache {
            file: dir.join("verified"),
            lock: dir.join("verified.lock"),
        }
    }

    /// What the cache knows of `version`, if it was verified.
    pub(crate) fn lookup(&self, version: &Version) -> Option<Known> {
        let key = version.render();
        self.entries()?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, known)| known)
    }

    /// Records that `version` holds a database whose SHA-256 is `db`, once
    /// it was verified in full, and which of its header's stanzas is
    /// likely this user's. Best effort: a cache that cannot be written is
    /// a slower next read, never an error.
    pub(crate) fn record(&self, version: &Version, db: &[u8; 32], stanza: Option<usize>) {
        let _ = self.try_record(version, Known::new(*db, Checked::Verified, stanza));
    }

    /// `record` of a version a write made: verified (it hashed and signed
    /// the database itself) and every row validated before it was saved.
    pub(crate) fn record_validated(&self, version: &Version, db: &[u8; 32], stanza: Option<usize>) {
        let _ = self.try_record(version, Known::new(*db, Checked::Validated, stanza));
    }

    fn try_record(&self, version: &Version, known: Known) -> Option<()> {
        let dir = fsio::parent(&self.file);
        fsio::ensure_dir(&dir).ok()?;
        let _lock = fsio::WriteLock::acquire_within(&self.lock, LOCK_WAIT).ok()?;
        let key = version.render();
        // Another version of the same file replaces the one cached.
        let same_file = |k: &str| {
            let mut w = k.split(' ');
            let mut v = key.split(' ');
            (w.next(), w.next()) == (v.next(), v.next())
        };
        let mut entries: Vec<_> = self
            .entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !same_file(k))
            .collect();
        entries.push((key, known));
        let skip = entries.len().saturating_sub(KEEP);
        let mut body = format!("{MAGIC}\n");
        for (k, known) in &entries[skip..] {
            let stanza = known
                .stanza
                .map_or_else(|| "-".to_string(), |i| i.to_string());
            body.push_str(&format!(
                "{k} {} {} {stanza}\n",
                hex(&known.db),
                known.checked.word()
            ));
        }
        let sum = hex(&Sha256::digest(body.as_bytes()));
        body.push_str(&format!("end {sum}\n"));
        fsio::atomic_replace(&self.file, false, |f| f.write_all(body.as_bytes())).ok()
    }

    /// Every entry, or `None` when the cache is missing, unreadable or not
    /// exactly what `record` writes.
    fn entries(&self) -> Option<Vec<Entry>> {
        let file = fsio::open_regular(&self.file).ok()?;
        if file.metadata().ok()?.len() > MAX_SIZE {
            return None;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &file, &mut text).ok()?;
        parse(&text)
    }
}

/// For tests: the database hash the cache in `vault_dir` holds for the
/// file at `file` as it is now.
pub fn cached_hash(vault_dir: &Path, file: &Path) -> Option<[u8; 32]> {
    Cache::new(vault_dir)
        .lookup(&Version::of(&File::open(file).ok()?)?)
        .map(|k| k.db)
}

/// For tests: the header stanza the cache in `vault_dir` names for the file
/// at `file` as it is now (`None` for no entry, `Some(None)` for an entry
/// that names none).
pub fn cached_stanza(vault_dir: &Path, file: &Path) -> Option<Option<usize>> {
    Cache::new(vault_dir)
        .lookup(&Version::of(&File::open(file).ok()?)?)
        .map(|k| k.stanza)
}

/// For tests: makes the cache in `vault_dir` say that the file at `file`,
/// as it is now, holds a database hashing to `db` (a forged cache, or a
/// change the file's times did not show).
pub fn record_hash(vault_dir: &Path, file: &Path, db: [u8; 32]) {
    let version = File::open(file).ok().as_ref().and_then(Version::of);
    Cache::new(vault_dir).record(&version.expect("an age file"), &db, None);
}

/// What the cache knows of a file version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// The SHA-256 of its database.
    pub(crate) db: [u8; 32],
    pub(crate) checked: Checked,
    /// The header stanza to try first (a hint: `Keys::prefer_stanza`).
    pub(crate) stanza: Option<usize>,
}

impl Known {
    pub(crate) fn new(db: [u8; 32], checked: Checked, stanza: Option<usize>) -> Known {
        // A header has at most `MAX_HEADER` bytes, so fewer stanzas.
        let stanza = stanza.filter(|&i| i < MAX_HEADER as usize);
        Known {
            db,
            checked,
            stanza,
        }
    }
}

/// How far a recorded database was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Hashed and its signature checked (a full read).
    Verified,
    /// That, and every row validated as a write validates it (a write made it).
    Validated,
}

impl Checked {
    fn word(self) -> &'static str {
        match self {
            Checked::Verified => "verified",
            Checked::Validated => "validated",
        }
    }
}

/// A line of the cache: the version, and what is known of it.
type Entry = (String, Known);

fn parse(text: &str) -> Option<Vec<Entry>> {
    let body_end = text.rfind("end ")?;
    let (body, tail) = text.split_at(body_end);
    let sum = tail.strip_prefix("end ")?.strip_suffix('\n')?;
    if sum != hex(&Sha256::digest(body.as_bytes())) {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    lines
        .map(|line| {
            let (line, stanza) = line.rsplit_once(' ')?;
            let stanza = match stanza {
                "-" => None,
                n if !n.is_empty() && n.len() <= 7 && n.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(n.parse().ok()?)
                }
                _ => return None,
            };
            let (line, checked) = line.rsplit_once(' ')?;
            let checked = match checked {
                "verified" => Checked::Verified,
                "validated" => Checked::Validated,
                _ => return None,
            };
            let (key, db) = line.rsplit_once(' ')?;
            let fields: Vec<&str> = key.split(' ').collect();
            let numbers_ok = fields.len() == 6
                && fields[..5]
                    .iter()
                    .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
            if !numbers_ok || fields[5].len() != 64 {
                return None;
            }
            Some((key.to_string(), Known::new(unhex(db)?, checked, stanza)))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(cache: &Cache, v: &Version) -> Option<[u8; 32]> {
        cache.lookup(v).map(|k| k.db)
    }

    fn age_file(dir: &Path, name: &str) -> (PathBuf, File) {
        let keys = crate::crypto::Keys::from_x25519(crate::crypto::generate());
        let path = dir.join(name);
        fsio::write_fixture(
            &path,
            crate::crypto::encrypt_vec(keys.recipients(), b"database").unwrap(),
        );
        let file = File::open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn a_recorded_version_is_found_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let (_, a) = age_file(dir.path(), "a.age");
        let (_, b) = age_file(dir.path(), "b.age");
        let (va, vb) = (Version::of(&a).unwrap(), Version::of(&b).unwrap());
        assert_eq!(db(&cache, &va), None, "no cache yet");
        cache.record(&va, &[1; 32], None);
        cache.record(&vb, &[2; 32], None);
        assert_eq!(db(&cache, &va), Some([1; 32]));
        assert_eq!(db(&cache, &vb), Some([2; 32]));
        // Another version of a's file replaces its entry.
        let mut va2 = va.clone();
        va2.ctime += 1;
        cache.record(&va2, &[3; 32], None);
        assert_eq!(db(&cache, &va), None);
        assert_eq!(db(&cache, &va2), Some([3; 32]));
        assert_eq!(db(&cache, &vb), Some([2; 32]));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        assert_eq!(mode(&cache.file), 0o600);
    }

    #[test]
    fn a_record_says_how_far_it_was_checked_and_which_stanza_and_an_older_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let (_, a) = age_file(dir.path(), "a.age");
        let (_, b) = age_file(dir.path(), "b.age");
        let (va, vb) = (Version::of(&a).unwrap(), Version::of(&b).unwrap());
        cache.record(&va, &[1; 32], None);
        cache.record_validated(&vb, &[2; 32], Some(11));
        let known = |v| cache.lookup(v).map(|k| (k.db, k.checked, k.stanza));
        assert_eq!(known(&va), Some(([1; 32], Checked::Verified, None)));
        assert_eq!(known(&vb), Some(([2; 32], Checked::Validated, Some(11))));
        // A read's record of the same version replaces a write's.
        cache.record(&vb, &[2; 32], Some(3));
        assert_eq!(known(&vb), Some(([2; 32], Checked::Verified, Some(3))));
        cache.record(&vb, &[2; 32], None);
        // The same lines in the v1 format (no word, no stanza) or the v2
        // one (no stanza), an unknown word or a stanza that is no number,
        // with a correct checksum: not this cache.
        let text = std::fs::read_to_string(&cache.file).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("end "))
            .map(|l| format!("{l}\n"))
            .collect();
        for changed in [
            body.replace(MAGIC, "vault-verified v1")
                .replace(" verified -\n", "\n"),
            body.replace(MAGIC, "vault-verified v2")
                .replace(" verified -\n", " verified\n"),
            body.replace(" verified -\n", " trusted -\n"),
            body.replace(" verified -\n", " verified x\n"),
            body.replace(" verified -\n", " verified -1\n"),
            body.replace(" verified -\n", " verified 99999999999\n"),
            body.replace(" verified -\n", " verified  \n"),
        ] {
            let sum = hex(&Sha256::digest(changed.as_bytes()));
            fsio::write_fixture(&cache.file, format!("{changed}end {sum}\n").as_bytes());
            assert_eq!(db(&cache, &va), None, "{changed}");
        }
    }

    #[test]
    fn a_garbage_or_torn_cache_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let (_, a) = age_file(dir.path(), "a.age");
        let va = Version::of(&a).unwrap();
        cache.record(&va, &[1; 32], None);
        let good = std::fs::read(&cache.file).unwrap();
        for bad in [
            b"garbage".to_vec(),
            good[..good.len() - 10].to_vec(),
            good[..good.len() / 2].to_vec(),
            vec![],
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("0101", "0202", 1)
                .into_bytes(),
        ] {
            fsio::write_fixture(&cache.file, &bad);
            assert_eq!(db(&cache, &va), None);
        }
        cache.record(&va, &[1; 32], None);
        assert_eq!(db(&cache, &va), Some([1; 32]));
    }

    #[test]
    fn the_header_names_a_version_and_other_files_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let (path, a) = age_file(dir.path(), "a.age");
        let v = Version::of(&a).unwrap();
        // The same content at another inode is another version.
        let copy = dir.path().join("copy.age");
        std::fs::copy(&path, &copy).unwrap();
        let w = Version::of(&File::open(&copy).unwrap()).unwrap();
        assert_eq!(v.header, w.header);
        assert_ne!(v, w);
        // Not an age file, an armored one, or a header without its end.
        for bytes in [
            b"hello\n--- x\n0123456789abcdef".as_slice(),
            b"-----BEGIN AGE ENCRYPTED FILE-----\n",
            b"age-encryption.org/v1\n-> X25519 abc\n",
            b"",
        ] {
            fsio::write_fixture(&copy, bytes);
            assert_eq!(Version::of(&File::open(&copy).unwrap()), None);
        }
    }
}
