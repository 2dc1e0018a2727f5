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

use std::{
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use rusqlite::{Connection, MAIN_DB, Transaction};

use crate::{
    Context,
    crypto::{self, Keys},
    error::{Error, Result},
    fsio, store,
    unlock::{self, WriteKeys},
};

/// Where a vault's files are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `VAULT_DIR`: holds `identity.age`, and by default the vault and lock.
    pub dir: PathBuf,
    pub identity: PathBuf,
    pub file: PathBuf,
    pub lock: PathBuf,
}

impl Paths {
    /// `dir` is `VAULT_DIR`; `file` is `--vault FILE` / `VAULT_FILE` if given.
    pub fn new(dir: PathBuf, file: Option<PathBuf>) -> Self {
        let identity = dir.join("identity.age");
        let (file, lock) = match file {
            Some(f) => {
                let mut lock = f.clone().into_os_string();
                lock.push(".lock");
                (f, PathBuf::from(lock))
            }
            None => (dir.join("vault.age"), dir.join("vault.lock")),
        };
        Paths {
            dir,
            identity,
            file,
            lock,
        }
    }
}

/// An open, decrypted vault: an in-memory SQLite database.
pub struct Vault {
    conn: Connection,
}

impl Vault {
    /// Opens an existing vault for reading.
    pub fn open(ctx: &Context) -> Result<Vault> {
        require_exists(&ctx.paths.file)?;
        let keys = unlock::unlock(ctx)?;
        Vault::open_with(&ctx.paths.file, &keys)
    }

    pub fn open_with(path: &Path, keys: &Keys) -> Result<Vault> {
        Ok(Vault {
            conn: load(path, keys, Access::Read)?,
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

fn require_exists(path: &Path) -> Result<()> {
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

/// A binary vault is read with `pread`, a chunk at a time, and a large one
/// decrypted by several readers at once (issue 6, BENCHMARKS.md). An
/// armored one (made by hand with `age -a`) goes through age's
/// ArmoredReader, and so does anything that is no age file at all, for the
/// message.
fn load_input(
    input: &dyn crypto::ReadAt,
    keys: &Keys,
    source: &str,
    access: Access,
) -> Result<Connection> {
    let mut at = crypto::read_from(input);
    let binary = crypto::looks_like_binary_age(&mut at)
        .map_err(|e| Error::io("read", Path::new(source), e))?;
    if binary {
        let plain = crypto::Plaintext::open(input, keys, source, PARALLEL_MIN, THREADS_MAX)?;
        let len = plain.len();
        return deserialize(plain, len, source, access);
    }
    let mut plain = crypto::decrypt_stream(at, keys, source)?;
    let len = crypto::stream_len(&mut plain).map_err(|e| crypto::damaged(&e, source))?;
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

/// Runs `change` as one read-modify-write of the vault, creating the vault
/// (and, if needed, the owner's identity) when it does not exist yet.
pub fn write<T>(ctx: &Context, change: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
    read_modify_write(ctx, unlock::for_write(ctx)?, Mode::Change, change)
}

/// `write` for a bulk change (`import --from-json`): the database is rebuilt
/// (`VACUUM`) before it is saved. Appending many secrets leaves SQLite's
/// index pages about 84% full; rebuilt they are 95% full, the vault 10%
/// smaller, and every later read has 10% less to decrypt (BENCHMARKS.md).
/// The rebuild costs about one load, once; on every write it would not pay.
pub fn write_bulk<T>(ctx: &Context, change: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
    read_modify_write(ctx, unlock::for_write(ctx)?, Mode::Bulk, change)
}

/// `write` with keys the caller already obtained (to check them against
/// the change, say) so that nobody is asked twice.
pub fn write_with<T>(
    ctx: &Context,
    keys: Keys,
    change: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    read_modify_write(ctx, WriteKeys::Existing(keys), Mode::Change, change)
}

/// Creates a new, empty vault; refuses to replace an existing one.
pub fn init(ctx: &Context) -> Result<()> {
    refuse_existing(&ctx.paths.file)?;
    read_modify_write(ctx, unlock::for_write(ctx)?, Mode::Create, |_| Ok(()))
}

fn refuse_existing(file: &Path) -> Result<()> {
    if file.exists() {
        return Err(
            Error::new(format!("a vault already exists at {}", file.display()))
                .hint("`vault secret list` shows what it holds; move the file aside to start over"),
        );
    }
    Ok(())
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
    ctx: &Context,
    mut keys: WriteKeys,
    mode: Mode,
    change: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    fsio::ensure_dir(&ctx.paths.dir)?;
    fsio::ensure_dir(&fsio::parent(&ctx.paths.file))?;
    let _lock = loop {
        let lock = fsio::WriteLock::acquire(&ctx.paths.lock)?;
        if matches!(keys, WriteKeys::NewOwner { .. }) && ctx.paths.identity.exists() {
            // Another process created the identity while we prepared ours:
            // use theirs. Unlocking costs scrypt, so not under the lock.
            drop(lock);
            keys = WriteKeys::Existing(unlock::unlock(ctx)?);
            continue;
        }
        break lock;
    };
    // Re-checked under the lock: someone may have created it meanwhile.
    if mode == Mode::Create {
        refuse_existing(&ctx.paths.file)?;
    }
    if matches!(keys, WriteKeys::NewOwner { .. }) && ctx.paths.file.exists() {
        // A new identity cannot open a vault made for the old one; writing
        // its identity.age would only bury the way back.
        return Err(unlock::orphaned_vault(ctx));
    }
    fsio::remove_stale_temps(&ctx.paths.file);
    fsio::remove_stale_temps(&ctx.paths.identity);
    if let WriteKeys::NewOwner { sealed, .. } = &keys {
        fsio::atomic_write(&ctx.paths.identity, |f| f.write_all(sealed))?;
    }
    let mut conn = if ctx.paths.file.exists() {
        load(&ctx.paths.file, keys.keys(), Access::Write)?
    } else {
        store::create(keys.keys().recipients())?
    };
    let tx = conn.transaction()?;
    let out = change(&tx)?;
    tx.commit()?;
    if mode == Mode::Bulk {
        // In memory like everything else (temp_store = MEMORY); the rebuilt
        // database has no free pages left to carry old bytes.
        conn.execute_batch("VACUUM")?;
    }
    save(&mut conn, &ctx.paths.file)?;
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
        std::fs::write(
            &path,
            crypto::encrypt_vec(keys.recipients(), &plain).unwrap(),
        )
        .unwrap();

        let v = Vault::open_with(&path, &keys).unwrap();
        assert_eq!(store::recipients(v.conn()).unwrap(), keys.recipients());
        let err = v.conn().execute("DELETE FROM recipients", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");

        let w = load(&path, &keys, Access::Write).unwrap();
        assert_eq!(w.execute("DELETE FROM recipients", []).unwrap(), 1);
    }
}
