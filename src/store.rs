//! The database inside the vault: schema, migrations and queries, all on a
//! `&Connection` that is already in memory. No files, no crypto.
//!
//! Schema changes are forward-only numbered migrations; `PRAGMA user_version`
//! records how many have run. A vault written by a newer `vault` (a higher
//! version than this build knows) is refused rather than guessed at.

use rusqlite::{Connection, OptionalExtension, config::DbConfig, params};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::names::{EnvKey, SecretName, SecretValue};

pub(crate) mod conflicts;
pub(crate) mod history;
pub(crate) mod rotation;
pub(crate) mod view;
pub use history::set_author;

// The statements that create each schema object, as `sqlite_schema`
// keeps them: the strict load compares them byte for byte, so a statement
// that ever ran in a released migration is never edited, only superseded.
const SECRETS_V1: &str = "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         name       TEXT NOT NULL UNIQUE,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     )";
const ENTRIES_V1: &str = "CREATE TABLE entries (
         secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (secret_id, key)
     ) WITHOUT ROWID";
const RECIPIENTS_V1: &str = "CREATE TABLE recipients (
         recipient TEXT NOT NULL UNIQUE,
         added_at  TEXT NOT NULL
     )";
const META_V2: &str = "CREATE TABLE meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     )";
// A rowid table: `WITHOUT ROWID` keeps a whole row in a b-tree cell, so
// values of about 1 KB spill onto overflow pages of their own (10 MB of
// such values came out at 46 MB; DESIGN v2 "Schema").
const ENTRIES_V2: &str = "CREATE TABLE entries (
         secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (secret_id, key)
     )";

const SECRETS_V3: &str = "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         name       TEXT NOT NULL UNIQUE,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     , version INTEGER NOT NULL DEFAULT 1, updated_by TEXT NOT NULL DEFAULT '')";
const SECRETS_V4: &str = "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         env        TEXT NOT NULL DEFAULT 'main',
         name       TEXT NOT NULL,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         version    INTEGER NOT NULL DEFAULT 1,
         updated_by TEXT NOT NULL DEFAULT '',
         UNIQUE (env, name)
     )";
const ENTRIES_V3: &str = "CREATE TABLE entries (
         secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         key       TEXT NOT NULL,
         value     TEXT NOT NULL, description TEXT,
         PRIMARY KEY (secret_id, key)
     )";
const HISTORY_V3: &str = "CREATE TABLE history (
         secret_id  INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         version    INTEGER NOT NULL,
         name       TEXT NOT NULL,
         changed_at TEXT NOT NULL,
         changed_by TEXT NOT NULL,
         entries    TEXT NOT NULL,
         PRIMARY KEY (secret_id, version)
     )";

// v5 (issue 18, DESIGN v2 "Git"): rotation marks, unresolved merge
// results. ADD COLUMN puts its definition after the last column's, before
// the UNIQUE constraint, as SQLite stores it.
const SECRETS_V5: &str = "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         env        TEXT NOT NULL DEFAULT 'main',
         name       TEXT NOT NULL,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         version    INTEGER NOT NULL DEFAULT 1,
         updated_by TEXT NOT NULL DEFAULT '', rotate_since TEXT,
         UNIQUE (env, name)
     )";
// A NULL `key` is the whole secret (deleted on one side, changed on the
// other); a NULL value is "absent on that side". For a whole-secret row the
// values are JSON objects `{KEY: value}`, as in `history.entries`.
const CONFLICTS_V5: &str = "CREATE TABLE conflicts (
         env    TEXT NOT NULL,
         secret TEXT NOT NULL,
         key    TEXT,
         base   TEXT,
         ours   TEXT,
         theirs TEXT
     )";
// v6: who added each member (DESIGN v2 "Schema"), as ADD COLUMN stores it.
const RECIPIENTS_V6: &str = "CREATE TABLE recipients (
         recipient TEXT NOT NULL UNIQUE,
         added_at  TEXT NOT NULL
     , added_by TEXT)";

/// One numbered migration: statements run in order in one transaction,
/// then `then` (for what SQL cannot do alone, like a random vault id).
struct Migration {
    sql: &'static [&'static str],
    then: Option<fn(&Connection) -> Result<()>>,
}

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // v1: secrets, their entries, and who the vault is encrypted to.
    Migration {
        sql: &[SECRETS_V1, ENTRIES_V1, RECIPIENTS_V1],
        then: None,
    },
    // v2 (issue 15): `meta` with the vault's id and generation, which the
    // signature covers; `entries` rebuilt as a rowid table.
    Migration {
        sql: &[
            META_V2,
            "ALTER TABLE entries RENAME TO entries_v1",
            ENTRIES_V2,
            "INSERT INTO entries (secret_id, key, value)
             SELECT secret_id, key, value FROM entries_v1",
            "DROP TABLE entries_v1",
        ],
        then: Some(new_meta),
    },
    // v3 (issue 17, DESIGN v2 "History", "Files, editing, generating"):
    // earlier versions of every secret, the current version's number and
    // author, and descriptions of keys. Additive only (ADD COLUMN, a new
    // table): SQLite rewrites the stored CREATE statements, as SECRETS_V3
    // and ENTRIES_V3 spell out.
    Migration {
        sql: &[
            "ALTER TABLE secrets ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
            "ALTER TABLE secrets ADD COLUMN updated_by TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE entries ADD COLUMN description TEXT",
            HISTORY_V3,
        ],
        then: None,
    },
    // v4 (issue 16): every secret belongs to an environment; v3's land in
    // `main`. SQLite cannot change a UNIQUE constraint in place, so
    // `secrets` is rebuilt, keeping v3's version and author. `migrate`
    // runs this with foreign keys off (dropping the old table must not
    // cascade into `entries` and `history`) and the legacy rename on (so
    // they keep referring to `secrets`, not to the old copy).
    Migration {
        sql: &[
            "ALTER TABLE secrets RENAME TO secrets_v3",
            SECRETS_V4,
            "INSERT INTO secrets (id, env, name, created_at, updated_at, version, updated_by)
             SELECT id, 'main', name, created_at, updated_at, version, updated_by FROM secrets_v3",
            "DROP TABLE secrets_v3",
        ],
        then: None,
    },
    // v5 (issue 18): `secrets.rotate_since` (set for every secret when a
    // member is removed), `conflicts`, and the `diff_key` in `meta` that
    // `vault git show` fingerprints values with.
    Migration {
        sql: &[
            "ALTER TABLE secrets ADD COLUMN rotate_since TEXT",
            CONFLICTS_V5,
        ],
        then: Some(new_diff_key),
    },
    // v6: `recipients.added_by`, the recipient of the member who added
    // that one (the author `history.changed_by` records). NULL for the
    // rows of older files: nobody recorded it.
    Migration {
        sql: &["ALTER TABLE recipients ADD COLUMN added_by TEXT"],
        then: None,
    },
];

/// The environment every secret of a version-1 vault is in, and the one a
/// command works in when neither `-e`, `VAULT_ENV` nor a project names one.
pub(crate) const DEFAULT_ENV: &str = "main";

pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// One row of `sqlite_schema`: type, name, table, SQL (`None` for the
/// indexes SQLite makes for UNIQUE and PRIMARY KEY constraints).
type Object = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// `SCHEMAS[v - 1]`: exactly the objects a database of schema version `v`
/// holds, sorted by type and name. The strict load accepts nothing else:
/// no trigger, view, extra table or index, no changed definition (a forged
/// database must not run anything inside SQLite). A new migration adds
/// the list of its version here (the unit tests check that a fresh and a
/// migrated database both match it).
const SCHEMAS: &[&[Object]] = &[
    // v1
    &[
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "entries", "entries", Some(ENTRIES_V1)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V1)),
        ("table", "secrets", "secrets", Some(SECRETS_V1)),
    ],
    // v2
    &[
        ("index", "sqlite_autoindex_entries_1", "entries", None),
        ("index", "sqlite_autoindex_meta_1", "meta", None),
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "entries", "entries", Some(ENTRIES_V2)),
        ("table", "meta", "meta", Some(META_V2)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V1)),
        ("table", "secrets", "secrets", Some(SECRETS_V1)),
    ],
    // v3
    &[
        ("index", "sqlite_autoindex_entries_1", "entries", None),
        ("index", "sqlite_autoindex_history_1", "history", None),
        ("index", "sqlite_autoindex_meta_1", "meta", None),
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "entries", "entries", Some(ENTRIES_V3)),
        ("table", "history", "history", Some(HISTORY_V3)),
        ("table", "meta", "meta", Some(META_V2)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V1)),
        ("table", "secrets", "secrets", Some(SECRETS_V3)),
    ],
    // v4
    &[
        ("index", "sqlite_autoindex_entries_1", "entries", None),
        ("index", "sqlite_autoindex_history_1", "history", None),
        ("index", "sqlite_autoindex_meta_1", "meta", None),
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "entries", "entries", Some(ENTRIES_V3)),
        ("table", "history", "history", Some(HISTORY_V3)),
        ("table", "meta", "meta", Some(META_V2)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V1)),
        ("table", "secrets", "secrets", Some(SECRETS_V4)),
    ],
    // v5
    &[
        ("index", "sqlite_autoindex_entries_1", "entries", None),
        ("index", "sqlite_autoindex_history_1", "history", None),
        ("index", "sqlite_autoindex_meta_1", "meta", None),
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "conflicts", "conflicts", Some(CONFLICTS_V5)),
        ("table", "entries", "entries", Some(ENTRIES_V3)),
        ("table", "history", "history", Some(HISTORY_V3)),
        ("table", "meta", "meta", Some(META_V2)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V1)),
        ("table", "secrets", "secrets", Some(SECRETS_V5)),
    ],
    // v6
    &[
        ("index", "sqlite_autoindex_entries_1", "entries", None),
        ("index", "sqlite_autoindex_history_1", "history", None),
        ("index", "sqlite_autoindex_meta_1", "meta", None),
        ("index", "sqlite_autoindex_recipients_1", "recipients", None),
        ("index", "sqlite_autoindex_secrets_1", "secrets", None),
        ("table", "conflicts", "conflicts", Some(CONFLICTS_V5)),
        ("table", "entries", "entries", Some(ENTRIES_V3)),
        ("table", "history", "history", Some(HISTORY_V3)),
        ("table", "meta", "meta", Some(META_V2)),
        ("table", "recipients", "recipients", Some(RECIPIENTS_V6)),
        ("table", "secrets", "secrets", Some(SECRETS_V5)),
    ],
];

/// Settings every connection gets before it is used.
fn configure(conn: &Connection) -> Result<()> {
    // secure_delete: a deleted value's bytes are zeroed, not left in free
    // pages that get re-encrypted. temp_store: sorts and temp tables stay in
    // memory instead of spilling plaintext to /var/tmp. trusted_schema OFF:
    // defence in depth behind the strict load, no SQL function runs from
    // inside the schema.
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = ON;
         PRAGMA trusted_schema = OFF;",
    )?;
    // The query planner's stability guarantee: a plan never depends on the
    // values bound to it. Without it SQLite marks a statement such as
    // `... WHERE secret_id = ?1 ORDER BY key` (a parameter it compared
    // while planning the ORDER BY) to be compiled again each time a new
    // value is bound, so a cached statement run once per secret (a merge,
    // `run` of several secrets, history) was parsed and planned every
    // time. No query of vault's has a plan that a value could improve.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// A brand-new vault database, encrypted (later) to `recipients`. The
/// first of them is its creator, who added them all: `Keys::recipients`
/// lists the writer's own first, the author `history` records.
pub(crate) fn create(recipients: &[String]) -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn, 0)?;
    let now = now();
    let creator = recipients.first();
    for r in recipients {
        conn.execute(
            "INSERT OR IGNORE INTO recipients (recipient, added_at, added_by) VALUES (?1, ?2, ?3)",
            params![r, now, creator],
        )?;
    }
    Ok(conn)
}

/// A vault whose content breaks the rules: exit 1, nothing run.
pub(crate) fn damaged(source: &str, what: impl std::fmt::Display) -> Error {
    Error::new(format!("{source} is damaged: {what}"))
        .hint("restore it from a backup or from version control; `vault doctor` shows more")
}

/// The strict load of a freshly deserialized database (DESIGN v2
/// "Schema"), before anything else runs on it: it must be a vault database
/// of a version this build knows, holding exactly that version's schema
/// objects. Returns the schema version. Cheap on purpose (no
/// `integrity_check`, no row scan): it runs on every load.
pub(crate) fn check(conn: &Connection, source: &str) -> Result<i64> {
    let not_a_vault = || {
        Error::new(format!(
            "{source} decrypts, but what it holds is not a vault database"
        ))
        .hint("restore it from a backup; `vault doctor` shows more")
    };
    configure(conn).map_err(|_| not_a_vault())?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|_| not_a_vault())?;
    let objects = schema_objects(conn).map_err(|_| not_a_vault())?;
    // user_version is a signed 32-bit field: a negative one (a hand-edited
    // or hostile database) is no version vault ever wrote.
    if version <= 0 || !objects.iter().any(|o| o.0 == "table" && o.1 == "secrets") {
        return Err(not_a_vault());
    }
    if version > SCHEMA_VERSION {
        return Err(Error::new(format!(
            "{source} has schema version {version}, newer than this vault understands ({SCHEMA_VERSION}): it was written by a newer vault"
        ))
        .hint("upgrade vault (`cargo install --path .` in a newer checkout)"));
    }
    let want = SCHEMAS[version as usize - 1];
    let same = objects.len() == want.len()
        && objects.iter().zip(want.iter()).all(|(got, want)| {
            got.0 == want.0 && got.1 == want.1 && got.2 == want.2 && got.3.as_deref() == want.3
        });
    if !same {
        let extra = objects
            .iter()
            .find(|got| {
                !want.iter().any(|w| {
                    w.0 == got.0 && w.1 == got.1 && w.2 == got.2 && w.3 == got.3.as_deref()
                })
            })
            .map(|o| {
                let object = format!("{} `{}`", o.0, crate::names::printable(&o.1));
                // An object the schema has, with other SQL (a column added,
                // a constraint changed), is not "one it does not have".
                if want.iter().any(|w| w.0 == o.0 && w.1 == o.1) {
                    format!("its {object} differs from the one schema version {version} creates")
                } else {
                    // `type` is one of table, index, view, trigger.
                    let article = if o.0 == "index" { "an" } else { "a" };
                    format!(
                        "its database holds {article} {object} that schema version {version} does not have"
                    )
                }
            });
        let what = match extra {
            Some(what) => what,
            None => format!("its database lacks part of schema version {version}"),
        };
        return Err(damaged(source, what));
    }
    Ok(version)
}

/// A row of `sqlite_schema` as read.
type Found = (String, String, String, Option<String>);

/// `sqlite_schema`, sorted as `SCHEMAS` is.
fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<Found>> {
    let mut stmt =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    rows.collect()
}

/// Checks a freshly deserialized database and brings its schema up to date;
/// returns the version it had. The strict check comes first: a migration
/// writes, and a write would fire a forged trigger.
pub(crate) fn prepare(conn: &mut Connection, source: &str) -> Result<i64> {
    let version = check(conn, source)?;
    migrate(conn, version)?;
    Ok(version)
}

/// Runs the migrations after `from` (already checked by `check`).
pub(crate) fn migrate(conn: &mut Connection, from: i64) -> Result<()> {
    migrate_to(conn, from, SCHEMA_VERSION)
}

/// Runs the migrations after `from` up to version `to`.
fn migrate_to(conn: &mut Connection, from: i64, to: i64) -> Result<()> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let from = usize::try_from(from)
        .map_err(|_| Error::new(format!("cannot migrate from schema version {from}")))?;
    // Rebuilding a table (v4) must neither cascade a DROP into `entries`
    // and `history` nor let RENAME rewrite their references to `secrets`;
    // both pragmas only take effect outside a transaction.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")?;
    let to = usize::try_from(to)
        .unwrap_or(MIGRATIONS.len())
        .min(MIGRATIONS.len());
    let migrated = (|| -> Result<()> {
        let tx = conn.transaction()?;
        for m in &MIGRATIONS[from..to] {
            for sql in m.sql {
                tx.execute_batch(sql)?;
            }
            if let Some(then) = m.then {
                then(&tx)?;
            }
        }
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if broken.is_some() {
            return Err(Error::new(
                "the vault's entries do not match its secrets: cannot migrate it",
            )
            .hint("`vault doctor` checks the vault file"));
        }
        tx.pragma_update(None, "user_version", to as i64)?;
        tx.commit()?;
        Ok(())
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF;")?;
    migrated
}

/// v2's `meta`: a new random vault id, generation 0.
fn new_meta(conn: &Connection) -> Result<()> {
    use rand_core::RngCore;
    let mut id = [0u8; 16];
    rand_core::OsRng
        .try_fill_bytes(&mut id)
        .map_err(|e| Error::new(format!("no randomness from the system: {e}")))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('vault_id', ?1), ('generation', '0')",
        [hex(&id)],
    )?;
    Ok(())
}

/// v5's `diff_key`: 256 random bits, shared by every member through the
/// encrypted file (DESIGN v2 "Git").
fn new_diff_key(conn: &Connection) -> Result<()> {
    use rand_core::RngCore;
    let mut key = Zeroizing::new([0u8; 32]);
    rand_core::OsRng
        .try_fill_bytes(&mut key[..])
        .map_err(|e| Error::new(format!("no randomness from the system: {e}")))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('diff_key', ?1)",
        [hex(&key[..])],
    )?;
    Ok(())
}

/// The key `vault git show` fingerprints values with (schema v5 on; `meta`
/// validated it).
pub(crate) fn diff_key(conn: &Connection, source: &str) -> Result<Zeroizing<[u8; 32]>> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'diff_key'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let value = Zeroizing::new(value.ok_or_else(|| damaged(source, "`meta` lacks its diff key"))?);
    parse_diff_key(&value).ok_or_else(|| damaged(source, "its diff key is malformed"))
}

/// 64 lowercase hex digits.
fn parse_diff_key(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `meta` says: the vault's id and generation (schema v2 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) vault_id: [u8; 16],
    pub(crate) generation: u64,
}

impl Meta {
    pub(crate) fn id_hex(&self) -> String {
        hex(&self.vault_id)
    }
}

/// Reads and validates `meta`: exactly the keys below, each once (a new
/// key comes with the migration that adds it, and an arm here).
pub(crate) fn meta(conn: &Connection, source: &str) -> Result<Meta> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM meta")?;
    let mut rows = stmt.query([])?;
    let (mut id, mut generation, mut diff_key) = (None, None, false);
    while let Some(row) = rows.next()? {
        let (Ok(key), Ok(value)) = (row.get::<_, String>(0), row.get::<_, String>(1)) else {
            return Err(damaged(source, "a row of `meta` is not text"));
        };
        match key.as_str() {
            "vault_id" => {
                id = Some(
                    parse_vault_id(&value)
                        .ok_or_else(|| damaged(source, "its vault id is malformed"))?,
                )
            }
            "generation" => {
                let g = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| damaged(source, "its generation is malformed"))?;
                generation = Some(g);
            }
            "diff_key" => {
                parse_diff_key(&value)
                    .ok_or_else(|| damaged(source, "its diff key is malformed"))?;
                diff_key = true;
            }
            other => {
                return Err(damaged(
                    source,
                    format!(
                        "`meta` holds an unknown key `{}`",
                        crate::names::printable(other)
                    ),
                ));
            }
        }
    }
    // Schema v5 added the diff key; an older file has none.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if diff_key != (version >= 5) {
        return Err(damaged(source, "`meta` does not match its schema version"));
    }
    match (id, generation) {
        (Some(vault_id), Some(generation)) => Ok(Meta {
            vault_id,
            generation,
        }),
        _ => Err(damaged(source, "`meta` lacks the vault id or generation")),
    }
}

/// 32 lowercase hex digits.
pub(crate) fn parse_vault_id(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// Sets the generation a write saves.
pub(crate) fn set_generation(conn: &Connection, generation: u64) -> Result<()> {
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'generation'",
        [generation.to_string()],
    )?;
    Ok(())
}

/// Every row checked as if a user had typed it (DESIGN v2 "Schema"): what
/// a write runs before it saves, and `doctor` on every load. Names, keys,
/// values (no NUL, pair size), recipients that parse, RFC 3339 timestamps,
/// `meta`. SQLite's types are checked too: a forged row may hold a blob.
pub(crate) fn validate(conn: &Connection, source: &str) -> Result<()> {
    validate_with(conn, source, None)
}

/// The secrets the `entries` rows `rowids` belong to (rows since deleted
/// are none), each once: what `validate_with` needs to check after a write
/// that changed those rows.
pub(crate) fn secrets_of_entries(conn: &Connection, rowids: &[i64]) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT secret_id FROM entries WHERE rowid = ?1")?;
    let mut ids = vec![];
    for rowid in rowids {
        if let Some(id) = stmt.query_row([rowid], |r| r.get::<_, i64>(0)).optional()? {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Why an entry fails the checks a user's input gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryFault {
    NotText,
    BadKey,
    BadValue,
}

/// The checks of one `entries` row as `validate` makes them, on the bytes
/// SQLite holds: UTF-8 text, a portable key, a value without NUL that fits
/// in one environment string. `None` for a value that is not text.
pub(crate) fn check_entry(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> std::result::Result<(), EntryFault> {
    let (Some(key), Some(value)) = (key, value) else {
        return Err(EntryFault::NotText);
    };
    let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) else {
        return Err(EntryFault::NotText);
    };
    if !crate::names::is_env_key(key) {
        return Err(EntryFault::BadKey);
    }
    if !crate::names::storable(key, value) {
        return Err(EntryFault::BadValue);
    }
    Ok(())
}

/// `validate`, where every `entries` row but those of the secrets `only`
/// lists was already checked by `check_entry` in this connection and not
/// changed since (`git merge` checks OURS's rows as it first reads them,
/// and then changes a few secrets): the rest of the database is checked
/// in full, those secrets' entries too.
pub(crate) fn validate_with(conn: &Connection, source: &str, only: Option<&[i64]>) -> Result<()> {
    let bad = |what: String| damaged(source, what);
    meta(conn, source)?;
    // One sequential scan per big table, every value borrowed (this runs
    // before every write, and on `git merge`'s 10,000-row results;
    // BENCHMARKS.md, "Write" and "Merge"). A fault found early but
    // reported after the entries (a secret's version or author) is held in
    // `late`, so that each fault keeps the message it always had.
    // Sorted (`ORDER BY id` is the rowid order, no sort), for the
    // entries' binary search.
    let mut secret_ids: Vec<i64> = Vec::new();
    let mut late: Option<Error> = None;
    {
        let mut stmt = conn.prepare(
            "SELECT id, name, created_at, updated_at, env, version, updated_by FROM secrets
             ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let printable = |s: &str| !s.chars().any(char::is_control) && s.len() <= 1024;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            secret_ids.push(id);
            // The same checks as `SecretName::parse`, in the same order.
            let is_text =
                |i| -> rusqlite::Result<bool> { Ok(matches!(r.get_ref(i)?, ValueRef::Text(_))) };
            let texts = is_text(1)? && is_text(2)? && is_text(3)? && is_text(4)?;
            if !texts {
                return Err(bad(format!("secret row {id} is not text")));
            }
            let name = text_at(r, 1)?;
            if !crate::names::is_secret_name(name) {
                return Err(bad(format!("secret row {id} has an invalid name")));
            }
            // An environment is named like a secret (`-e`, `ENV/NAME`).
            if !crate::names::is_secret_name(text_at(r, 4)?) {
                return Err(bad(format!("secret `{name}` has an invalid environment")));
            }
            for i in [2, 3] {
                check_time(text_at(r, i)?)
                    .map_err(|_| bad(format!("secret `{name}` has an invalid timestamp")))?;
            }
            let versioned = matches!(r.get_ref(5)?, ValueRef::Integer(v) if v >= 1)
                && matches!(r.get_ref(6)?, ValueRef::Text(_))
                && printable(text_at(r, 6)?);
            if !versioned && late.is_none() {
                late = Some(bad(format!(
                    "secret `{name}` has an invalid version or author"
                )));
            }
        }
    }
    {
        // The same checks as `EnvKey::parse` and `SecretValue::new`, and
        // `is_description` for a described key; a secret's name only for a
        // message. (With `only`, the loader checked that every row's
        // secret exists, and every other row.)
        let name_of = |id: i64| -> String {
            conn.query_row("SELECT name FROM secrets WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_or_default()
        };
        let mut orphan = false;
        let mut fault: Option<Error> = None;
        let mut undescribed: Option<Error> = None;
        // Which secrets have a key, from the whole scan: vault never makes
        // one without (it deletes, not empties), and a write to one made a
        // version `history` cannot hold.
        let mut keyed = vec![false; secret_ids.len()];
        let mut check = |r: &rusqlite::Row, whole: bool| -> Result<()> {
            let id = r.get::<_, i64>(0)?;
            if whole {
                match secret_ids.binary_search(&id) {
                    Ok(i) => keyed[i] = true,
                    Err(_) => {
                        orphan = true;
                        return Ok(());
                    }
                }
            }
            let text = |i| match r.get_ref(i) {
                Ok(ValueRef::Text(t)) => Some(t),
                _ => None,
            };
            let (key, value) = (text(1), text(2));
            if fault.is_none() {
                fault = match check_entry(key, value) {
                    Ok(()) => None,
                    Err(EntryFault::NotText) => Some(bad(format!(
                        "secret `{}` has an entry that is not text",
                        name_of(id)
                    ))),
                    Err(EntryFault::BadKey) => {
                        Some(bad(format!("secret `{}` has an invalid key", name_of(id))))
                    }
                    Err(EntryFault::BadValue) => Some(bad(format!(
                        "secret `{}`: the value of `{}` is invalid",
                        name_of(id),
                        String::from_utf8_lossy(key.unwrap_or_default())
                    ))),
                };
            }
            let described = match r.get_ref(3)? {
                ValueRef::Null => true,
                ValueRef::Text(t) => std::str::from_utf8(t).is_ok_and(is_description),
                _ => false,
            };
            if !described && undescribed.is_none() {
                undescribed = Some(bad(format!(
                    "secret `{}` has an invalid key description",
                    name_of(id)
                )));
            }
            Ok(())
        };
        match only {
            None => {
                let mut stmt =
                    conn.prepare("SELECT secret_id, key, value, description FROM entries")?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    check(r, true)?;
                }
            }
            Some(ids) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT secret_id, key, value, description FROM entries WHERE secret_id = ?1",
                )?;
                for id in ids {
                    let mut rows = stmt.query([id])?;
                    while let Some(r) = rows.next()? {
                        check(r, false)?;
                    }
                }
            }
        }
        if orphan {
            return Err(bad("an entry belongs to no secret".into()));
        }
        if let Some(e) = fault.or(late).or(undescribed) {
            return Err(e);
        }
        if only.is_none()
            && let Some(i) = keyed.iter().position(|k| !k)
        {
            return Err(bad(format!(
                "secret `{}` has no keys",
                name_of(secret_ids[i])
            )));
        }
    }
    validate_history(conn, source)?;
    validate_v5(conn, source)?;
    recipients_info(conn)
        .map_err(|e| Error::new(format!("{source} is damaged: {}", e.message())))?;
    Ok(())
}

/// The columns and table that schema v3 (history) adds: versions are
/// positive integers, authors and descriptions printable, and every earlier
/// version an object of valid keys and values, as if typed by a user.
fn validate_history(conn: &Connection, source: &str) -> Result<()> {
    let bad = |what: String| damaged(source, what);
    let printable = |s: &str| !s.chars().any(char::is_control) && s.len() <= 1024;
    // (The columns of `secrets` and the descriptions in `entries` are
    // checked in `validate_with`'s scans of those tables.)
    let mut stmt = conn.prepare(
        "SELECT s.name, typeof(h.version), h.version, h.name, h.changed_at, h.changed_by, h.entries
         FROM history h LEFT JOIN secrets s ON s.id = h.secret_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let Some(name) = r.get::<_, Option<String>>(0)? else {
            return Err(bad("a history row belongs to no secret".into()));
        };
        let texts = (3..7).all(|i| {
            r.get_ref(i)
                .is_ok_and(|v| v.data_type() == rusqlite::types::Type::Text)
        });
        if !texts || r.get::<_, String>(1)? != "integer" || r.get::<_, i64>(2)? < 1 {
            return Err(bad(format!("secret `{name}` has an invalid history row")));
        }
        let old_name: String = r.get(3)?;
        let when: String = r.get(4)?;
        let by: String = r.get(5)?;
        let entries = Zeroizing::new(r.get::<_, String>(6)?);
        let ok = SecretName::parse(&old_name).is_ok()
            && check_time(&when).is_ok()
            && printable(&by)
            && history::parse_entries(&entries).is_some();
        if !ok {
            return Err(bad(format!("secret `{name}` has an invalid history row")));
        }
    }
    Ok(())
}

/// What schema v5 (issue 18) adds: rotation marks are RFC 3339 times, and
/// every unresolved conflict names a valid environment, secret and key,
/// with values (or, for a whole secret, `{KEY: value}` objects) as if typed
/// by a user.
fn validate_v5(conn: &Connection, source: &str) -> Result<()> {
    let bad = |what: String| damaged(source, what);
    let mut stmt =
        conn.prepare("SELECT name, rotate_since FROM secrets WHERE rotate_since IS NOT NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let ok = r
            .get::<_, String>(1)
            .ok()
            .is_some_and(|t| check_time(&t).is_ok());
        if !ok {
            return Err(bad(format!("secret `{name}` has an invalid rotation mark")));
        }
    }
    let mut stmt = conn.prepare("SELECT env, secret, key, base, ours, theirs FROM conflicts")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> std::result::Result<Option<Zeroizing<String>>, ()> {
            match r.get_ref(i).map_err(|_| ())? {
                rusqlite::types::ValueRef::Null => Ok(None),
                rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                    .map(|t| Some(Zeroizing::new(t.to_owned())))
                    .map_err(|_| ()),
                _ => Err(()),
            }
        };
        let conflict = bad("a merge conflict row is invalid".into());
        let (Ok(Some(env)), Ok(Some(secret)), Ok(key)) = (text(0), text(1), text(2)) else {
            return Err(conflict);
        };
        if SecretName::parse(&env).is_err() || SecretName::parse(&secret).is_err() {
            return Err(conflict);
        }
        let key = match key {
            Some(k) => {
                Some(EnvKey::parse(&k).map_err(|_| bad("a merge conflict row is invalid".into()))?)
            }
            None => None,
        };
        for i in 3..6 {
            let Ok(value) = text(i) else {
                return Err(bad("a merge conflict row is invalid".into()));
            };
            let ok = match (&key, value) {
                (_, None) => true,
                (Some(k), Some(v)) => SecretValue::new(k, v).is_ok(),
                (None, Some(v)) => history::parse_entries(&v).is_some(),
            };
            if !ok {
                return Err(bad(format!(
                    "a merge conflict in secret `{}` has an invalid value",
                    &*secret
                )));
            }
        }
    }
    Ok(())
}

use rusqlite::types::ValueRef;

/// Column `i` as borrowed text, failing as `r.get::<_, String>(i)` does.
fn text_at<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    match r.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| rusqlite::Error::Utf8Error(i, e)),
        _ => r
            .get::<_, String>(i)
            .and(Err(rusqlite::Error::InvalidColumnIndex(i))),
    }
}

#[cfg(test)]
mod text_at_tests {
    /// `text_at` fails exactly as `get::<_, String>` does, for every kind
    /// of column, so the borrowed checks keep validate's errors.
    #[test]
    fn text_at_answers_as_get_string() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn
            .prepare("SELECT 'ok', CAST(x'ff41' AS TEXT), NULL, 7, 1.5, x'00'")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let r = rows.next().unwrap().unwrap();
        for i in 0..6 {
            let owned = r.get::<_, String>(i);
            let borrowed = super::text_at(r, i).map(str::to_owned);
            assert_eq!(format!("{owned:?}"), format!("{borrowed:?}"), "column {i}");
        }
        assert_eq!(super::text_at(r, 0).unwrap(), "ok");
    }
}

fn check_time(t: &str) -> std::result::Result<(), ()> {
    t.parse::<jiff::Timestamp>().map(|_| ()).map_err(|_| ())
}

/// SQLite's full check; costs as much as loading the vault, so only
/// `vault doctor` runs it.
pub(crate) fn integrity_check(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(Error::new(format!(
            "the database fails PRAGMA integrity_check ({} findings)",
            rows.len()
        )))
    }
}

#[cfg(test)]
pub(crate) fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// The current time as stored: RFC 3339 in UTC, to the second.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub struct SecretInfo {
    pub env: String,
    pub name: String,
    pub keys: i64,
    pub created_at: String,
    pub updated_at: String,
    /// When a removed member could last read it: RFC 3339, `None` when it
    /// needs no rotation (`store::rotation`).
    pub rotate_since: Option<String>,
}

const INFO_COLUMNS: &str = "s.env, s.name,
    (SELECT count(*) FROM entries e WHERE e.secret_id = s.id), s.created_at, s.updated_at,
    s.rotate_since";

/// A row of `secrets` as `list` and `info` read it (`INFO_COLUMNS`),
/// validated: a forged environment, name or timestamp is damage, never
/// printed.
fn secret_info(r: &rusqlite::Row) -> rusqlite::Result<std::result::Result<SecretInfo, Error>> {
    let bad = |what: &str| {
        Err(Error::new(format!("the vault lists a secret with {what}"))
            .hint("restore it from a backup or from version control"))
    };
    let (Ok(env), Ok(name), Ok(created_at), Ok(updated_at)) = (
        r.get::<_, String>(0),
        r.get::<_, String>(1),
        r.get::<_, String>(3),
        r.get::<_, String>(4),
    ) else {
        return Ok(bad("a field that is not text"));
    };
    if SecretName::parse(&env).is_err() {
        return Ok(bad("an invalid environment"));
    }
    if SecretName::parse(&name).is_err() {
        return Ok(bad("an invalid name"));
    }
    if check_time(&created_at).is_err() || check_time(&updated_at).is_err() {
        return Ok(bad("an invalid timestamp"));
    }
    let Ok(rotate_since) = r.get::<_, Option<String>>(5) else {
        return Ok(bad("a field that is not text"));
    };
    if rotate_since
        .as_deref()
        .is_some_and(|t| check_time(t).is_err())
    {
        return Ok(bad("an invalid rotation mark"));
    }
    Ok(Ok(SecretInfo {
        env,
        name,
        keys: r.get(2)?,
        created_at,
        updated_at,
        rotate_since,
    }))
}

/// The secrets of environment `env` sorted by name, or with `None` those of
/// every environment, sorted by environment and name.
pub fn list(conn: &Connection, env: Option<&str>) -> Result<Vec<SecretInfo>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM secrets s
         WHERE ?1 IS NULL OR s.env = ?1 ORDER BY s.env, s.name"
    ))?;
    let rows = stmt.query_map([env], secret_info)?;
    let mut out = vec![];
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// Every secret name of `env`, validated (completion scripts print them).
pub(crate) fn names(conn: &Connection, env: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM secrets WHERE env = ?1 ORDER BY name")?;
    let rows = stmt.query_map([env], |r| r.get::<_, String>(0))?;
    let mut out = vec![];
    for name in rows {
        let name = name
            .ok()
            .filter(|n| SecretName::parse(n).is_ok())
            .ok_or_else(|| {
                Error::new("the vault lists a secret with an invalid name")
                    .hint("restore it from a backup or from version control")
            })?;
        out.push(name);
    }
    Ok(out)
}

/// Every environment that holds a secret, with how many, sorted by name.
pub fn envs(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare("SELECT env, count(*) FROM secrets GROUP BY env ORDER BY env")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether `env` holds any secret. `main` always exists.
pub(crate) fn env_exists(conn: &Connection, env: &str) -> Result<bool> {
    if env == DEFAULT_ENV {
        return Ok(true);
    }
    Ok(conn
        .query_row(
            "SELECT 1 FROM secrets WHERE env = ?1 LIMIT 1",
            [env],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The error for an environment that holds no secret, with the closest
/// one that does.
pub(crate) fn unknown_env(conn: &Connection, env: &str) -> Error {
    let envs: Vec<String> = envs(conn)
        .unwrap_or_default()
        .into_iter()
        .map(|(e, _)| e)
        .chain([DEFAULT_ENV.to_string()])
        .collect();
    let hint = match crate::names::closest(env, envs.iter().map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`? `vault env list` shows every environment"),
        None => "`vault env list` shows every environment; a first `vault secret create -e ENV …` makes one".to_string(),
    };
    Error::new(format!(
        "no environment named `{}`",
        crate::names::printable(env)
    ))
    .hint(hint)
}

/// Fails with `unknown_env` unless `env` holds a secret (or is `main`):
/// what commands that only read an environment check first.
pub(crate) fn require_env(conn: &Connection, env: &str) -> Result<()> {
    if env_exists(conn, env)? {
        Ok(())
    } else {
        Err(unknown_env(conn, env))
    }
}

pub fn info(conn: &Connection, env: &str, name: &SecretName) -> Result<Option<SecretInfo>> {
    let row = conn
        .query_row(
            &format!("SELECT {INFO_COLUMNS} FROM secrets s WHERE s.env = ?1 AND s.name = ?2"),
            [env, name.as_str()],
            secret_info,
        )
        .optional()?;
    row.transpose()
}

/// The `no secret named …` error, with the closest existing name; or, when
/// the environment itself holds nothing, the unknown-environment error.
pub(crate) fn missing(conn: &Connection, env: &str, name: &SecretName) -> Error {
    if !env_exists(conn, env).unwrap_or(true) {
        return unknown_env(conn, env);
    }
    let names = names(conn, env).unwrap_or_default();
    let (what, flag) = if env == DEFAULT_ENV {
        (String::new(), String::new())
    } else {
        (format!(" in environment `{env}`"), format!(" -e {env}"))
    };
    let list = format!("`vault secret list{flag}` shows every secret");
    // The very name in another environment (a forgotten `-e`) says more
    // than a similar name here: `app` of `stg` before `pp` of `main`.
    let elsewhere: Option<String> = conn
        .query_row(
            "SELECT env FROM secrets WHERE name = ?1 AND env != ?2 ORDER BY env LIMIT 1",
            [name.as_str(), env],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let hint = match (
        elsewhere,
        crate::names::closest(name.as_str(), names.iter().map(String::as_str)),
    ) {
        (Some(e), _) => format!("environment `{e}` has one: `-s {e}/{name}`, or `-e {e}`"),
        (None, Some(c)) => format!("did you mean `{c}`? {list}"),
        (None, None) => list,
    };
    Error::new(format!("no secret named `{name}`{what}")).hint(hint)
}

fn id_of(conn: &Connection, env: &str, name: &SecretName) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM secrets WHERE env = ?1 AND name = ?2",
        [env, name.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| missing(conn, env, name))
}

pub(crate) fn exists(conn: &Connection, env: &str, name: &SecretName) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM secrets WHERE env = ?1 AND name = ?2",
            [env, name.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The entries of a secret, sorted by key: one query (this is on `run`'s
/// path). A secret always has a key, so no rows means no such secret.
pub fn entries(
    conn: &Connection,
    env: &str,
    name: &SecretName,
) -> Result<Vec<(EnvKey, SecretValue)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.key, e.value, s.created_at, s.updated_at, s.rotate_since
         FROM entries e JOIN secrets s ON s.id = e.secret_id
         WHERE s.env = ?1 AND s.name = ?2 ORDER BY e.key",
    )?;
    let mut rows = stmt.query([env, name.as_str()])?;
    let mut out = vec![];
    // Keys, values and the secret's own row were validated when written;
    // a hand-edited database that breaks the rules is a damaged vault
    // (DESIGN v2 "Schema": every row validated as it is read), reported
    // as such and never passed on to a command.
    let damaged = |what: &str| {
        Error::new(format!("the vault is damaged: secret `{name}` has {what}"))
            .hint("restore it from a backup or from version control; `vault doctor` shows more")
    };
    let mut first = true;
    while let Some(row) = rows.next()? {
        let key: String = row
            .get(0)
            .map_err(|_| damaged("an entry that is not text"))?;
        let value = Zeroizing::new(
            row.get::<_, String>(1)
                .map_err(|_| damaged("an entry that is not text"))?,
        );
        if first {
            first = false;
            let times: Option<(String, String, Option<String>)> =
                (|| Some((row.get(2).ok()?, row.get(3).ok()?, row.get(4).ok()?)))();
            let valid = times.is_some_and(|(c, u, r)| {
                check_time(&c).is_ok()
                    && check_time(&u).is_ok()
                    && r.is_none_or(|r| check_time(&r).is_ok())
            });
            if !valid {
                return Err(damaged("an invalid timestamp"));
            }
        }
        let key = EnvKey::parse(&key).map_err(|_| damaged("an invalid key"))?;
        let value = SecretValue::new(&key, value)
            .map_err(|_| damaged(&format!("an invalid value for `{key}`")))?;
        out.push((key, value));
    }
    if out.is_empty() && !exists(conn, env, name)? {
        return Err(missing(conn, env, name));
    }
    Ok(out)
}

/// Fails when `name` exists in `env`, as `create_secret` without
/// `replace` does: what `secret create` checks before it reads any value.
pub(crate) fn refuse_existing(conn: &Connection, env: &str, name: &SecretName) -> Result<()> {
    if exists(conn, env, name)? {
        return Err(already_exists(env, name));
    }
    Ok(())
}

fn already_exists(env: &str, name: &SecretName) -> Error {
    let (flag, what) = if env == DEFAULT_ENV {
        (String::new(), String::new())
    } else {
        (format!(" -e {env}"), format!(" in environment `{env}`"))
    };
    Error::new(format!("a secret named `{name}` already exists{what}")).hint(format!(
        "pass --force to replace it, or `vault secret set{flag} {name} KEY=VALUE` to change keys"
    ))
}

/// Creates `name` in `env` with `entries`; with `replace`, an existing
/// secret of that name is replaced (its creation time and history kept,
/// the replaced entries becoming its previous version).
pub fn create_secret(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
    replace: bool,
) -> Result<()> {
    if exists(conn, env, name)? {
        if !replace {
            return Err(already_exists(env, name));
        }
        let id = id_of(conn, env, name)?;
        let before = history::begin(conn, id)?;
        conn.execute("DELETE FROM entries WHERE secret_id = ?1", [id])?;
        put_entries(conn, id, entries)?;
        history::finish(conn, before)?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO secrets (env, name, created_at, updated_at, version, updated_by)
         VALUES (?1, ?2, ?3, ?3, 1, ?4)",
        params![env, name.as_str(), now(), history::author(conn)?],
    )?;
    let id = id_of(conn, env, name)?;
    put_entries(conn, id, entries)
}

/// `secret copy`: `name` of `from` becomes a secret of the same name in
/// `to`, with the same entries.
pub(crate) fn copy(
    conn: &Connection,
    from: &str,
    name: &SecretName,
    to: &str,
    replace: bool,
) -> Result<usize> {
    conflicts::unconflicted(conn, from, name, "resolve it before copying it")?;
    let entries = entries(conn, from, name)?;
    if !replace && exists(conn, to, name)? {
        // Named even when it is `main`: a copy is between two.
        return Err(Error::new(format!(
            "a secret named `{name}` already exists in environment `{to}`"
        ))
        .hint("pass --force to replace it there"));
    }
    create_secret(conn, to, name, &entries, replace)?;
    rotation::carry(conn, from, to, name)?;
    Ok(entries.len())
}

fn put_entries(conn: &Connection, id: i64, entries: &[(EnvKey, SecretValue)]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO entries (secret_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (secret_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for (k, v) in entries {
        stmt.execute(params![id, k.as_str(), v.expose()])?;
    }
    Ok(())
}

/// Sets keys of an existing secret, adding or overwriting. Returns whether
/// anything changed (setting a key to the value it has makes no version).
pub(crate) fn set(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
) -> Result<bool> {
    let id = id_of(conn, env, name)?;
    let before = history::begin(conn, id)?;
    put_entries(conn, id, entries)?;
    history::finish(conn, before)
}

/// Makes the secret's entries exactly `entries` (`edit`, `rollback`):
/// keys not in it are removed, the rest added or overwritten, so the
/// descriptions of keys that stay are kept. Returns whether anything changed.
pub(crate) fn replace(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
) -> Result<bool> {
    if entries.is_empty() {
        return Err(
            Error::new(format!("that would leave `{name}` with no keys")).hint(format!(
                "`vault secret delete {name}` removes the whole secret"
            )),
        );
    }
    let id = id_of(conn, env, name)?;
    let before = history::begin(conn, id)?;
    let present = keys_of(conn, id)?;
    let mut stmt = conn.prepare("DELETE FROM entries WHERE secret_id = ?1 AND key = ?2")?;
    for p in &present {
        if !entries.iter().any(|(k, _)| k.as_str() == p) {
            stmt.execute(params![id, p])?;
        }
    }
    put_entries(conn, id, entries)?;
    history::finish(conn, before)
}

fn keys_of(conn: &Connection, id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT key FROM entries WHERE secret_id = ?1 ORDER BY key")?;
    let keys = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// The error for a key a secret does not have, with the closest one.
fn no_such_key(name: &SecretName, key: &EnvKey, present: &[String]) -> Error {
    let e = Error::new(format!("secret `{name}` has no key `{key}`"));
    match crate::names::closest(key.as_str(), present.iter().map(String::as_str)) {
        Some(c) => e.hint(format!(
            "did you mean `{c}`? `vault secret show {name}` lists its keys"
        )),
        None => e.hint(format!("`vault secret show {name}` lists its keys")),
    }
}

/// Removes keys of an existing secret. Every key must exist, and at least
/// one must remain (a secret without keys is deleted, not emptied).
/// Returns how many it removed (a key given twice counts once).
pub(crate) fn unset(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    keys: &[EnvKey],
) -> Result<usize> {
    let id = id_of(conn, env, name)?;
    let present = keys_of(conn, id)?;
    for k in keys {
        if !present.iter().any(|p| p == k.as_str()) {
            return Err(no_such_key(name, k, &present));
        }
    }
    let remaining = present
        .iter()
        .filter(|p| !keys.iter().any(|k| k.as_str() == p.as_str()))
        .count();
    if remaining == 0 {
        return Err(
            Error::new(format!("removing these keys would leave `{name}` empty")).hint(format!(
                "`vault secret delete {name}` removes the whole secret"
            )),
        );
    }
    let before = history::begin(conn, id)?;
    let mut stmt = conn.prepare("DELETE FROM entries WHERE secret_id = ?1 AND key = ?2")?;
    let mut removed = 0;
    for k in keys {
        // A key given twice is removed once.
        removed += stmt.execute(params![id, k.as_str()])?;
    }
    history::finish(conn, before)?;
    Ok(removed)
}

pub(crate) fn rename(
    conn: &Connection,
    env: &str,
    old: &SecretName,
    new: &SecretName,
) -> Result<()> {
    let id = id_of(conn, env, old)?;
    conflicts::unconflicted(conn, env, old, "resolve it before renaming it")?;
    if old != new && exists(conn, env, new)? {
        return Err(
            Error::new(format!("a secret named `{new}` already exists")).hint(format!(
                "delete it first with `vault secret delete {new}`, or pick another name"
            )),
        );
    }
    let before = history::begin(conn, id)?;
    conn.execute(
        "UPDATE secrets SET name = ?1 WHERE id = ?2",
        params![new.as_str(), id],
    )?;
    history::finish(conn, before)?;
    Ok(())
}

/// Deletes a secret and, through the foreign keys, its entries and its
/// whole history (`secure_delete` zeroes their bytes).
pub fn delete(conn: &Connection, env: &str, name: &SecretName) -> Result<()> {
    let id = id_of(conn, env, name)?;
    conn.execute("DELETE FROM secrets WHERE id = ?1", [id])?;
    Ok(())
}

/// Sets (or with `None` removes) the description of one key; not a new
/// version: descriptions are notes about keys, not their values. Returns
/// whether it changed (false: the key already had that description).
pub(crate) fn describe(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    key: &EnvKey,
    text: Option<&str>,
) -> Result<bool> {
    let id = id_of(conn, env, name)?;
    let current: Option<Option<String>> = conn
        .query_row(
            "SELECT description FROM entries WHERE secret_id = ?1 AND key = ?2",
            params![id, key.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return Err(no_such_key(name, key, &keys_of(conn, id)?));
    };
    if current.as_deref() == text {
        return Ok(false);
    }
    conn.execute(
        "UPDATE entries SET description = ?1 WHERE secret_id = ?2 AND key = ?3",
        params![text, id, key.as_str()],
    )?;
    Ok(true)
}

/// The descriptions of a secret's keys that have one, sorted by key.
pub(crate) fn descriptions(
    conn: &Connection,
    env: &str,
    name: &SecretName,
) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT e.key, e.description FROM entries e JOIN secrets s ON s.id = e.secret_id
         WHERE s.env = ?1 AND s.name = ?2 AND e.description IS NOT NULL ORDER BY e.key",
    )?;
    let rows = stmt.query_map([env, name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = vec![];
    for row in rows {
        let (key, text): (String, String) = row?;
        if !is_description(&text) {
            return Err(Error::new(format!(
                "secret `{name}`: the description of a key holds control characters"
            ))
            .hint("the vault was changed by hand; `vault secret describe` can set it again"));
        }
        out.push((key, text));
    }
    Ok(out)
}

/// What a description may hold: one line of printable text, at most 200
/// characters (it is shown in a table).
pub(crate) fn is_description(text: &str) -> bool {
    text.chars().count() <= 200 && !text.chars().any(char::is_control)
}

pub fn recipients(conn: &Connection) -> Result<Vec<String>> {
    Ok(recipients_info(conn)?
        .into_iter()
        .map(|r| r.recipient)
        .collect())
}

#[derive(Debug)]
pub struct RecipientInfo {
    pub recipient: String,
    pub added_at: String,
    /// The member who added this one (their recipient); `None` for the
    /// members of a file from before schema v6, which did not record it.
    pub added_by: Option<String>,
}

/// The recipients, each validated as it is read: a recipient that does not
/// parse, or is not in the form `recipients add` stores, is damage; so is
/// an `added_by` that is neither NULL nor such a recipient (it is printed
/// by `recipients list`).
pub fn recipients_info(conn: &Connection) -> Result<Vec<RecipientInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT typeof(recipient), recipient, typeof(added_at), added_at, added_by
         FROM recipients ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = vec![];
    let bad = || {
        Error::new("the vault lists an invalid recipient")
            .hint("restore it from a backup or from version control")
    };
    let canonical = |r: &str| crate::crypto::canonical_recipient(r).is_ok_and(|c| c == r);
    while let Some(r) = rows.next()? {
        if r.get::<_, String>(0)? != "text" || r.get::<_, String>(2)? != "text" {
            return Err(bad());
        }
        let recipient: String = r.get(1)?;
        let added_at: String = r.get(3)?;
        if !canonical(&recipient) {
            return Err(bad());
        }
        check_time(&added_at).map_err(|_| bad())?;
        let bad_author = || {
            Error::new(format!(
                "the vault records an invalid `added_by` for recipient {recipient}"
            ))
            .hint("restore it from a backup or from version control")
        };
        let added_by = match r.get_ref(4)? {
            ValueRef::Null => None,
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(by) if canonical(by) => Some(by.to_owned()),
                _ => return Err(bad_author()),
            },
            _ => return Err(bad_author()),
        };
        out.push(RecipientInfo {
            recipient,
            added_at,
            added_by,
        });
    }
    Ok(out)
}

/// Adds a recipient, recording the writer (`set_author`) as who added
/// it; returns false if it was already there.
pub(crate) fn add_recipient(conn: &Connection, recipient: &str) -> Result<bool> {
    let author = history::author(conn)?;
    // No writer's recipient (the agent named none) is "unknown", as in
    // `history`, not an invalid row.
    let by = Some(author).filter(|a| !a.is_empty());
    let n = conn.execute(
        "INSERT OR IGNORE INTO recipients (recipient, added_at, added_by) VALUES (?1, ?2, ?3)",
        params![recipient, now(), by],
    )?;
    Ok(n == 1)
}

/// Removes `recipient` (false if it was not one), and renews the diff key when it was one: the
/// former member keeps the old key (in every file from their time), and
/// with it could test guesses of the values against the fingerprints of
/// later diffs (DESIGN v2 "Git": no non-member can). Called by
/// `recipients remove` and by a merge that drops a member.
pub(crate) fn remove_recipient(conn: &Connection, recipient: &str) -> Result<bool> {
    let n = conn.execute("DELETE FROM recipients WHERE recipient = ?1", [recipient])?;
    if n == 1 {
        conn.execute("DELETE FROM meta WHERE key = 'diff_key'", [])?;
        new_diff_key(conn)?;
    }
    Ok(n == 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rusqlite::MAIN_DB;

    const R: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    /// A cached statement run once per secret is compiled once: a plan
    /// that depended on the bound value (`configure`'s QPSG) would be
    /// compiled again on every new binding.
    #[test]
    fn cached_statements_are_not_compiled_again_for_each_value() {
        let conn = create(&[]).unwrap();
        for sql in [
            "SELECT key, value FROM entries WHERE secret_id = ?1 ORDER BY key",
            "SELECT version, entries FROM history WHERE secret_id = ?1 ORDER BY version",
            "SELECT e.key, e.value FROM entries e JOIN secrets s ON s.id = e.secret_id
             WHERE s.env = ?1 AND s.name = ?2 ORDER BY e.key",
        ] {
            for id in 1..=5i64 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let n = stmt.parameter_count();
                let name = format!("s{id}");
                let mut rows = if n == 1 {
                    stmt.query(params![id]).unwrap()
                } else {
                    stmt.query(params!["main", name]).unwrap()
                };
                while rows.next().unwrap().is_some() {}
                drop(rows);
                let again = stmt.get_status(rusqlite::StatementStatus::RePrepare);
                assert_eq!(again, 0, "{sql} compiled again after {id} bindings");
            }
        }
    }

    /// A database of schema version `v`, made by the migrations up to it.
    pub(crate) fn at_version(v: usize) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        migrate_to(&mut conn, 0, v as i64).unwrap();
        conn
    }

    fn objects(conn: &Connection) -> Vec<Found> {
        schema_objects(conn).unwrap()
    }

    fn owned(list: &[Object]) -> Vec<Found> {
        list.iter()
            .map(|o| (o.0.into(), o.1.into(), o.2.into(), o.3.map(String::from)))
            .collect()
    }

    #[test]
    fn every_version_has_its_schema_list_and_fresh_and_migrated_agree() {
        assert_eq!(SCHEMAS.len(), MIGRATIONS.len());
        for v in 1..=MIGRATIONS.len() {
            let conn = at_version(v);
            assert_eq!(objects(&conn), owned(SCHEMAS[v - 1]), "fresh v{v}");
            assert_eq!(check(&conn, "t").unwrap(), v as i64);
            // From every older version, the migrations end at the same schema.
            for from in 1..v {
                let mut old = at_version(from);
                migrate(&mut old, from as i64).unwrap();
                assert_eq!(objects(&old), owned(SCHEMAS[SCHEMA_VERSION as usize - 1]));
            }
        }
        let conn = create(&[]).unwrap();
        assert_eq!(objects(&conn), owned(SCHEMAS[SCHEMA_VERSION as usize - 1]));
    }

    #[test]
    fn v1_migrates_to_the_latest_keeping_every_entry() {
        let mut conn = at_version(1);
        conn.execute_batch(
            "INSERT INTO secrets VALUES (1, 'db', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries VALUES (1, 'A', 'x'), (1, 'B', 'y');
             INSERT INTO recipients VALUES ('age1x', '2026-01-01T00:00:00Z');",
        )
        .unwrap();
        assert_eq!(prepare(&mut conn, "t").unwrap(), 1);
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let e = entries(&conn, "main", &name("db")).unwrap();
        let got: Vec<_> = e.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(got, [("A", "x"), ("B", "y")]);
        let m = meta(&conn, "t").unwrap();
        assert_eq!(m.generation, 0);
        assert_ne!(m.vault_id, [0; 16]);
        // Entries are a rowid table now; the cascade still holds.
        let rowid: i64 = conn
            .query_row("SELECT max(rowid) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rowid, 2);
        delete(&conn, "main", &name("db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // Two migrations, two vault ids.
        let other = create(&[]).unwrap();
        assert_ne!(meta(&other, "t").unwrap().vault_id, m.vault_id);
    }

    #[test]
    fn strict_load_refuses_any_other_schema_object() {
        let forged = [
            // The attack of DESIGN v2 "Schema": a trigger that adds a
            // recipient when the victim writes.
            "CREATE TRIGGER t AFTER INSERT ON entries BEGIN
                 INSERT INTO recipients VALUES ('age1evil', '2026-01-01T00:00:00Z'); END",
            "CREATE VIEW v AS SELECT 1",
            "CREATE TABLE extra (x)",
            "CREATE INDEX i ON entries (value)",
        ];
        for v in 1..=MIGRATIONS.len() {
            for sql in forged {
                let mut conn = at_version(v);
                conn.execute_batch(sql).unwrap();
                let err = prepare(&mut conn, "vault.age").unwrap_err();
                assert!(err.message().contains("is damaged"), "v{v} {sql}: {err:?}");
                // Nothing ran: no migration, no trigger.
                assert_eq!(schema_version(&conn).unwrap(), v as i64);
            }
            // A table of the right name with another definition.
            let mut conn = at_version(v);
            conn.execute_batch(
                "DROP TABLE recipients;
                 CREATE TABLE recipients (recipient TEXT NOT NULL UNIQUE, added_at TEXT NOT NULL)",
            )
            .unwrap();
            assert!(prepare(&mut conn, "t").is_err(), "v{v}");
            // A missing table.
            let mut conn = at_version(v);
            conn.execute_batch("DROP TABLE recipients").unwrap();
            assert!(prepare(&mut conn, "t").is_err(), "v{v}");
        }
    }

    #[test]
    fn rows_are_validated_on_write_and_as_read() {
        let ok = create(&[R.into()]).unwrap();
        validate(&ok, "t").unwrap();
        let cases = [
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'bad name', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', 'yesterday', '2026-01-01T00:00:00Z')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, x'6f6b', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'BAD-KEY', 'v')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', 'a' || char(0) || 'b')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', x'00ff')",
            "INSERT INTO recipients (recipient, added_at) VALUES ('age1nope', '2026-01-01T00:00:00Z')",
            "INSERT INTO recipients (recipient, added_at) VALUES ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN me', '2026-01-01T00:00:00Z')",
            "UPDATE meta SET value = 'x' WHERE key = 'generation'",
            "INSERT INTO secrets (id, name, created_at, updated_at, version) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 0)",
            "INSERT INTO secrets (id, name, created_at, updated_at, updated_by) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'a' || char(27))",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value, description) VALUES (9, 'K', 'v', 'x' || char(10) || 'y')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', 'v');
             INSERT INTO history VALUES (9, 1, 'ok', '2026-01-01T00:00:00Z', 'age1x', '{\"BAD-KEY\": \"v\"}')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', 'v');
             INSERT INTO history VALUES (9, 1, 'bad name', '2026-01-01T00:00:00Z', 'age1x', '{}')",
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', 'v');
             INSERT INTO history VALUES (9, 1, 'ok', 'never', 'age1x', '{}')",
            "INSERT INTO secrets (id, env, name, created_at, updated_at) VALUES (9, 'bad env', 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            "INSERT INTO secrets (id, env, name, created_at, updated_at) VALUES (9, x'6f6b', 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            "UPDATE meta SET value = 'ABC' WHERE key = 'vault_id'",
            "INSERT INTO meta VALUES ('surprise', '1')",
            "DELETE FROM meta WHERE key = 'vault_id'",
            // v5: diff key, rotation marks, conflicts.
            "DELETE FROM meta WHERE key = 'diff_key'",
            "UPDATE meta SET value = 'abc' WHERE key = 'diff_key'",
            "INSERT INTO secrets (id, name, created_at, updated_at, rotate_since) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'soon')",
            "INSERT INTO secrets (id, name, created_at, updated_at, rotate_since) VALUES (9, 'ok', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 5)",
            "INSERT INTO conflicts VALUES ('main', 'bad name', 'K', NULL, 'a', 'b')",
            "INSERT INTO conflicts VALUES ('bad env', 'db', 'K', NULL, 'a', 'b')",
            "INSERT INTO conflicts VALUES ('main', 'db', 'BAD-KEY', NULL, 'a', 'b')",
            "INSERT INTO conflicts VALUES ('main', 'db', 'K', NULL, 'a' || char(0), 'b')",
            "INSERT INTO conflicts VALUES ('main', 'db', 'K', NULL, x'00', 'b')",
            "INSERT INTO conflicts VALUES ('main', 'db', NULL, NULL, 'not json', NULL)",
            "INSERT INTO conflicts VALUES ('main', 'db', NULL, NULL, '{\"BAD-KEY\": \"v\"}', NULL)",
            // v6: who added a member is NULL or a recipient as stored.
            "UPDATE recipients SET added_by = 'age1x' || char(27) || '[2J'",
            "UPDATE recipients SET added_by = 'age1nope'",
            "UPDATE recipients SET added_by = ''",
            "UPDATE recipients SET added_by = x'616765'",
            "UPDATE recipients SET added_by = 7",
            "UPDATE recipients SET added_by = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN me'",
        ];
        for sql in cases {
            let conn = create(&[R.into()]).unwrap();
            conn.execute_batch(sql).unwrap();
            let err = validate(&conn, "t").unwrap_err();
            assert!(!err.message().contains("database error"), "{sql}: {err:?}");
        }
        // As read: list, names and recipients refuse what they would print.
        let conn = create(&[]).unwrap();
        conn.execute(
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (9, 'a[2J', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        assert!(list(&conn, None).is_err());
        assert!(names(&conn, "main").is_err());
        let conn = create(&[]).unwrap();
        conn.execute(
            "INSERT INTO recipients (recipient, added_at) VALUES ('age1[2J', 'x')",
            [],
        )
        .unwrap();
        assert!(recipients(&conn).is_err());
        let conn = create(&[R.into()]).unwrap();
        conn.execute(
            "UPDATE recipients SET added_by = 'age1' || char(27) || ']0;pwned' || char(7)",
            [],
        )
        .unwrap();
        let err = recipients_info(&conn).unwrap_err();
        assert!(err.message().contains("invalid `added_by`"), "{err:?}");
        assert!(!err.message().contains('\u{1b}'), "{err:?}");
    }

    #[test]
    fn v5_rows_that_are_valid_pass_and_the_diff_key_is_random_per_vault() {
        let conn = create(&[R.into()]).unwrap();
        conn.execute_batch(
            "INSERT INTO secrets (id, name, created_at, updated_at, rotate_since) VALUES (9, 'db', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z');
             INSERT INTO entries (secret_id, key, value) VALUES (9, 'K', 'a');
             INSERT INTO conflicts VALUES ('main', 'db', 'K', NULL, 'a', 'b');
             INSERT INTO conflicts VALUES ('main', 'db', NULL, '{\"K\": \"v\"}', NULL, NULL);",
        )
        .unwrap();
        validate(&conn, "t").unwrap();
        // vault never leaves a secret without keys (it deletes it).
        conn.execute(
            "INSERT INTO secrets (id, name, created_at, updated_at) VALUES (10, 'bare', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        let err = validate(&conn, "t").unwrap_err();
        assert_eq!(err.message(), "t is damaged: secret `bare` has no keys");
        conn.execute("DELETE FROM secrets WHERE id = 10", [])
            .unwrap();
        let a = diff_key(&conn, "t").unwrap();
        let b = diff_key(&create(&[]).unwrap(), "t").unwrap();
        assert_ne!(*a, *b);
        assert_ne!(*a, [0; 32]);
        // A v4 file has no diff key until the migration adds one.
        let mut v4 = at_version(4);
        assert!(meta(&v4, "t").is_ok());
        assert!(diff_key(&v4, "t").is_err());
        migrate(&mut v4, 4).unwrap();
        diff_key(&v4, "t").unwrap();
        validate(&v4, "t").unwrap();
    }

    #[test]
    fn removing_a_member_renews_the_diff_key_and_nothing_else_does() {
        let other = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
        let conn = create(&[R.into(), other.into()]).unwrap();
        set_author(&conn, R).unwrap();
        let first = diff_key(&conn, "t").unwrap();
        assert!(!remove_recipient(&conn, "age1nobody").unwrap());
        assert_eq!(*diff_key(&conn, "t").unwrap(), *first);
        assert!(add_recipient(&conn, other).is_ok());
        assert_eq!(*diff_key(&conn, "t").unwrap(), *first);
        assert!(remove_recipient(&conn, other).unwrap());
        let renewed = diff_key(&conn, "t").unwrap();
        assert_ne!(*renewed, *first);
        validate(&conn, "t").unwrap();
    }

    /// Schema v6: members of an older file keep their rows, who added
    /// them unknown (NULL); a new vault's members were added by its
    /// creator, and a member added later by the writer.
    #[test]
    fn v5_members_migrate_with_added_by_unknown_and_new_ones_record_the_writer() {
        let other = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
        let mut v5 = at_version(5);
        v5.execute(
            "INSERT INTO recipients VALUES (?1, '2026-01-01T00:00:00Z')",
            [R],
        )
        .unwrap();
        assert_eq!(prepare(&mut v5, "vault.age").unwrap(), 5);
        assert_eq!(schema_version(&v5).unwrap(), 6);
        assert_eq!(objects(&v5), owned(SCHEMAS[5]));
        validate(&v5, "t").unwrap();
        let got = recipients_info(&v5).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].recipient.as_str(), got[0].added_at.as_str()),
            (R, "2026-01-01T00:00:00Z")
        );
        assert_eq!(got[0].added_by, None);
        // The migrated file takes new members as a fresh one does.
        set_author(&v5, R).unwrap();
        assert!(add_recipient(&v5, other).unwrap());
        assert_eq!(
            recipients_info(&v5).unwrap()[1].added_by.as_deref(),
            Some(R)
        );
        validate(&v5, "t").unwrap();

        let fresh = create(&[R.into(), other.into()]).unwrap();
        let by: Vec<_> = recipients_info(&fresh)
            .unwrap()
            .into_iter()
            .map(|r| r.added_by)
            .collect();
        assert_eq!(by, [Some(R.to_string()), Some(R.to_string())]);
        validate(&fresh, "t").unwrap();
        // A writer without a recipient is "unknown", never an invalid row.
        let conn = create(&[R.into()]).unwrap();
        set_author(&conn, "").unwrap();
        assert!(add_recipient(&conn, other).unwrap());
        assert_eq!(recipients_info(&conn).unwrap()[1].added_by, None);
        validate(&conn, "t").unwrap();
    }

    /// A database as a write sees it: `vault.rs` names the writer first.
    fn db(recipients: &[String]) -> Connection {
        let conn = create(recipients).unwrap();
        set_author(&conn, "age1writer").unwrap();
        conn
    }

    #[test]
    fn v3_secrets_land_in_main_keeping_versions_history_and_descriptions() {
        let mut conn = at_version(3);
        conn.execute_batch(
            "INSERT INTO secrets VALUES (7, 'db', '2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z', 3, 'age1writer');
             INSERT INTO entries (secret_id, key, value, description) VALUES (7, 'PGPASSWORD', 'pw', 'the password'), (7, 'PGUSER', 'app', NULL);
             INSERT INTO history VALUES (7, 2, 'db', '2025-01-01T12:00:00Z', 'age1writer', '{\"PGPASSWORD\": \"old\"}');",
        )
        .unwrap();
        assert_eq!(prepare(&mut conn, "vault.age").unwrap(), 3);
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let l = list(&conn, None).unwrap();
        assert_eq!(
            (l[0].env.as_str(), l[0].name.as_str(), l[0].keys),
            ("main", "db", 2)
        );
        assert_eq!(l[0].created_at, "2025-01-01T00:00:00Z");
        let (version, by): (i64, String) = conn
            .query_row(
                "SELECT version, updated_by FROM secrets WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, by.as_str()), (3, "age1writer"));
        assert_eq!(
            descriptions(&conn, "main", &name("db")).unwrap(),
            [("PGPASSWORD".to_string(), "the password".to_string())]
        );
        validate(&conn, "t").unwrap();
        // `entries` and `history` still refer to `secrets`, and cascade.
        for table in ["entries", "history"] {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(sql.contains("REFERENCES secrets(id)"), "{sql}");
        }
        delete(&conn, "main", &name("db")).unwrap();
        for table in ["entries", "history"] {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
    }

    #[test]
    fn environments_hold_names_of_their_own() {
        let conn = db(&[]);
        create_secret(&conn, "main", &name("db"), &[kv("A", "1")], false).unwrap();
        create_secret(&conn, "prod", &name("db"), &[kv("A", "2")], false).unwrap();
        assert_eq!(
            entries(&conn, "prod", &name("db")).unwrap()[0].1.expose(),
            "2"
        );
        assert_eq!(
            entries(&conn, "main", &name("db")).unwrap()[0].1.expose(),
            "1"
        );
        assert_eq!(
            envs(&conn).unwrap(),
            [("main".to_string(), 1), ("prod".to_string(), 1)]
        );
        let err = entries(&conn, "prd", &name("db")).unwrap_err();
        assert_eq!(
            err.message(),
            "no secret named `db`".replace("no secret named `db`", "no environment named `prd`")
        );
        assert!(err.hint_text().unwrap().contains("did you mean `prod`"));
        create_secret(&conn, "prod", &name("only-prod"), &[kv("A", "3")], false).unwrap();
        let err = entries(&conn, "main", &name("only-prod")).unwrap_err();
        assert!(
            err.hint_text().unwrap().contains("prod/only-prod"),
            "{err:?}"
        );
        assert!(copy(&conn, "main", &name("db"), "prod", false).is_err());
        assert_eq!(copy(&conn, "main", &name("db"), "prod", true).unwrap(), 1);
        assert_eq!(
            entries(&conn, "prod", &name("db")).unwrap()[0].1.expose(),
            "1"
        );
        assert_eq!(list(&conn, None).unwrap().len(), 3);
        assert_eq!(list(&conn, Some("prod")).unwrap().len(), 2);
    }

    fn kv(k: &str, v: &str) -> (EnvKey, SecretValue) {
        let k = EnvKey::parse(k).unwrap();
        let v = SecretValue::new(&k, Zeroizing::new(v.to_string())).unwrap();
        (k, v)
    }

    fn name(s: &str) -> SecretName {
        SecretName::parse(s).unwrap()
    }

    #[test]
    fn create_list_show() {
        let conn = db(&[R.into()]);
        create_secret(
            &conn,
            "main",
            &name("db"),
            &[kv("B", "2"), kv("A", "1")],
            false,
        )
        .unwrap();
        create_secret(&conn, "main", &name("api"), &[kv("K", "v")], false).unwrap();
        let l = list(&conn, None).unwrap();
        assert_eq!(
            l.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["api", "db"]
        );
        assert_eq!(l[1].keys, 2);
        let e = entries(&conn, "main", &name("db")).unwrap();
        assert_eq!(e[0].0.as_str(), "A");
        assert_eq!(e[1].1.expose(), "2");
        assert_eq!(recipients(&conn).unwrap(), [R]);
    }

    #[test]
    fn duplicate_needs_replace() {
        let conn = db(&[]);
        create_secret(&conn, "main", &name("db"), &[kv("A", "1")], false).unwrap();
        let err = create_secret(&conn, "main", &name("db"), &[kv("A", "2")], false).unwrap_err();
        assert!(err.message().contains("already exists"));
        create_secret(&conn, "main", &name("db"), &[kv("C", "3")], true).unwrap();
        let e = entries(&conn, "main", &name("db")).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0.as_str(), "C");
    }

    #[test]
    fn set_unset_rename_delete() {
        let conn = db(&[]);
        create_secret(
            &conn,
            "main",
            &name("db"),
            &[kv("A", "1"), kv("B", "2")],
            false,
        )
        .unwrap();
        set(&conn, "main", &name("db"), &[kv("A", "9"), kv("C", "3")]).unwrap();
        unset(&conn, "main", &name("db"), &[EnvKey::parse("B").unwrap()]).unwrap();
        let e = entries(&conn, "main", &name("db")).unwrap();
        let got: Vec<_> = e.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(got, [("A", "9"), ("C", "3")]);
        assert!(unset(&conn, "main", &name("db"), &[EnvKey::parse("Z").unwrap()]).is_err());
        let all = [EnvKey::parse("A").unwrap(), EnvKey::parse("C").unwrap()];
        assert!(unset(&conn, "main", &name("db"), &all).is_err());
        rename(&conn, "main", &name("db"), &name("db2")).unwrap();
        assert!(entries(&conn, "main", &name("db")).is_err());
        delete(&conn, "main", &name("db2")).unwrap();
        assert!(list(&conn, Some("main")).unwrap().is_empty());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "entries cascade with their secret");
    }

    #[test]
    fn missing_suggests_closest() {
        let conn = db(&[]);
        create_secret(&conn, "main", &name("db-prod"), &[kv("A", "1")], false).unwrap();
        let err = entries(&conn, "main", &name("db-prd")).unwrap_err();
        assert!(err.hint_text().unwrap().contains("db-prod"));
    }

    #[test]
    fn serialize_round_trip_and_checks() {
        let mut conn = db(&[R.into()]);
        create_secret(&conn, "main", &name("db"), &[kv("A", "1")], false).unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let mut c2 = Connection::open_in_memory().unwrap();
        c2.deserialize_read_exact(MAIN_DB, &bytes[..], bytes.len(), false)
            .unwrap();
        prepare(&mut c2, "vault.age").unwrap();
        assert_eq!(
            entries(&c2, "main", &name("db")).unwrap()[0].1.expose(),
            "1"
        );

        // Garbage and foreign databases are caught by the cheap check.
        let garbage = vec![0x42u8; 4096];
        let mut c3 = Connection::open_in_memory().unwrap();
        c3.deserialize_read_exact(MAIN_DB, &garbage[..], garbage.len(), false)
            .unwrap();
        assert!(prepare(&mut c3, "vault.age").is_err());
        let mut other = Connection::open_in_memory().unwrap();
        other
            .execute_batch("CREATE TABLE t(x); PRAGMA user_version = 1;")
            .unwrap();
        let b = other.serialize(MAIN_DB).unwrap().to_vec();
        let mut c4 = Connection::open_in_memory().unwrap();
        c4.deserialize_read_exact(MAIN_DB, &b[..], b.len(), false)
            .unwrap();
        assert!(prepare(&mut c4, "vault.age").is_err());
    }

    #[test]
    fn negative_schema_version_is_not_a_vault() {
        let mut conn = db(&[]);
        conn.pragma_update(None, "user_version", -156).unwrap();
        let err = prepare(&mut conn, "vault.age").unwrap_err();
        assert!(err.message().contains("not a vault database"), "{err:?}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = db(&[]);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = prepare(&mut conn, "vault.age").unwrap_err();
        assert!(err.message().contains("newer"));
    }

    #[test]
    fn deleted_values_leave_no_bytes() {
        let mut conn = db(&[]);
        let canary = "CANARY-7f3a9c-deleted-value";
        create_secret(&conn, "main", &name("gone"), &[kv("K", canary)], false).unwrap();
        create_secret(&conn, "main", &name("kept"), &[kv("K", "x")], false).unwrap();
        delete(&conn, "main", &name("gone")).unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
        assert!(!found, "secure_delete must wipe the deleted value");
    }

    fn values(conn: &Connection, n: &str) -> Vec<(String, String)> {
        entries(conn, "main", &name(n))
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn every_change_keeps_the_previous_version_with_time_and_author() {
        let conn = db(&[]);
        let db_ = name("db");
        create_secret(&conn, "main", &db_, &[kv("A", "1"), kv("B", "2")], false).unwrap();
        set_author(&conn, "age1other").unwrap();
        assert!(set(&conn, "main", &db_, &[kv("A", "9")]).unwrap());
        // The same value again is no change and no version.
        assert!(!set(&conn, "main", &db_, &[kv("A", "9")]).unwrap());
        unset(&conn, "main", &db_, &[EnvKey::parse("B").unwrap()]).unwrap();
        rename(&conn, "main", &db_, &name("pg")).unwrap();
        create_secret(&conn, "main", &name("pg"), &[kv("Z", "z")], true).unwrap();

        let vs = history::versions(&conn, "main", &name("pg")).unwrap();
        let numbers: Vec<i64> = vs.iter().map(|v| v.number).collect();
        assert_eq!(numbers, [5, 4, 3, 2, 1]);
        assert!(vs[0].current && !vs[1].current);
        assert_eq!(
            vs[4].made_by, "age1writer",
            "version 1 was made by the first writer"
        );
        assert_eq!(vs[3].made_by, "age1other");
        assert_eq!(vs[4].name, "db");
        assert_eq!(vs[1].name, "pg");
        let changes: Vec<String> = history::changes(&vs)
            .iter()
            .map(|c| c.as_ref().map_or("-".into(), |c| c.summary()))
            .collect();
        assert_eq!(
            changes,
            [
                "added Z; removed A",
                "renamed from db",
                "removed B",
                "changed A",
                "-"
            ]
        );
        let v1 = history::version(&conn, "main", &name("pg"), 1).unwrap();
        let got: Vec<_> = v1
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(got, [("A", "1"), ("B", "2")]);
    }

    #[test]
    fn ten_earlier_versions_are_kept_and_older_ones_wiped() {
        let mut conn = db(&[]);
        let s = name("s");
        create_secret(&conn, "main", &s, &[kv("K", "OLDEST-VALUE-0")], false).unwrap();
        for i in 1..=11 {
            set(&conn, "main", &s, &[kv("K", &format!("value-{i:02}"))]).unwrap();
        }
        let vs = history::versions(&conn, "main", &s).unwrap();
        assert_eq!(vs.len(), 11, "the current one and ten earlier");
        assert_eq!(vs.last().unwrap().number, 2);
        assert!(history::version(&conn, "main", &s, 1).is_err());
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let canary = b"OLDEST-VALUE-0";
        assert!(!bytes.windows(canary.len()).any(|w| w == canary));
    }

    #[test]
    fn rollback_makes_a_new_version_equal_to_an_old_one() {
        let conn = db(&[]);
        let s = name("s");
        create_secret(&conn, "main", &s, &[kv("A", "1"), kv("B", "2")], false).unwrap();
        describe(
            &conn,
            "main",
            &s,
            &EnvKey::parse("A").unwrap(),
            Some("the a"),
        )
        .unwrap();
        set(&conn, "main", &s, &[kv("A", "x"), kv("C", "3")]).unwrap();
        let r = history::rollback(&conn, "main", &s, None).unwrap();
        assert_eq!((r.to, r.new_version), (1, Some(3)));
        assert_eq!(
            values(&conn, "s"),
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(
            descriptions(&conn, "main", &s).unwrap(),
            [("A".into(), "the a".into())]
        );
        // Back to version 2, then "to the current one" is refused.
        history::rollback(&conn, "main", &s, Some(2)).unwrap();
        assert_eq!(values(&conn, "s").len(), 3);
        assert!(history::rollback(&conn, "main", &s, Some(4)).is_err());
        let err = history::rollback(&conn, "main", &s, Some(99)).unwrap_err();
        assert!(
            err.hint_text().unwrap().contains("versions 1 to 4"),
            "{err:?}"
        );
        let fresh = name("fresh");
        create_secret(&conn, "main", &fresh, &[kv("A", "1")], false).unwrap();
        assert!(history::rollback(&conn, "main", &fresh, None).is_err());
    }

    #[test]
    fn deleting_a_secret_wipes_its_history() {
        let mut conn = db(&[]);
        let s = name("gone");
        create_secret(&conn, "main", &s, &[kv("K", "HISTORIC-CANARY-1")], false).unwrap();
        set(&conn, "main", &s, &[kv("K", "HISTORIC-CANARY-2")]).unwrap();
        create_secret(&conn, "main", &name("kept"), &[kv("K", "x")], false).unwrap();
        delete(&conn, "main", &s).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        assert!(
            !bytes
                .windows(17)
                .any(|w| w.starts_with(b"HISTORIC-CANARY-"))
        );
    }

    #[test]
    fn a_change_without_a_writer_is_refused() {
        let conn = create(&[]).unwrap();
        assert!(create_secret(&conn, "main", &name("s"), &[kv("A", "1")], false).is_err());
    }

    #[test]
    fn a_damaged_history_row_is_an_error_not_output() {
        let conn = db(&[]);
        create_secret(&conn, "main", &name("s"), &[kv("A", "1")], false).unwrap();
        set(&conn, "main", &name("s"), &[kv("A", "2")]).unwrap();
        for bad in [r#"{"BAD KEY": "v"}"#, r#"{"A": 1}"#, "not json", "{}"] {
            conn.execute("UPDATE history SET entries = ?1", [bad])
                .unwrap();
            let err = history::versions(&conn, "main", &name("s")).unwrap_err();
            assert!(err.message().contains("damaged"), "{bad}: {err:?}");
        }
    }
}
