//! The only code that reads or writes vault files.
//!
//! Reading: open `vault.age`, decrypt it as a stream straight into SQLite's
//! own buffer (no plaintext copy of ours, nothing on disk), check it, done.
//! Readers take no lock: a write replaces the file by rename, so a reader
//! sees the old file or the new one.
//!
//! Writing: obtain the keys (prompt, scrypt) first, then take the exclusive
//! lock, re-check what exists, load, change, serialize, encrypt to exactly the
//! recipients listed in the database, and replace the file atomically.

use std::{
    io::{self, BufWriter, Read, Seek, Write},
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
            conn: load(path, keys)?,
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

/// Decrypts `path` into a fresh in-memory database and checks it.
fn load(path: &Path, keys: &Keys) -> Result<Connection> {
    let source = path.display().to_string();
    let file = fsio::open_regular(path)?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Err(Error::new(format!("{source} is empty"))
            .hint("restore it from a backup or from version control"));
    }
    // A large binary vault is decrypted by several readers at once (issue 6,
    // BENCHMARKS.md); an armored one (made by hand with `age -a`) or a small
    // one goes through a single reader, which also gives the most specific
    // messages about damaged files.
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut file = file;
    let armored = crypto::is_armored(&mut file).map_err(|e| Error::io("read", path, e))?;
    if armored || size < PARALLEL_MIN {
        // ArmoredReader buffers the file itself.
        return load_from(file, keys, &source);
    }
    let plain = crypto::Plaintext::open(&file, keys, &source, PARALLEL_MIN, THREADS_MAX)?;
    let len = plain.len();
    deserialize(plain, len, &source)
}

/// `load` for a vault file held in memory: what the fuzz targets and their
/// seed tests drive, so that they exercise exactly the code `load` runs.
pub fn load_bytes(bytes: &[u8], keys: &Keys) -> Result<Connection> {
    load_from(io::Cursor::new(bytes), keys, "input")
}

fn load_from(input: impl Read + Seek, keys: &Keys, source: &str) -> Result<Connection> {
    let mut plain = crypto::decrypt_stream(input, keys, source)?;
    let len = crypto::stream_len(&mut plain).map_err(|e| crypto::damaged(&e, source))?;
    deserialize(plain, len, source)
}

/// The plaintext database, `len` bytes from `plain`, into SQLite's own
/// buffer, then the cheap check.
fn deserialize(mut plain: impl Read, len: u64, source: &str) -> Result<Connection> {
    let damaged = |e: &dyn std::fmt::Display| crypto::damaged(e, source);
    if len == 0 {
        return Err(
            Error::new(format!("{source} decrypts to nothing: it is not a vault"))
                .hint("restore it from a backup or from version control"),
        );
    }
    let len = usize::try_from(len).map_err(|e| damaged(&e))?;
    let mut conn = Connection::open_in_memory()?;
    conn.deserialize_read_exact(MAIN_DB, &mut plain, len, false)
        .map_err(|e| damaged(&e))?;
    store::prepare(&mut conn, source)?;
    Ok(conn)
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
        load(&ctx.paths.file, keys.keys())?
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
