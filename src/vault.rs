//! The only code that reads or writes vault files.
//!
//! Reading: open `vault.age`, decrypt it as a stream straight into the
//! memory SQLite reads from (a read-only image of our own for commands that
//! only read, SQLite's own buffer for a write; no other plaintext copy,
//! nothing on disk), hashing it on the way; the strict load (`store::check`)
//! before any SQL runs on it; then the signature in its header and the trust
//! rules (`verify`, `trust.rs`; DESIGN v2 "Trust"). Readers take no lock on
//! the vault: a write replaces the file by rename, so a reader sees the old
//! file or the new one (`trusted.json` has a short lock of its own).
//! A file version verified so once is recorded in the verification cache
//! (`verified`); a later read of it opens the database through the VFS
//! (`vfs`, `crypto::Chunks`), decrypting only the chunks its queries touch,
//! and runs the strict load, the signature check (over the recorded hash)
//! and the trust rules on that (issue 20; DESIGN v2 "Performance"). Writes,
//! `doctor` (`open_full`) and `trust` decrypt in full.
//!
//! Writing: obtain the keys (prompt, scrypt) first, then take the exclusive
//! lock, re-check what exists, load and verify, change, validate every row,
//! take the newest generation, serialize, sign, encrypt to exactly the
//! recipients listed in the database plus the signature stanza, and replace
//! the file atomically. A change that turns out to change nothing
//! (`write_if_changed`) stops before the save: the file stays as it was.
//!
//! `identity.age` is written here too, by one function (`write_identity`),
//! and only under `VAULT_DIR/vault.lock` (DESIGN.md, "v2: Hardening"): a
//! first write to `--vault FILE` takes that lock before `FILE.lock`, and
//! `passwd` takes it alone. Keys come from the caller (`unlock`); nothing
//! here asks for a passphrase or reads the command line.

use std::{
    io::{self, BufWriter, Read, Write},
    path::Path,
};

use rusqlite::{Connection, MAIN_DB, Transaction};

use sha2::{Digest, Sha256};

use crate::{
    context::Paths,
    crypto::{self, Keys},
    error::{Error, Result},
    fsio, sign, store, trust, verified,
};

/// An open, decrypted vault: an in-memory SQLite database.
pub(crate) struct Vault {
    conn: Connection,
    provenance: Provenance,
}

impl Vault {
    /// Opens an existing vault for reading: strictly loaded, its signature
    /// checked against what this user trusts. A file version verified in
    /// full before (`verified`) is opened where it lies, through the VFS,
    /// which decrypts only the chunks the queries read (issue 20); any other
    /// is decrypted and verified in full, and then recorded.
    pub(crate) fn open(paths: &Paths, keys: &Keys) -> Result<Vault> {
        Self::open_with(paths, keys, true)
    }

    /// `open`, always decrypting and hashing the whole file, cache or not
    /// (`doctor`).
    pub(crate) fn open_full(paths: &Paths, keys: &Keys) -> Result<Vault> {
        Self::open_with(paths, keys, false)
    }

    fn open_with(paths: &Paths, keys: &Keys, paged: bool) -> Result<Vault> {
        require_exists(&paths.file)?;
        let source = paths.file.display().to_string();
        let file = open_file(&paths.file, &source)?;
        let cache = verified::Cache::new(&paths.dir);
        // The version is read from the open file, so it is the one read.
        let version = verified::Version::of(&file);
        if paged
            && let Some(version) = &version
            && let Some(known) = cache.lookup(version)
            && let Ok(dup) = file.try_clone()
        {
            // The cache only ever speeds a read up: whatever fails here is
            // decided again by the full verification below, which says
            // why (a damaged chunk, a bad signature, ...).
            let paged = load_paged(dup, keys, &source, known).and_then(|loaded| {
                loaded
                    .map(|l| verify(paths, keys, &l).map(|p| (l, p)))
                    .transpose()
            });
            if let Ok(Some((loaded, provenance))) = paged {
                return Ok(Vault {
                    conn: loaded.conn,
                    provenance,
                });
            }
        }
        let loaded = load_input(&file, keys, &source, Access::Read, None)?;
        let provenance = verify(paths, keys, &loaded)?;
        // Recorded only if the file did not change while it was read, and
        // only for this schema version (an older file is migrated in
        // memory, which the VFS cannot do: it takes this path anyway).
        if let Some(version) = version
            && loaded.schema == store::SCHEMA_VERSION
            && verified::Version::of(&file).as_ref() == Some(&version)
        {
            cache.record(
                &version,
                &loaded.db_sha256,
                own_stanza(&provenance.recipients, keys),
            );
        }
        Ok(Vault {
            conn: loaded.conn,
            provenance,
        })
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Who signed the file, and its generation.
    pub(crate) fn provenance(&self) -> &Provenance {
        &self.provenance
    }
}

/// What a file said about itself, once its signature was checked.
#[derive(Debug, Clone)]
pub(crate) struct Provenance {
    /// The file's schema version (before any migration in memory).
    pub(crate) schema: i64,
    /// Its id and generation; `None` for a version-1 file.
    pub(crate) meta: Option<store::Meta>,
    /// The recipient whose signature it carries; `None` if unsigned.
    pub(crate) signer: Option<String>,
    /// Its own `recipients` table.
    pub(crate) recipients: Vec<String>,
    /// The highest generation this user has seen of it.
    pub(crate) newest: Option<u64>,
}

/// The header stanza of a file listing `recipients` that is likely for
/// `keys`: `save` encrypts to the recipients in the order the database
/// lists them, one stanza each, the signature after them. A hint for the
/// next read of the same version (`Keys::prefer_stanza`); `None` when the
/// first stanza is it (age tries that one first anyway) or none is.
fn own_stanza(recipients: &[String], keys: &Keys) -> Option<usize> {
    stanza_of(recipients, |r| keys.is_mine(r))
}

/// The stanza `save` wrote for the first of `recipients` that is `mine`,
/// unless it is the first stanza (or the only recipient).
fn stanza_of(recipients: &[String], mine: impl Fn(&str) -> bool) -> Option<usize> {
    if recipients.len() < 2 {
        return None;
    }
    recipients.iter().position(|r| mine(r)).filter(|&i| i > 0)
}

pub(crate) fn require_exists(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(Error::new(format!("no vault at {}", path.display()))
        .hint("create it with `vault init` (or `vault secret create NAME KEY=VALUE`)"))
}

/// A vault whose database is at least this large (about 20,000 secrets of
/// ten keys) is decrypted by up to `THREADS_MAX` threads, cores allowing.
/// At 8 MB a second thread gained nothing measurable; at 84 MB it took
/// `run` from 163 to 96 ms (BENCHMARKS.md).
const PARALLEL_MIN: u64 = 16 << 20;
const THREADS_MAX: usize = 4;

/// What a loaded database is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// Queries only (`run`, `list`, `show`, ...): the plaintext goes into a
    /// read-only image of our own (`read_only_image`).
    Read,
    /// A read-modify-write: the plaintext goes into SQLite's own resizable
    /// buffer.
    Write,
}

/// Decrypts `path` into a fresh in-memory database and checks it.
/// A decrypted, strictly loaded database and what the reader saw on the
/// way: the schema version and `meta` as in the file, the signature
/// stanzas of its header, and the SHA-256 of the database bytes.
struct Loaded {
    conn: Connection,
    schema: i64,
    meta: Option<store::Meta>,
    signatures: Vec<age_core::format::Stanza>,
    db_sha256: [u8; 32],
    source: String,
}

/// Decrypts `path` into a fresh in-memory database and checks it.
fn load(path: &Path, keys: &Keys, access: Access) -> Result<Loaded> {
    let source = path.display().to_string();
    let file = open_file(path, &source)?;
    load_input(&file, keys, &source, access, None)
}

/// `load` for a write: decrypted in full (every chunk authenticated) and
/// strictly loaded, but a file version the cache in `dir` knows (verified
/// by an earlier read, or made by an earlier write) is not hashed again:
/// its signature is checked against the recorded hash, as a paged read
/// checks it (DESIGN v2 "Performance"). A wrong record fails the
/// signature, and the write then loads again, hashing.
fn load_for_write(
    path: &Path,
    dir: &Path,
    keys: &Keys,
) -> Result<(Loaded, Option<verified::Checked>)> {
    let source = path.display().to_string();
    let file = open_file(path, &source)?;
    let known = verified::Version::of(&file).and_then(|v| verified::Cache::new(dir).lookup(&v));
    keys.prefer_stanza(known.and_then(|k| k.stanza));
    let loaded = load_input(&file, keys, &source, Access::Write, known.map(|k| k.db));
    keys.prefer_stanza(None);
    Ok((loaded?, known.map(|k| k.checked)))
}

/// Refuses, before any lock is taken, a file at `path` that cannot be a
/// vault: empty, or not starting as an age file (`--vault notes.txt`, a
/// `vault.toml` as `VAULT_FILE`). The write would fail on it under the
/// lock anyway, having left `FILE.lock` beside a file that is no vault.
/// No file there is a vault still to create.
fn refuse_not_age(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let source = path.display().to_string();
    let mut file = open_file(path, &source)?;
    match crypto::looks_like_age(&mut file) {
        Ok(true) => Ok(()),
        Ok(false) => Err(crypto::not_an_age_file(&source)),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Opens the vault file at `path`, which must be a regular file that is not
/// empty.
fn open_file(path: &Path, source: &str) -> Result<std::fs::File> {
    let file = fsio::open_regular(path)?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Err(Error::new(format!("{source} is empty"))
            .hint("restore it from a backup or from version control"));
    }
    Ok(file)
}

/// Opens a file version verified before (its database's SHA-256 is
/// `known.db`, from the cache) through the VFS: the header unwrapped (the
/// stanza the cache names tried first), the
/// final chunk authenticated, the strict load and `meta` read through the
/// chunks they need. `None` for an older schema, which only the full path
/// migrates.
fn load_paged(
    file: std::fs::File,
    keys: &Keys,
    source: &str,
    known: verified::Known,
) -> Result<Option<Loaded>> {
    keys.forget_signatures();
    keys.prefer_stanza(known.stanza);
    let chunks = crypto::Chunks::open(file, keys, source);
    keys.prefer_stanza(None);
    let chunks = chunks?;
    let signatures = keys.take_signatures();
    if chunks.len() == 0 {
        return Err(
            Error::new(format!("{source} decrypts to nothing: it is not a vault"))
                .hint("restore it from a backup or from version control"),
        );
    }
    let conn = crate::vfs::open(Box::new(chunks)).map_err(|e| crypto::damaged(&e, source))?;
    let schema = store::check(&conn, source)?;
    if schema != store::SCHEMA_VERSION {
        return Ok(None);
    }
    let meta = Some(store::meta(&conn, source)?);
    Ok(Some(Loaded {
        conn,
        schema,
        meta,
        signatures,
        db_sha256: known.db,
        source: source.to_string(),
    }))
}

/// `load` for a vault file held in memory: what the fuzz targets and their
/// seed tests drive, so that they exercise the code `load` runs, readers
/// and all. Loaded for writing: a read image is never freed (see
/// `read_only_image`), and a fuzzer calls this millions of times.
pub fn load_bytes(bytes: &[u8], keys: &Keys) -> Result<Connection> {
    Ok(load_input(&bytes, keys, "input", Access::Write, None)?.conn)
}

/// `crypto::open` decides how the payload is read (binary, armored, by
/// several threads); this decides what it goes into. Either way the header
/// goes through `Keys`, which keeps its signature stanza.
/// The database's hash is computed on the way unless it is `known` (see
/// `load_for_write`).
fn load_input(
    input: &dyn crypto::ReadAt,
    keys: &Keys,
    source: &str,
    access: Access,
    known: Option<[u8; 32]>,
) -> Result<Loaded> {
    keys.forget_signatures();
    let (plain, len) = crypto::open(input, keys, source, PARALLEL_MIN, THREADS_MAX)?;
    let signatures = keys.take_signatures();
    deserialize(plain, len, source, access, signatures, known)
}

/// Reads through, hashing what passes (the signature covers the database
/// bytes; hashing them on the way costs no second pass).
/// (`None`: the hash is known already, see `load_for_write`.)
struct Hashing<R> {
    inner: R,
    sha: Option<Sha256>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The plaintext database, `len` bytes from `plain`, into memory SQLite
/// reads from, then the strict load (`store::check`) and, for an older
/// schema, the migrations (in a writable copy when the image is read-only).
fn deserialize(
    plain: impl Read,
    len: u64,
    source: &str,
    access: Access,
    signatures: Vec<age_core::format::Stanza>,
    known: Option<[u8; 32]>,
) -> Result<Loaded> {
    let damaged = |e: &dyn std::fmt::Display| crypto::damaged(e, source);
    if len == 0 {
        return Err(
            Error::new(format!("{source} decrypts to nothing: it is not a vault"))
                .hint("restore it from a backup or from version control"),
        );
    }
    let len = usize::try_from(len).map_err(|e| damaged(&e))?;
    let mut plain = Hashing {
        inner: plain,
        sha: known.is_none().then(Sha256::new),
    };
    let mut conn = Connection::open_in_memory()?;
    let mut image = None;
    match access {
        Access::Write => conn
            .deserialize_read_exact(MAIN_DB, &mut plain, len, false)
            .map_err(|e| damaged(&e))?,
        Access::Read => {
            let bytes = read_only_image(&mut plain, len).map_err(|e| match e {
                Image::Memory(e) => Error::new(format!(
                    "cannot get {} MiB of memory to decrypt {source} into: {e}",
                    len.div_ceil(1 << 20)
                ))
                .hint("free some memory (or raise `ulimit -v`) and try again"),
                Image::Read(e) => damaged(&e),
            })?;
            conn.deserialize_bytes(MAIN_DB, bytes)?;
            image = Some(bytes);
        }
    }
    let db_sha256: [u8; 32] = match plain.sha {
        Some(sha) => sha.finalize().into(),
        None => known.unwrap_or_default(),
    };
    let schema = store::check(&conn, source)?;
    let meta = if schema >= 2 {
        Some(store::meta(&conn, source)?)
    } else {
        None
    };
    if schema < store::SCHEMA_VERSION {
        if let Some(bytes) = image {
            // A read-only image cannot migrate: an older file read by this
            // build is migrated in a writable copy (in memory, like all).
            conn = Connection::open_in_memory()?;
            conn.deserialize_read_exact(MAIN_DB, bytes, bytes.len(), false)
                .map_err(|e| damaged(&e))?;
            store::check(&conn, source)?;
        }
        store::migrate(&mut conn, schema)?;
    }
    Ok(Loaded {
        conn,
        schema,
        meta,
        signatures,
        db_sha256,
        source: source.to_string(),
    })
}

/// A database image that is only read, from `len` bytes of `plain`, in an
/// anonymous mapping of its own instead of SQLite's heap.
///
/// Why (issue 6, BENCHMARKS.md): at 100,000 secrets the plaintext is 80 MB,
/// and faulting in 20,000 fresh 4 KiB pages cost `run` as much system time
/// as decrypting them cost user time. This mapping asks for transparent huge
/// pages (`MADV_HUGEPAGE`; the kernel's default "madvise" mode honours it),
/// which takes a single-core `run` at 100k from about 155 to 100 ms.
/// Also kept out of core dumps, and write-protected once filled.
///
/// SQLite needs the image for as long as the connection lives and
/// rusqlite's `deserialize_bytes` takes a `&'static [u8]`, so the mapping is
/// leaked: it goes back to the kernel when the process exits or `run`
/// execs its command. A process loads a vault for reading once.
fn read_only_image(mut plain: impl Read, len: usize) -> std::result::Result<&'static [u8], Image> {
    let mut image = memmap2::MmapMut::map_anon(len).map_err(Image::Memory)?;
    // Advice is best effort: a kernel without THP gives plain pages, one
    // before Linux 5.14 faults them in one by one. (A mapping under 2 MiB
    // gets no huge page either way.)
    let _ = image.advise(memmap2::Advice::HugePage);
    let _ = image.advise(memmap2::Advice::DontDump);
    // Every page faulted in by one call, after the huge-page advice, instead
    // of a trap per page as the decryption first touches it.
    let _ = image.advise(memmap2::Advice::PopulateWrite);
    plain.read_exact(&mut image).map_err(Image::Read)?;
    let image = image.make_read_only().map_err(Image::Memory)?;
    Ok(&Box::leak(Box::new(image))[..])
}

/// Why `read_only_image` failed.
#[derive(Debug)]
enum Image {
    /// No memory for it (or no way to protect it).
    Memory(io::Error),
    /// The plaintext did not come: a damaged file.
    Read(io::Error),
}

/// The second half of `load`, on plaintext database bytes: deserialize and
/// check. For the fuzz target that feeds SQLite and `store::prepare`
/// arbitrary databases, which no one can do through a file without the key.
pub fn load_plaintext(bytes: &[u8]) -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    conn.deserialize_read_exact(MAIN_DB, bytes, bytes.len(), false)?;
    store::prepare(&mut conn, "input")?;
    Ok(conn)
}

/// What a writer needs: the keys, and for a first write with no identity
/// yet, the new `identity.age` to write under the lock, and how to unlock
/// the identity another process may have created meanwhile.
pub(crate) enum WriteKeys<'a> {
    Existing(Keys),
    NewOwner {
        keys: Keys,
        sealed: Vec<u8>,
        existing: Box<dyn FnOnce() -> Result<Keys> + 'a>,
    },
}

impl WriteKeys<'_> {
    pub(crate) fn keys(&self) -> &Keys {
        match self {
            WriteKeys::Existing(k) | WriteKeys::NewOwner { keys: k, .. } => k,
        }
    }

    fn is_new_owner(&self) -> bool {
        matches!(self, WriteKeys::NewOwner { .. })
    }
}

/// Runs `change` as one read-modify-write of the vault, creating the vault
/// (and, if needed, the owner's identity) when it does not exist yet.
pub(crate) fn write<T>(
    paths: &Paths,
    keys: WriteKeys,
    change: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    read_modify_write(paths, keys, Mode::Change, |tx| {
        change(tx).map(Outcome::Changed)
    })
    .map(Outcome::into_inner)
}

/// What a change made of the vault, as `write_if_changed` hears it.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Saved: a new generation, signed, with whatever history it made.
    Changed(T),
    /// Nothing to save: the transaction is rolled back and the file left
    /// as it was, byte for byte.
    Unchanged(T),
}

impl<T> Outcome<T> {
    pub(crate) fn into_inner(self) -> T {
        match self {
            Outcome::Changed(t) | Outcome::Unchanged(t) => t,
        }
    }
}

/// `write` for a change that may turn out to change nothing (`recipients
/// add` of members, `delete --allow-missing` of names that are not there,
/// a description set to what it is): `change`, under the lock and on the
/// vault as it is, says which. An unchanged vault is not rewritten: a new
/// generation, a new signature and a new file for git to commit, for
/// nothing, would tell teammates something changed. Nothing is created
/// either when there was no vault (an identity made for a first write
/// stays, as after a first write that fails).
pub(crate) fn write_if_changed<T>(
    paths: &Paths,
    keys: WriteKeys,
    change: impl FnOnce(&Transaction) -> Result<Outcome<T>>,
) -> Result<Outcome<T>> {
    read_modify_write(paths, keys, Mode::Change, change)
}

/// `write` for a bulk change (`import --from-json`): the database is rebuilt
/// (`VACUUM`) before it is saved. Appending many secrets leaves SQLite's
/// index pages about 84% full; rebuilt they are 95% full, the vault 10%
/// smaller, and every later read has 10% less to decrypt (BENCHMARKS.md).
/// The rebuild costs about one load, once; on every write it would not pay.
pub(crate) fn write_bulk<T>(
    paths: &Paths,
    keys: WriteKeys,
    change: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    read_modify_write(paths, keys, Mode::Bulk, |tx| {
        change(tx).map(Outcome::Changed)
    })
    .map(Outcome::into_inner)
}

/// Creates a new, empty vault; refuses to replace an existing one (the
/// caller checks first too, before asking for keys).
pub(crate) fn init(paths: &Paths, keys: WriteKeys) -> Result<()> {
    refuse_existing(&paths.file)?;
    read_modify_write(paths, keys, Mode::Create, |_| Ok(Outcome::Changed(())))
        .map(Outcome::into_inner)
}

/// "a vault already exists at …".
pub(crate) fn refuse_existing(file: &Path) -> Result<()> {
    // `init --vault /dev/null` is not "a vault already exists".
    fsio::refuse_non_regular(file)?;
    if file.exists() {
        return Err(
            Error::new(format!("a vault already exists at {}", file.display()))
                .hint("`vault secret list` shows what it holds; move the file aside to start over"),
        );
    }
    Ok(())
}

/// A vault file exists but `identity.age` does not: a new identity could
/// not open it, so a write must not make one (it would also replace the
/// spot where the user's backup of the real one belongs).
pub(crate) fn orphaned_vault(paths: &Paths) -> Error {
    Error::new(format!(
        "no identity at {} to open the vault at {}",
        paths.identity.display(),
        paths.file.display()
    ))
    .hint("restore identity.age from a backup, or pass the identity that opens the vault with --identity / VAULT_IDENTITY")
}

/// `VAULT_DIR/vault.lock`, held: what `write_identity` asks for as proof.
pub(crate) struct DirLock(#[allow(dead_code, reason = "held, not read")] fsio::WriteLock);

impl DirLock {
    pub(crate) fn acquire(paths: &Paths) -> Result<DirLock> {
        Ok(DirLock(fsio::WriteLock::acquire(&paths.dir_lock)?))
    }
}

/// The one function that writes `identity.age` (a first write's new
/// identity, `passwd`'s new passphrase): atomically, after removing stale
/// temporary files, and only with `VAULT_DIR/vault.lock` held.
pub(crate) fn write_identity(paths: &Paths, _held: &DirLock, sealed: &[u8]) -> Result<()> {
    fsio::remove_stale_temps(&paths.identity);
    fsio::atomic_write(&paths.identity, |f| f.write_all(sealed))
}

/// Replaces `identity.age` (`passwd`), under `VAULT_DIR/vault.lock`.
pub(crate) fn replace_identity(paths: &Paths, sealed: &[u8]) -> Result<()> {
    fsio::ensure_dir(&paths.dir)?;
    let held = DirLock::acquire(paths)?;
    write_identity(paths, &held, sealed)
}

/// What a read-modify-write is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create a vault; refuse if one exists.
    Create,
    /// Change a vault (creating it if needed).
    Change,
    /// Change many secrets, then rebuild the database compactly.
    Bulk,
    /// Sign a file the user vouched for (`vault trust`): no trust check.
    Trust,
}

/// Keys come first, from the caller: a slow prompt or scrypt must not hold
/// other writers up.
fn read_modify_write<T>(
    paths: &Paths,
    mut keys: WriteKeys,
    mode: Mode,
    change: impl FnOnce(&Transaction) -> Result<Outcome<T>>,
) -> Result<Outcome<T>> {
    // A device or FIFO there (`--vault /dev/stdin`) must never have a
    // file renamed over it.
    fsio::refuse_non_regular(&paths.file)?;
    // Both before any lock file is made (and the first re-checked under
    // the lock): `init --vault notes.txt` is "already exists".
    if mode == Mode::Create {
        refuse_existing(&paths.file)?;
    }
    refuse_not_age(&paths.file)?;
    fsio::ensure_dir(&paths.dir)?;
    fsio::ensure_dir(&fsio::parent(&paths.file))?;
    // The directory's lock first, then the file's: the same order for every
    // writer, so no two wait for each other. For the default vault they are
    // one lock.
    let shared = paths.lock == paths.dir_lock;
    let (dir_lock, _lock) = loop {
        let dir_lock = if shared || keys.is_new_owner() {
            Some(DirLock::acquire(paths)?)
        } else {
            None
        };
        let lock = if shared {
            None
        } else {
            Some(fsio::WriteLock::acquire(&paths.lock)?)
        };
        if keys.is_new_owner() && paths.identity.exists() {
            // Another process created the identity while we prepared ours:
            // use theirs. Unlocking costs scrypt, so not under the lock.
            drop((dir_lock, lock));
            keys = match keys {
                WriteKeys::NewOwner { existing, .. } => WriteKeys::Existing(existing()?),
                existing => existing,
            };
            continue;
        }
        break (dir_lock, lock);
    };
    // Re-checked under the lock: someone may have created it meanwhile.
    if mode == Mode::Create {
        refuse_existing(&paths.file)?;
    }
    if keys.is_new_owner() && paths.file.exists() {
        // A new identity cannot open a vault made for the old one; writing
        // its identity.age would only bury the way back.
        return Err(orphaned_vault(paths));
    }
    fsio::remove_stale_temps(&paths.file);
    if let Some(held) = &dir_lock {
        fsio::remove_stale_temps(&paths.identity);
        if let WriteKeys::NewOwner { sealed, .. } = &keys {
            write_identity(paths, held, sealed)?;
        }
    }
    let keys = keys.keys();
    // The file must pass the strict load and the trust check before a
    // write starts from it (invariant 5); `before` is whom it lists.
    let (mut conn, before, cached) = if paths.file.exists() {
        let (mut loaded, mut cached) = load_for_write(&paths.file, &paths.dir, keys)?;
        let before = if mode == Mode::Trust {
            store::recipients(&loaded.conn)?
        } else {
            match verify(paths, keys, &loaded) {
                Ok(p) => p.recipients,
                // The cache's hash may be wrong (it is only ever a
                // speed-up): hashed, the file decides.
                Err(_) if cached.is_some() => {
                    loaded = load(&paths.file, keys, Access::Write)?;
                    cached = None;
                    verify(paths, keys, &loaded)?.recipients
                }
                Err(e) => return Err(e),
            }
        };
        (loaded.conn, before, cached)
    } else {
        (store::create(keys.recipients())?, vec![], None)
    };
    // Which `entries` rows this write inserts or updates (`update_hook`
    // sees every row change of a rowid table, cascades and upserts
    // included): from a database validated before, only those need the
    // entry checks again. (Not for a rebuild or a vault being trusted.)
    let incremental = mode == Mode::Change && cached == Some(verified::Checked::Validated);
    let touched = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    if incremental {
        let seen = touched.clone();
        conn.update_hook(Some(
            move |action: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
                if table == "entries"
                    && action != rusqlite::hooks::Action::SQLITE_DELETE
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.push(rowid);
                }
            },
        ))?;
    }
    // History records the writer's recipient with every version it makes.
    let author = keys.recipients().first().cloned().unwrap_or_default();
    store::set_author(&conn, &author)?;
    let tx = conn.transaction()?;
    let out = match change(&tx) {
        Ok(out) => out,
        // A row the change could not handle (a BLOB value, a secret
        // without keys): say what is damaged, as a read does and as the
        // validation below would, rather than what SQLite met.
        Err(e) if e.is_data_fault() => {
            drop(tx);
            store::validate(&conn, &paths.file.display().to_string())?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Outcome::Unchanged(_) = out {
        // Rolled back (whatever the change tried is undone), and nothing
        // is saved, signed or recorded: the file stays as it was.
        drop(tx);
        return Ok(out);
    }
    tx.commit()?;
    conn.update_hook(None::<fn(rusqlite::hooks::Action, &str, &str, i64)>)?;
    let source = paths.file.display().to_string();
    // Every row as if typed by a user, before anything is saved: from a
    // validated database, the entries of the secrets this write touched
    // and every other table in full (foreign keys are on, so no change
    // can leave an entry without its secret).
    if incremental {
        let rowids = std::mem::take(&mut *touched.lock().map_err(|_| Error::new("poisoned"))?);
        let only = store::secrets_of_entries(&conn, &rowids)?;
        store::validate_with(&conn, &source, Some(&only))?;
    } else {
        store::validate(&conn, &source)?;
    }
    let meta = store::meta(&conn, &source)?;
    let after = store::recipients(&conn)?;
    let id = meta.id_hex();
    let at = trust_path(paths);
    let trusted = trust::Store::new(&paths.dir);
    let state = trusted.load()?;
    trust::check_write(
        &state,
        &id,
        meta.generation,
        &before,
        &after,
        paths.allow_older || mode == Mode::Trust,
    )
    .map_err(|r| refusal(r, &source, paths))?;
    // The newest generation: above the file's and above all seen.
    let generation = trust::next_generation(&state, &id, meta.generation);
    store::set_generation(&conn, generation)?;
    if mode == Mode::Bulk {
        // In memory like everything else (temp_store = MEMORY); the rebuilt
        // database has no free pages left to carry old bytes.
        conn.execute_batch("VACUUM")?;
    }
    let (digest, stanza) = save(&mut conn, &paths.file, keys, true)?;
    // You made this version: the next read opens it through the VFS and
    // the next write need not hash it. (Under `vault.lock`, so the file
    // is the one just renamed there; were it not, its header would fail
    // the signature with this hash, and that read verify in full.)
    if let Ok(file) = fsio::open_regular(&paths.file)
        && let Some(version) = verified::Version::of(&file)
    {
        verified::Cache::new(&paths.dir).record_validated(&version, &digest, stanza);
    }
    let db_sha256 = hex(&digest);
    // You signed it: its recipients are the trusted set.
    trusted
        .update(|st| trust::record_write(st, &at, &id, generation, &before, &after, &db_sha256))?;
    Ok(out)
}

// ------------------------------------------------- git's merge driver

/// One of the three files git hands its merge driver, decrypted in full,
/// strictly loaded and verified as a read verifies (DESIGN v2 "Git").
pub(crate) struct MergeInput<S> {
    pub(crate) conn: Connection,
    pub(crate) provenance: Provenance,
    /// What `summarize` made of it, on the thread that loaded it.
    pub(crate) summary: S,
}

/// What `load_merge` returns: BASE, OURS and THEIRS, and `trusted.json`
/// as it was before any of them was read.
pub(crate) struct MergeInputs<S> {
    pub(crate) base: MergeInput<S>,
    pub(crate) ours: MergeInput<S>,
    pub(crate) theirs: MergeInput<S>,
    before: trust::State,
}

/// Which of git's three files a merge input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Base,
    Ours,
    Theirs,
}

impl Role {
    /// Only OURS is changed; BASE and THEIRS are only read, from read-only
    /// images that SQLite reads in place (`mmap_size`: no copy of every
    /// page into its cache).
    fn access(self) -> Access {
        if self == Role::Ours {
            Access::Write
        } else {
            Access::Read
        }
    }
}

/// Loads git's `%O %A %B`: the three headers are unwrapped here (the keys
/// may be the agent's, which serves one request at a time), then the three
/// payloads are decrypted, loaded and `summarize`d side by side (told which
/// side it has: OURS's rows it must check, BASE's it may leave for later),
/// so a merge costs about one decryption on each core instead of three in a
/// row (BENCHMARKS.md, "Merge"). BASE and THEIRS get a thread each and
/// OURS, the largest job, runs on this one: a spawned thread's malloc arena
/// grows a page at a time (an `mprotect` each as SQLite's page cache fills,
/// about 250 of them), the main arena by brk's 128 KiB pad (BENCHMARKS.md,
/// "Merge, follow-up 3"). Then each must pass Trust exactly as a
/// read does (`verify`), in the order BASE, THEIRS, OURS, so that when two
/// branches reach the same generation, your own branch's members are the
/// ones trusted last; `at` is where the vault lives in the work tree
/// (git's PATH), none for a bare `vault git merge` of three files.
/// BASE and the other branch may be older than the newest generation seen,
/// by nature: no note for that. All three must carry the same vault id,
/// and an unsigned (version-1) input is accepted only when OURS is
/// unsigned too: a forged version-1-shaped file on a branch must not slip
/// in where the vault is signed.
pub(crate) fn load_merge<S: Send>(
    paths: &Paths,
    at: Option<&str>,
    files: [(&Path, String); 3],
    keys: &Keys,
    summarize: impl Fn(&Connection, Role) -> Result<S> + Sync,
) -> Result<MergeInputs<S>> {
    let before = trust::Store::new(&paths.dir).load()?;
    let mut opened = vec![];
    for (path, label) in &files {
        let file = fsio::open_regular(path)?;
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            return Err(Error::new(format!("{label} is empty"))
                .hint("restore it from version control (`git checkout --ours/--theirs`)"));
        }
        opened.push(file);
    }
    let mut readers = vec![];
    let roles = [Role::Base, Role::Ours, Role::Theirs];
    for ((file, (_, label)), role) in opened.iter().zip(&files).zip(roles) {
        keys.forget_signatures();
        let (plain, len) = crypto::open(file, keys, label, PARALLEL_MIN, 1)?;
        readers.push((plain, len, keys.take_signatures(), label.as_str(), role));
    }
    let summarize = &summarize;
    let load = |(plain, len, signatures, label, role): (_, u64, _, &str, Role)| {
        let access = role.access();
        let loaded = deserialize(plain, len, label, access, signatures, None)?;
        if access == Access::Read {
            loaded.conn.pragma_update(None, "mmap_size", len as i64)?;
        }
        let summary = summarize(&loaded.conn, role)?;
        Ok((loaded, summary))
    };
    let load = &load;
    let results: Vec<Result<(Loaded, S)>> = std::thread::scope(|s| {
        let mut handles = vec![];
        let mut here = None;
        for reader in readers {
            if matches!(reader, (.., Role::Ours)) {
                here = Some(reader);
            } else {
                handles.push(s.spawn(move || load(reader)));
            }
        }
        let ours = here.map(load);
        let mut out: Vec<Result<(Loaded, S)>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        "internal error: a thread loading the merge inputs panicked",
                    ))
                })
            })
            .collect();
        if let Some(ours) = ours {
            out.insert(1, ours);
        }
        out
    });
    let mut results = results.into_iter();
    let mut next = || {
        results
            .next()
            .unwrap_or_else(|| Err(Error::new("internal error: a merge input went missing")))
    };
    let (base, ours, theirs) = (next()?, next()?, next()?);
    let verified = |(loaded, summary): (Loaded, S)| -> Result<MergeInput<S>> {
        let provenance = verify_at(paths, at, keys, &loaded, false)?;
        Ok(MergeInput {
            conn: loaded.conn,
            provenance,
            summary,
        })
    };
    let labels = [&files[0].1, &files[1].1, &files[2].1];
    // All three must be one vault (each file's own id; a version-1 file
    // has none), checked before any input's trust check at git's PATH
    // could call another vault a replaced one.
    let ids: Vec<String> = [&base, &ours, &theirs]
        .iter()
        .filter_map(|(l, _)| l.meta.as_ref().map(|m| m.id_hex()))
        .collect();
    if ids.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::new(format!(
            "{}, {} and {} are different vaults (their vault ids differ)",
            labels[0], labels[1], labels[2]
        ))
        .hint("a vault can only be merged with another version of itself; take one side (`git checkout --ours` or `--theirs`) and redo the other's changes"));
    }
    let base = verified(base)?;
    let theirs = verified(theirs)?;
    let ours = verified(ours)?;
    let inputs = [&base, &ours, &theirs];
    if ours.provenance.signer.is_some() {
        for (input, label) in inputs.iter().zip(labels) {
            if input.provenance.signer.is_none() {
                return Err(Error::new(format!(
                    "{label} is not signed, but {} is: an unsigned vault cannot be merged into a signed one",
                    labels[1]
                ))
                .hint("a forged version-1 file on a branch must not slip in; ask whoever made that branch to write the vault with this version of vault"));
            }
        }
    }
    Ok(MergeInputs {
        base,
        ours,
        theirs,
        before,
    })
}

impl<S> MergeInputs<S> {
    /// Writes the merge result (OURS's database, as `merge::apply` changed
    /// it) to `out`, git's temporary copy of OURS: every row validated
    /// as for any write, the newest generation, signed by you, encrypted to
    /// exactly the recipients it lists, by temporary file and rename beside
    /// `out` (no fsync: git owns that file).
    /// No `vault.lock`: `out` is not the vault's path. `checked`: the
    /// secrets whose entries the merge wrote, when every other entry row
    /// of OURS was checked as it was read (`store::validate_with`); `shown`
    /// names the vault (git's PATH) in an error. A member the result
    /// lists whom a newer trusted file removed is refused unless an input
    /// that lists them is at least that new (the removal is not news to
    /// it) or `--allow-older` says so: a replayed old file on a branch must
    /// not bring a removed member back through a merge.
    pub(crate) fn write(
        &mut self,
        paths: &Paths,
        out: &Path,
        keys: &Keys,
        checked: Option<&[i64]>,
        shown: &str,
    ) -> Result<()> {
        // What each input listed, and how new it was.
        let seen: Vec<(&[String], Option<u64>)> = [&self.base, &self.ours, &self.theirs]
            .iter()
            .map(|i| {
                (
                    i.provenance.recipients.as_slice(),
                    i.provenance.meta.map(|m| m.generation),
                )
            })
            .collect();
        let highest = seen.iter().filter_map(|s| s.1).max().unwrap_or(0);
        let result = &self.ours.conn;
        let source = out.display().to_string();
        fsio::refuse_non_regular(out)?;
        store::validate_with(result, &source, checked)?;
        let meta = store::meta(result, &source)?;
        let id = meta.id_hex();
        let after = store::recipients(result)?;
        if let Some(known) = self.before.vaults.get(&id)
            && !paths.allow_older
        {
            for r in &after {
                let Some(&removed_at) = known.removed.get(r) else {
                    continue;
                };
                let knows = seen
                    .iter()
                    .any(|(rs, g)| rs.contains(r) && g.is_some_and(|g| g >= removed_at));
                if !knows {
                    // git runs the driver: `--allow-older` goes into the
                    // driver's command line, for this one merge.
                    return Err(Error::new(format!(
                        "merging {shown} would encrypt it to {r}, whom generation {removed_at} removed"
                    ))
                    .hint(
                        "no side of the merge that lists them is that new (a branch made before the removal, or a replayed file); if they belong back: `git merge --abort`, then `git -c merge.vault.driver='vault --allow-older git merge %O %A %B %P' merge …`"
                    ));
                }
            }
        }
        let trusted = trust::Store::new(&paths.dir).load()?;
        let generation = trust::next_generation(&trusted, &id, highest);
        store::set_generation(&self.ours.conn, generation)?;
        // Not recorded in `trusted.json` here: `out` is git's copy, and the
        // first read of the result (signed by you, the newest generation)
        // adopts it as your own write would. Recording it would cost the
        // merge an fsync of `trusted.json`, several times its own work on
        // a slow disk (BENCHMARKS.md, "Merge").
        save(&mut self.ours.conn, out, keys, false)?;
        Ok(())
    }
}

/// Serializes the database and replaces `path` with it, encrypted to
/// exactly the recipients the database lists (never "me plus the table":
/// a teammate's write must not drop the owner), and signed by `keys`
/// (DESIGN v2 "Trust"): one more header stanza, `-> vault-sig v1 <fp>`.
/// Returns the SHA-256 of the database it saved, and the header stanza it
/// wrote for the signer (`own_stanza`).
fn save(
    conn: &mut Connection,
    path: &Path,
    keys: &Keys,
    durable: bool,
) -> Result<([u8; 32], Option<usize>)> {
    let listed = store::recipients(conn)?;
    if listed.is_empty() {
        return Err(
            Error::new("the vault lists no recipients, so nobody could open it")
                .hint("`vault recipients add age1…` first"),
        );
    }
    let meta = store::meta(conn, &path.display().to_string())?;
    let data = conn.serialize(MAIN_DB)?;
    // One hash of the database for both the signature and the result.
    let digest: [u8; 32] = Sha256::digest(&data[..]).into();
    let (signature, signer) = sign_database(&digest, &meta, &listed, keys)?;
    let mut recipients = crypto::parse_recipients(&listed)?;
    recipients.push(Box::new(signature));
    fsio::atomic_replace(path, durable, |f| {
        let mut w = BufWriter::with_capacity(1 << 16, f);
        crypto::encrypt_to(&recipients, &data, &mut w)?;
        w.flush()
    })?;
    Ok((digest, stanza_of(&listed, |r| r == signer)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature stanza for a database whose SHA-256 is `db_sha256` and
/// whose `meta` is given, and the recipient whose key made it.
fn sign_database(
    db_sha256: &[u8; 32],
    meta: &store::Meta,
    listed: &[String],
    keys: &Keys,
) -> Result<(SignatureStanza, String)> {
    let msg = sign::message(&meta.vault_id, meta.generation, db_sha256);
    let signature = keys.sign(&msg, listed)?;
    let stanza = SignatureStanza {
        fingerprint: sign::fingerprint(&signature.recipient),
        body: signature.bytes,
    };
    Ok((stanza, signature.recipient))
}

/// For tests that forge vault files (`testing`): database bytes signed by
/// `keys` (as `save` signs them), or by nobody, or with a stanza taken from
/// elsewhere, encrypted to `recipients`.
pub mod forge {
    use super::*;

    /// `(fingerprint, body)` of the signature `keys` would give `db`
    /// (whose `meta` is read without any check).
    pub fn signature(db: &[u8], keys: &Keys) -> Result<(String, Vec<u8>)> {
        let mut conn = Connection::open_in_memory()?;
        conn.deserialize_read_exact(MAIN_DB, db, db.len(), false)?;
        let meta = store::meta(&conn, "input")?;
        let (s, _) = sign_database(&Sha256::digest(db).into(), &meta, keys.recipients(), keys)?;
        Ok((s.fingerprint, s.body))
    }

    /// `db` encrypted to `recipients`, with `signature` as its stanza.
    pub fn seal(
        db: &[u8],
        recipients: &[String],
        signature: Option<(String, Vec<u8>)>,
    ) -> Result<Vec<u8>> {
        let mut rs = crypto::parse_recipients(recipients)?;
        if let Some((fingerprint, body)) = signature {
            rs.push(Box::new(SignatureStanza { fingerprint, body }));
        }
        let mut out = vec![];
        crypto::encrypt_to(&rs, db, &mut out).map_err(|e| Error::new(e.to_string()))?;
        Ok(out)
    }

    /// The signature stanza of a vault file, as a reader sees it.
    pub fn stanza_of(file: &[u8], keys: &Keys) -> Result<Option<(String, Vec<u8>)>> {
        let loaded = load_input(&file, keys, "input", Access::Write, None)?;
        Ok(loaded
            .signatures
            .into_iter()
            .next()
            .and_then(|s| Some((s.args.get(1)?.clone(), s.body))))
    }
}

/// The pseudo-recipient that writes the signature into the age header: it
/// wraps no file key, it adds the stanza. Its label set is empty, like
/// X25519's and ssh's, so age 0.12 mixes it with them; age implementations
/// skip a stanza they do not know, so stock `age -d` still decrypts.
struct SignatureStanza {
    fingerprint: String,
    body: Vec<u8>,
}

impl age::Recipient for SignatureStanza {
    fn wrap_file_key(
        &self,
        _file_key: &age_core::format::FileKey,
    ) -> std::result::Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        let stanza = age_core::format::Stanza {
            tag: sign::STANZA_TAG.to_string(),
            args: vec![sign::STANZA_VERSION.to_string(), self.fingerprint.clone()],
            body: self.body.clone(),
        };
        Ok((vec![stanza], std::collections::HashSet::new()))
    }
}

/// The path a vault is known by in `trusted.json`: resolved, so that a
/// symlink and its target are one path.
fn trust_path(paths: &Paths) -> String {
    std::fs::canonicalize(&paths.file)
        .unwrap_or_else(|_| paths.file.clone())
        .display()
        .to_string()
}

/// The signature check of DESIGN v2 "Trust" on a loaded file, and the
/// update of `trusted.json` it implies. Refusals are errors (exit 1,
/// nothing run, file unchanged).
fn verify(paths: &Paths, keys: &Keys, loaded: &Loaded) -> Result<Provenance> {
    verify_at(paths, Some(&trust_path(paths)), keys, loaded, true)
}

/// `verify` of a file known at `at` in `trusted.json` (none for git's
/// temporary copies: see `trust::decide_at`); `paths` names the vault in
/// hints.
fn verify_at(
    paths: &Paths,
    at: Option<&str>,
    keys: &Keys,
    loaded: &Loaded,
    older_note: bool,
) -> Result<Provenance> {
    let source = &loaded.source;
    let refuse = |r| refusal(r, source, paths);
    // The first rows every read looks at: one that fails is a damaged
    // vault (DESIGN v2 "Schema"), as `validate` says it on a write.
    let recipients =
        store::recipients(&loaded.conn).map_err(|e| store::damaged(source, e.message()))?;
    let trusted = trust::Store::new(&paths.dir);
    let mut state = None;
    let (signer, seen_id) = match (loaded.signatures.as_slice(), loaded.meta) {
        ([], _) => (None, None),
        ([stanza], Some(meta))
            if stanza.args.len() == 2 && stanza.args[0] == sign::STANZA_VERSION =>
        {
            let fingerprint = &stanza.args[1];
            let id = meta.id_hex();
            let st = state.insert(trusted.load()?);
            // Your own recipients only when no member matches: from the
            // agent they cost a round trip, and `run` is on every path.
            let signer = st
                .signer_candidates(&id, &recipients)
                .into_iter()
                .find(|c| sign::fingerprint(c) == *fingerprint)
                .or_else(|| {
                    keys.recipients()
                        .iter()
                        .find(|c| sign::fingerprint(c) == *fingerprint)
                        .cloned()
                })
                .ok_or_else(|| {
                    refuse(trust::Refusal::Untrusted {
                        fingerprint: fingerprint.clone(),
                        listed: false,
                    })
                })?;
            let msg = sign::message(&meta.vault_id, meta.generation, &loaded.db_sha256);
            if !sign::verify(&signer, &msg, &stanza.body) {
                return Err(refuse(trust::Refusal::BadSignature));
            }
            (Some(signer), Some((id, meta.generation)))
        }
        _ => return Err(refuse(trust::Refusal::BadSignature)),
    };
    let db_hex = hex(&loaded.db_sha256);
    let seen = match (&signer, &seen_id) {
        (Some(signer), Some((id, generation))) => trust::Seen::Signed {
            vault_id: id,
            generation: *generation,
            signer,
            recipients: &recipients,
            db_sha256: &db_hex,
        },
        _ => trust::Seen::Unsigned {
            schema: loaded.schema,
        },
    };
    let is_me = |r: &str| keys.is_mine(r);
    let (notes, newest) = trusted.update_from(state, |st| {
        let verdict = trust::decide_at(st, at, seen, &is_me);
        let newest = seen_id
            .as_ref()
            .and_then(|(id, _)| st.vaults.get(id).map(|k| k.generation));
        (verdict, newest)
    })?;
    for note in notes.map_err(refuse)? {
        match note {
            trust::Note::FirstUse { signer, members } => crate::term::note(&format!(
                "trusting {source} on first use: signed by {signer}, {members} member{}",
                if members == 1 { "" } else { "s" }
            )),
            trust::Note::Older { .. } if !older_note => {}
            trust::Note::Older {
                generation,
                highest,
            } => crate::term::note(&format!(
                "{source} is generation {generation}, older than generation {highest} seen before (an older branch or checkout?)"
            )),
        }
    }
    Ok(Provenance {
        schema: loaded.schema,
        meta: loaded.meta,
        signer,
        recipients,
        newest,
    })
}

/// `vault trust`, and `--vault FILE` when it is not the default vault.
fn trust_command(paths: &Paths) -> String {
    if paths.lock == paths.dir_lock {
        "`vault trust`".to_string()
    } else {
        format!("`vault trust --vault {}`", paths.file.display())
    }
}

/// The words of each refusal (DESIGN v2 "Trust", "Refusals").
fn refusal(r: trust::Refusal, source: &str, paths: &Paths) -> Error {
    let trust = trust_command(paths);
    match r {
        trust::Refusal::BadSignature => Error::new(format!(
            "{source} has a bad signature: it was changed after it was signed, or forged"
        ))
        .hint("restore it from a backup or from version control"),
        trust::Refusal::Untrusted {
            fingerprint,
            listed: true,
        } => Error::new(format!(
            "{source} was written by a key you do not trust: {fingerprint}"
        ))
        .hint(format!(
            "if a member rebuilt or re-keyed this vault, check with them, then {trust} shows the signer and members and accepts them"
        )),
        // Nobody who can read the file signed it: `vault trust` would
        // refuse it too (nobody can vouch for it).
        trust::Refusal::Untrusted {
            fingerprint,
            listed: false,
        } => Error::new(format!(
            "{source} was written by a key you do not trust: {fingerprint}, which is none of its members"
        ))
        .hint("no member vouches for this file (a forgery, or a file of another vault): restore it from version control"),
        trust::Refusal::UnsignedAfterSigned => Error::new(format!(
            "{source} is not signed, but the vault last seen at this path was"
        ))
        .hint(format!(
            "restore it from version control; if you replaced it on purpose, {trust} accepts it"
        )),
        trust::Refusal::UnsignedNewSchema { schema } => Error::new(format!(
            "{source} is not signed, and a vault of schema version {schema} always is"
        ))
        .hint(format!(
            "restore it from version control; if you re-encrypted it yourself with stock age, {trust} signs it"
        )),
        trust::Refusal::OtherVault => Error::new(format!(
            "{source} holds another vault (another vault id) than the one last seen at this path"
        ))
        .hint(format!(
            "if it was rebuilt on purpose, {trust} shows the signer and members and accepts them"
        )),
        trust::Refusal::Removed { member, generation } => Error::new(format!(
            "this write would encrypt {source} to {member}, whom generation {generation} removed"
        ))
        .hint(format!(
            "the file is older than the newest seen (another branch, an aborted merge, an old checkout, or a replayed file): merge the newer one in, or pass --allow-older to write it anyway, or `vault recipients remove {member}`"
        )),
    }
}

/// `vault trust`: the file as it is, its signature checked but not against
/// `trusted.json`, for the user to look at and accept (`accept`).
pub(crate) struct Candidate {
    db_sha256: String,
    pub(crate) schema: i64,
    pub(crate) meta: Option<store::Meta>,
    pub(crate) signer: Option<String>,
    pub(crate) recipients: Vec<String>,
}

pub(crate) fn inspect(paths: &Paths, keys: &Keys) -> Result<Candidate> {
    require_exists(&paths.file)?;
    let loaded = load(&paths.file, keys, Access::Write)?;
    let source = &loaded.source;
    let recipients = store::recipients(&loaded.conn)?;
    let signer = match (loaded.signatures.as_slice(), loaded.meta) {
        ([], _) => None,
        ([stanza], Some(meta))
            if stanza.args.len() == 2 && stanza.args[0] == sign::STANZA_VERSION =>
        {
            let state = trust::Store::new(&paths.dir).load()?;
            let mut candidates = state.signer_candidates(&meta.id_hex(), &recipients);
            candidates.extend(keys.recipients().iter().cloned());
            let msg = sign::message(&meta.vault_id, meta.generation, &loaded.db_sha256);
            let signer = candidates
                .into_iter()
                .find(|c| sign::fingerprint(c) == stanza.args[1])
                .ok_or_else(|| {
                    Error::new(format!(
                        "{source} is signed by a key that is none of its members: {}",
                        stanza.args[1]
                    ))
                    .hint(
                        "nobody can vouch for it; restore it from a backup or from version control",
                    )
                })?;
            if !sign::verify(&signer, &msg, &stanza.body) {
                return Err(refusal(trust::Refusal::BadSignature, source, paths));
            }
            Some(signer)
        }
        _ => return Err(refusal(trust::Refusal::BadSignature, source, paths)),
    };
    Ok(Candidate {
        db_sha256: hex(&loaded.db_sha256),
        schema: loaded.schema,
        meta: loaded.meta,
        signer,
        recipients,
    })
}

/// A vault file as `vault git show` sees it: decrypted and strictly loaded,
/// its signature checked and described against `trusted.json`, which is
/// only read. git runs its textconv on temporary copies of old commits, so
/// a path or an older generation means nothing here, and recording them
/// (or trusting on first use) from a diff would let any commit in a
/// history shape what later reads accept.
pub(crate) struct Peeked {
    pub(crate) conn: Connection,
    /// The file's own schema version (before any migration in memory).
    pub(crate) schema: i64,
    pub(crate) meta: Option<store::Meta>,
    pub(crate) recipients: Vec<String>,
    pub(crate) signature: Signed,
}

/// What the signature of a `Peeked` file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signed {
    /// No signature stanza.
    No,
    /// A stanza that is malformed or does not verify.
    Bad,
    /// Signed by a key that is none of the file's recipients, the trusted
    /// or the removed members, or yours: only its fingerprint is known.
    Unknown { fingerprint: String },
    /// A valid signature by `signer`.
    By {
        signer: String,
        standing: trust::Standing,
    },
}

/// Opens `file` for `vault git show` (see `Peeked`), naming it `source`
/// in messages; `dir` is `VAULT_DIR`, whose `trusted.json` is read, never
/// written.
pub(crate) fn peek(dir: &Path, file: &Path, source: &str, keys: &Keys) -> Result<Peeked> {
    let input = fsio::open_regular(file)?;
    let loaded = load_input(&input, keys, source, Access::Read, None)?;
    let recipients = store::recipients(&loaded.conn)?;
    let signature = match (loaded.signatures.as_slice(), loaded.meta) {
        ([], _) => Signed::No,
        ([stanza], Some(meta))
            if stanza.args.len() == 2 && stanza.args[0] == sign::STANZA_VERSION =>
        {
            let fingerprint = &stanza.args[1];
            let id = meta.id_hex();
            let state = trust::Store::new(dir).load()?;
            let mut candidates = state.signer_candidates(&id, &recipients);
            candidates.extend(keys.recipients().iter().cloned());
            match candidates
                .into_iter()
                .find(|c| sign::fingerprint(c) == *fingerprint)
            {
                None => Signed::Unknown {
                    fingerprint: fingerprint.clone(),
                },
                Some(signer) => {
                    let msg = sign::message(&meta.vault_id, meta.generation, &loaded.db_sha256);
                    if sign::verify(&signer, &msg, &stanza.body) {
                        let standing = trust::standing(
                            &state,
                            &id,
                            meta.generation,
                            &hex(&loaded.db_sha256),
                            &signer,
                            &recipients,
                            &|r| keys.is_mine(r),
                        );
                        Signed::By { signer, standing }
                    } else {
                        Signed::Bad
                    }
                }
            }
        }
        _ => Signed::Bad,
    };
    Ok(Peeked {
        conn: loaded.conn,
        schema: loaded.schema,
        meta: loaded.meta,
        recipients,
        signature,
    })
}

/// `vault trust` of an unsigned file (one re-encrypted by hand with stock
/// age after a recovery, say): the user vouches for it, so it is written
/// again, signed by them, and its members become the trusted set. The
/// strict load still applies.
pub(crate) fn resign(paths: &Paths, keys: Keys) -> Result<()> {
    read_modify_write(paths, WriteKeys::Existing(keys), Mode::Trust, |_| {
        Ok(Outcome::Changed(()))
    })
    .map(Outcome::into_inner)
}

/// Accepts `candidate` as what is trusted at this vault's path.
pub(crate) fn accept(paths: &Paths, candidate: &Candidate) -> Result<()> {
    let at = trust_path(paths);
    let id = candidate.meta.map(|m| m.id_hex());
    let seen = match (&id, candidate.meta, &candidate.signer) {
        (Some(id), Some(meta), Some(signer)) => trust::Seen::Signed {
            vault_id: id,
            generation: meta.generation,
            signer,
            recipients: &candidate.recipients,
            db_sha256: &candidate.db_sha256,
        },
        _ => trust::Seen::Unsigned {
            schema: candidate.schema,
        },
    };
    trust::Store::new(&paths.dir).update(|st| trust::replace(st, &at, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQLite built in is the one `.cargo/config.toml` asks for: no
    /// extension loading, none of the modules vault does not use, no
    /// memory statistics. A build that lost the file fails here.
    #[test]
    fn sqlite_is_built_without_what_vault_does_not_use() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        for wanted in ["OMIT_LOAD_EXTENSION", "DEFAULT_MEMSTATUS=0"] {
            assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
        }
        for unwanted in [
            "ENABLE_FTS3",
            "ENABLE_FTS5",
            "ENABLE_RTREE",
            "ENABLE_DBSTAT_VTAB",
        ] {
            assert!(
                !options.iter().any(|o| o == unwanted),
                "{unwanted}: {options:?}"
            );
        }
        let fts = conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5(x)");
        assert!(fts.is_err_and(|e| e.to_string().contains("no such module")));
        // The JSON functions the history and the merge use are core.
        let json: String = conn
            .query_row("SELECT json_group_object('k', 'v')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(json, r#"{"k":"v"}"#);
    }

    /// The flags the kernel shows for the mapping that holds `addr`. (Not
    /// "starts at": the kernel merges it with a neighbour of the same flags,
    /// such as another test's image.)
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let holds = |line: &str| {
            let Some((range, _)) = line.split_once(' ') else {
                return false;
            };
            let Some((start, end)) = range.split_once('-') else {
                return false;
            };
            match (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (Ok(start), Ok(end)) => start <= addr && addr < end,
                _ => false,
            }
        };
        let mut lines = smaps.lines().skip_while(|l| !holds(l));
        assert!(lines.next().is_some(), "no mapping holds {addr:x}");
        let flags = lines.find(|l| l.starts_with("VmFlags:")).unwrap();
        flags["VmFlags:".len()..].trim().to_string()
    }

    #[test]
    fn a_large_read_only_image_asks_for_huge_pages_and_no_dump() {
        // Three 2 MiB huge pages and a bit.
        let len = 3 * (2 << 20) + 123;
        let image = read_only_image(io::repeat(7).take(len as u64), len).unwrap();
        assert_eq!(image.len(), len);
        assert!(image.iter().all(|&b| b == 7));
        let flags = vm_flags(image.as_ptr() as usize);
        let has = |f: &str| flags.split(' ').any(|x| x == f);
        // A kernel built without transparent huge pages refuses the advice
        // (and `run` carries on with small pages).
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            assert!(has("hg"), "MADV_HUGEPAGE missing: {flags}");
        }
        assert!(has("dd"), "MADV_DONTDUMP missing: {flags}");
        assert!(has("rd") && !has("wr"), "not write-protected: {flags}");
    }

    #[test]
    fn a_short_plaintext_is_an_error_not_a_partial_image() {
        let err = read_only_image(io::repeat(0).take(10), 4096).unwrap_err();
        assert!(matches!(err, Image::Read(e) if e.kind() == io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn no_memory_for_the_image_is_told_apart_from_a_damaged_file() {
        let err = read_only_image(io::empty(), 1 << 60).unwrap_err();
        assert!(matches!(err, Image::Memory(_)), "{err:?}");
    }

    #[test]
    fn a_version_3_vault_read_only_is_migrated_in_memory_and_left_as_it_was() {
        let keys = Keys::from_x25519(crypto::generate());
        let mut db = store::tests::at_version(3);
        db.execute(
            "INSERT INTO recipients VALUES (?1, '2025-01-01T00:00:00Z')",
            [&keys.recipients()[0]],
        )
        .unwrap();
        db.execute_batch(
            "INSERT INTO secrets (id, name, created_at, updated_at)
                 VALUES (7, 'db', '2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (7, 'PGPASSWORD', 'pw'), (7, 'PGUSER', 'app');",
        )
        .unwrap();
        let plain = db.serialize(MAIN_DB).unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        let file = crypto::encrypt_vec(keys.recipients(), &plain).unwrap();
        crate::fsio::write_fixture(&path, &file);
        let v = load(&path, &keys, Access::Read).unwrap().conn;
        assert_eq!(store::schema_version(&v).unwrap(), store::SCHEMA_VERSION);
        let name = crate::names::SecretName::parse("db").unwrap();
        let e = store::entries(&v, store::DEFAULT_ENV, &name).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(std::fs::read(&path).unwrap(), file, "a read never writes");
    }

    /// A vault of several chunks read through the VFS answers as the full
    /// load does; a flipped chunk the query reads is a "damaged" error.
    #[test]
    fn a_paged_read_answers_as_a_full_one_and_refuses_a_damaged_chunk() {
        use crate::names::{EnvKey, SecretName, SecretValue};
        let keys = Keys::from_x25519(crypto::generate());
        let mut db = store::create(keys.recipients()).unwrap();
        store::meta(&db, "t").unwrap();
        store::set_author(&db, &keys.recipients()[0]).unwrap();
        for i in 0..400 {
            let name = SecretName::parse(&format!("s{i:03}")).unwrap();
            let entries: Vec<_> = (0..10)
                .map(|k| {
                    let key = EnvKey::parse(&format!("K{k}")).unwrap();
                    let v = zeroize::Zeroizing::new(format!("{i}-{k}-{}", "v".repeat(60)));
                    let value = SecretValue::new(&key, v).unwrap();
                    (key, value)
                })
                .collect();
            store::create_secret(&db, store::DEFAULT_ENV, &name, &entries, false).unwrap();
        }
        let plain = db.serialize(MAIN_DB).unwrap().to_vec();
        assert!(plain.len() > 4 * crypto::CHUNK, "{}", plain.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        let sealed = crypto::encrypt_vec(keys.recipients(), &plain).unwrap();
        crate::fsio::write_fixture(&path, &sealed);
        let sha: [u8; 32] = Sha256::digest(&plain).into();
        let sha = verified::Known::new(sha, verified::Checked::Verified, None);
        let open = || {
            load_paged(std::fs::File::open(&path).unwrap(), &keys, "t", sha)
                .unwrap()
                .unwrap()
        };
        let paged = open();
        let full = load(&path, &keys, Access::Read).unwrap();
        assert_eq!(paged.meta, full.meta);
        assert_eq!(paged.db_sha256, full.db_sha256);
        assert_eq!(paged.db_sha256, sha.db);
        let list = |c: &Connection| {
            store::list(c, None)
                .unwrap()
                .into_iter()
                .map(|i| {
                    format!(
                        "{} {} {} {} {}",
                        i.env, i.name, i.keys, i.created_at, i.updated_at
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&paged.conn), list(&full.conn));
        for i in [0, 199, 399] {
            let name = SecretName::parse(&format!("s{i:03}")).unwrap();
            let got = store::entries(&paged.conn, store::DEFAULT_ENV, &name).unwrap();
            let want = store::entries(&full.conn, store::DEFAULT_ENV, &name).unwrap();
            assert_eq!(got.len(), 10);
            for ((k1, v1), (k2, v2)) in got.iter().zip(&want) {
                assert_eq!(k1.as_str(), k2.as_str());
                assert_eq!(v1.expose(), v2.expose());
            }
        }
        // A byte flipped in every chunk but the first and the last, in
        // turn: a query reading everything fails as damaged, no panic.
        let start = sealed.len() - (plain.len().div_ceil(crypto::CHUNK) * 16 + plain.len());
        for k in 1..plain.len() / crypto::CHUNK {
            let mut bad = sealed.clone();
            bad[start + k * (crypto::CHUNK + 16) + 7] ^= 1;
            crate::fsio::write_fixture(&path, &bad);
            let err = load_paged(std::fs::File::open(&path).unwrap(), &keys, "t", sha)
                .and_then(|l| {
                    let l = l.expect("this schema");
                    for i in 0..400 {
                        let name = SecretName::parse(&format!("s{i:03}")).unwrap();
                        store::entries(&l.conn, store::DEFAULT_ENV, &name)?;
                    }
                    Ok(())
                })
                .unwrap_err();
            assert!(err.message().contains("damaged"), "chunk {k}: {err:?}");
        }
    }

    /// The stanza `save` names is the one it wrote for the member who
    /// signed (their place in the database's list of recipients), so a
    /// later paged read of that version, told it, unwraps that stanza
    /// alone; told nothing, it tries every stanza up to it.
    #[test]
    fn the_stanza_a_write_names_is_the_signers_and_a_paged_read_tries_it_first() {
        let (keys, count) = crypto::counting(crypto::generate());
        let mut team: Vec<String> = (0..5)
            .map(|_| crypto::generate().to_public().to_string())
            .collect();
        team.push(keys.recipients()[0].clone());
        let mut db = store::create(&team).unwrap();
        store::meta(&db, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        let (digest, stanza) = save(&mut db, &path, &keys, false).unwrap();
        assert_eq!(stanza, Some(5));
        let paged = |stanza| {
            count.set(0);
            let known = verified::Known::new(digest, verified::Checked::Validated, stanza);
            let file = std::fs::File::open(&path).unwrap();
            let loaded = load_paged(file, &keys, "t", known).unwrap().unwrap();
            assert_eq!(loaded.signatures.len(), 1, "the signature is still seen");
            count.get()
        };
        assert_eq!(paged(stanza), 1);
        assert_eq!(paged(None), 6);
        assert_eq!(paged(Some(2)), 7);
        // The only recipient, or the first: nothing to name.
        assert_eq!(stanza_of(&team[..1], |_| true), None);
        assert_eq!(stanza_of(&team, |r| r == team[0]), None);
        assert_eq!(stanza_of(&team, |r| r == team[3]), Some(3));
        assert_eq!(stanza_of(&team, |_| false), None);
    }

    #[test]
    fn a_vault_opened_for_reading_is_read_only_and_answers_queries() {
        let keys = Keys::from_x25519(crypto::generate());
        let mut db = store::create(keys.recipients()).unwrap();
        let plain = db.serialize(MAIN_DB).unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        crate::fsio::write_fixture(
            &path,
            crypto::encrypt_vec(keys.recipients(), &plain).unwrap(),
        );

        let v = load(&path, &keys, Access::Read).unwrap().conn;
        assert_eq!(store::recipients(&v).unwrap(), keys.recipients());
        let err = v.execute("DELETE FROM recipients", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");

        let w = load(&path, &keys, Access::Write).unwrap().conn;
        assert_eq!(w.execute("DELETE FROM recipients", []).unwrap(), 1);
    }

    /// Was a tripwire in store.rs: a read-only load cannot migrate, so an
    /// older file read by this build is migrated in a writable copy, and
    /// the reader still sees the file's own schema version and hash.
    #[test]
    fn an_older_schema_read_for_reading_is_migrated_in_a_copy() {
        let keys = Keys::from_x25519(crypto::generate());
        let mut db = store::tests::at_version(1);
        let plain = db.serialize(MAIN_DB).unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        crate::fsio::write_fixture(
            &path,
            crypto::encrypt_vec(keys.recipients(), &plain).unwrap(),
        );
        let loaded = load(&path, &keys, Access::Read).unwrap();
        assert_eq!(loaded.schema, 1);
        assert!(loaded.meta.is_none());
        assert!(loaded.signatures.is_empty());
        let want: [u8; 32] = Sha256::digest(&plain).into();
        assert_eq!(loaded.db_sha256, want);
        let version: i64 = loaded
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::SCHEMA_VERSION);
        store::meta(&loaded.conn, "t").unwrap();
    }
}
