//! The only code that reads or writes vault files.
//!
//! Reading: open `vault.age`, decrypt it as a stream straight into the
//! memory SQLite reads from (a read-only image of our own for commands that
//! only read, SQLite's own buffer for a write; no other plaintext copy,
//! nothing on disk), check it, done. Readers take no lock: a write replaces
//! the file by rename, so a reader sees the old file or the new one.
//!
//! Writing: obtain the keys (prompt, scrypt) first, then take the exclusive
//! lock, re-check what exists, load, change, serialize, encrypt to exactly the
//! recipients listed in the database, and replace the file atomically.
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

use crate::{
    context::Paths,
    crypto::{self, Keys},
    error::{Error, Result},
    fsio, store,
};

/// An open, decrypted vault: an in-memory SQLite database.
pub(crate) struct Vault {
    conn: Connection,
}

impl Vault {
    /// Opens an existing vault for reading.
    pub(crate) fn open(paths: &Paths, keys: &Keys) -> Result<Vault> {
        require_exists(&paths.file)?;
        Vault::open_file(&paths.file, keys)
    }

    fn open_file(path: &Path, keys: &Keys) -> Result<Vault> {
        Ok(Vault {
            conn: load(path, keys, Access::Read)?,
        })
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// "no vault at …", with the hint to create one.
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
fn load(path: &Path, keys: &Keys, access: Access) -> Result<Connection> {
    let source = path.display().to_string();
    let file = fsio::open_regular(path)?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Err(Error::new(format!("{source} is empty"))
            .hint("restore it from a backup or from version control"));
    }
    load_input(&file, keys, &source, access)
}

/// `load` for a vault file held in memory: what the fuzz targets and their
/// seed tests drive, so that they exercise the code `load` runs, readers
/// and all. Loaded for writing: a read image is never freed (see
/// `read_only_image`), and a fuzzer calls this millions of times.
pub fn load_bytes(bytes: &[u8], keys: &Keys) -> Result<Connection> {
    load_input(&bytes, keys, "input", Access::Write)
}

/// `crypto::open` decides how the payload is read (binary, armored, by
/// several threads); this decides what it goes into.
fn load_input(
    input: &dyn crypto::ReadAt,
    keys: &Keys,
    source: &str,
    access: Access,
) -> Result<Connection> {
    let (plain, len) = crypto::open(input, keys, source, PARALLEL_MIN, THREADS_MAX)?;
    deserialize(plain, len, source, access)
}

/// The plaintext database, `len` bytes from `plain`, into memory SQLite
/// reads from, then the cheap check.
fn deserialize(mut plain: impl Read, len: u64, source: &str, access: Access) -> Result<Connection> {
    let damaged = |e: &dyn std::fmt::Display| crypto::damaged(e, source);
    if len == 0 {
        return Err(
            Error::new(format!("{source} decrypts to nothing: it is not a vault"))
                .hint("restore it from a backup or from version control"),
        );
    }
    let len = usize::try_from(len).map_err(|e| damaged(&e))?;
    let mut conn = Connection::open_in_memory()?;
    match access {
        Access::Write => conn
            .deserialize_read_exact(MAIN_DB, &mut plain, len, false)
            .map_err(|e| damaged(&e))?,
        Access::Read => {
            let image = read_only_image(plain, len).map_err(|e| match e {
                Image::Memory(e) => Error::new(format!(
                    "cannot get {} MiB of memory to decrypt {source} into: {e}",
                    len.div_ceil(1 << 20)
                ))
                .hint("free some memory (or raise `ulimit -v`) and try again"),
                Image::Read(e) => damaged(&e),
            })?;
            conn.deserialize_bytes(MAIN_DB, image)?;
            // A vault of an older schema cannot be migrated in a read-only
            // image: migrate a writable copy in memory (the file itself is
            // migrated by the next write).
            if store::needs_migration(&conn) {
                conn = Connection::open_in_memory()?;
                conn.deserialize_read_exact(MAIN_DB, image, image.len(), false)
                    .map_err(|e| damaged(&e))?;
            }
        }
    }
    store::prepare(&mut conn, source)?;
    Ok(conn)
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
    read_modify_write(paths, keys, Mode::Bulk, change)
}

/// Creates a new, empty vault; refuses to replace an existing one (the
/// caller checks first too, before asking for keys).
pub(crate) fn init(paths: &Paths, keys: WriteKeys) -> Result<()> {
    refuse_existing(&paths.file)?;
    read_modify_write(paths, keys, Mode::Create, |_| Ok(()))
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
}

/// Keys come first, from the caller: a slow prompt or scrypt must not hold
/// other writers up.
fn read_modify_write<T>(
    paths: &Paths,
    mut keys: WriteKeys,
    mode: Mode,
    change: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    // A device or FIFO there (`--vault /dev/stdin`) must never have a
    // file renamed over it.
    fsio::refuse_non_regular(&paths.file)?;
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
    let mut conn = if paths.file.exists() {
        load(&paths.file, keys.keys(), Access::Write)?
    } else {
        store::create(keys.keys().recipients())?
    };
    // History records the writer's recipient with every version it makes.
    let author = keys
        .keys()
        .recipients()
        .first()
        .cloned()
        .unwrap_or_default();
    store::set_author(&conn, &author)?;
    let tx = conn.transaction()?;
    let out = change(&tx)?;
    tx.commit()?;
    if mode == Mode::Bulk {
        // In memory like everything else (temp_store = MEMORY); the rebuilt
        // database has no free pages left to carry old bytes.
        conn.execute_batch("VACUUM")?;
    }
    save(&mut conn, &paths.file)?;
    Ok(out)
}

/// Serializes the database and replaces `path` with it, encrypted to
/// exactly the recipients the database lists (never "me plus the table":
/// a teammate's write must not drop the owner).
fn save(conn: &mut Connection, path: &Path) -> Result<()> {
    let recipients = store::recipients(conn)?;
    if recipients.is_empty() {
        return Err(
            Error::new("the vault lists no recipients, so nobody could open it")
                .hint("`vault recipients add age1…` first"),
        );
    }
    let recipients = crypto::parse_recipients(&recipients)?;
    let data = conn.serialize(MAIN_DB)?;
    fsio::atomic_write(path, |f| {
        let mut w = BufWriter::with_capacity(1 << 16, f);
        crypto::encrypt_to(&recipients, &data, &mut w)?;
        w.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let v = Vault::open_file(&path, &keys).unwrap();
        assert_eq!(store::recipients(v.conn()).unwrap(), keys.recipients());
        let err = v.conn().execute("DELETE FROM recipients", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");

        let w = load(&path, &keys, Access::Write).unwrap();
        assert_eq!(w.execute("DELETE FROM recipients", []).unwrap(), 1);
    }

    /// A vault written by version 1 (schema 1, no history) opened by a
    /// command that only reads: migrated in a writable copy, so history
    /// queries work, and the file is left alone.
    #[test]
    fn a_schema_1_vault_opened_for_reading_is_migrated_in_memory() {
        let keys = Keys::from_x25519(crypto::generate());
        let mut v1 = Connection::open_in_memory().unwrap();
        v1.execute_batch(
            "CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE TABLE entries (secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
                 key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (secret_id, key)) WITHOUT ROWID;
             CREATE TABLE recipients (recipient TEXT NOT NULL UNIQUE, added_at TEXT NOT NULL);
             INSERT INTO secrets VALUES (1, 'db', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z');
             INSERT INTO entries VALUES (1, 'K', 'v1-value');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        let plain = v1.serialize(MAIN_DB).unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.age");
        let sealed = crypto::encrypt_vec(keys.recipients(), &plain).unwrap();
        crate::fsio::write_fixture(&path, &sealed);

        let v = Vault::open_file(&path, &keys).unwrap();
        assert_eq!(
            store::schema_version(v.conn()).unwrap(),
            store::SCHEMA_VERSION
        );
        let name = crate::names::SecretName::parse("db").unwrap();
        let versions = store::history::versions(v.conn(), &name).unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!((versions[0].number, versions[0].made_by.as_str()), (1, ""));
        assert_eq!(versions[0].entries[0].1.expose(), "v1-value");
        assert_eq!(std::fs::read(&path).unwrap(), sealed, "a read never writes");
    }
}
