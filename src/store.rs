//! The database inside the vault: schema, migrations and queries, all on a
//! `&Connection` that is already in memory. No files, no crypto.
//!
//! Schema changes are forward-only numbered migrations; `PRAGMA user_version`
//! records how many have run. A vault written by a newer `vault` (a higher
//! version than this build knows) is refused rather than guessed at.

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::names::{EnvKey, SecretName, SecretValue};

pub(crate) mod history;
pub use history::set_author;

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: secrets, their entries, and who the vault is encrypted to.
    "CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         name       TEXT NOT NULL UNIQUE,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );
     CREATE TABLE entries (
         secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (secret_id, key)
     ) WITHOUT ROWID;
     CREATE TABLE recipients (
         recipient TEXT NOT NULL UNIQUE,
         added_at  TEXT NOT NULL
     );",
    // v2 (DESIGN v2 "History", "Files, editing, generating"): earlier
    // versions of every secret, the current version's number and author,
    // and descriptions of keys. Additive only (ADD COLUMN, a new table), so
    // it composes with the migrations of the other version-2 issues.
    "ALTER TABLE secrets ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE secrets ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
     ALTER TABLE entries ADD COLUMN description TEXT;
     CREATE TABLE history (
         secret_id  INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
         version    INTEGER NOT NULL,
         name       TEXT NOT NULL,
         changed_at TEXT NOT NULL,
         changed_by TEXT NOT NULL,
         entries    TEXT NOT NULL,
         PRIMARY KEY (secret_id, version)
     );",
];

pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Settings every connection gets before it is used.
fn configure(conn: &Connection) -> Result<()> {
    // secure_delete: a deleted value's bytes are zeroed, not left in free
    // pages that get re-encrypted. temp_store: sorts and temp tables stay in
    // memory instead of spilling plaintext to /var/tmp.
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(())
}

/// A brand-new vault database, encrypted (later) to `recipients`.
pub(crate) fn create(recipients: &[String]) -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn, 0)?;
    let now = now();
    for r in recipients {
        conn.execute(
            "INSERT OR IGNORE INTO recipients (recipient, added_at) VALUES (?1, ?2)",
            params![r, now],
        )?;
    }
    Ok(conn)
}

/// Checks a freshly deserialized database and brings its schema up to date.
/// Cheap on purpose (no `integrity_check`): it catches a payload that is not
/// a vault database at all, and versions this build cannot read.
pub(crate) fn prepare(conn: &mut Connection, source: &str) -> Result<()> {
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
    let has_secrets: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'secrets'",
            [],
            |r| r.get(0),
        )
        .map_err(|_| not_a_vault())?;
    // user_version is a signed 32-bit field: a negative one (a hand-edited
    // or hostile database) is no version vault ever wrote.
    if version <= 0 || has_secrets == 0 {
        return Err(not_a_vault());
    }
    if version > SCHEMA_VERSION {
        return Err(Error::new(format!(
            "{source} has schema version {version}, newer than this vault understands ({SCHEMA_VERSION})"
        ))
        .hint("upgrade vault (`cargo install --path .` in a newer checkout)"));
    }
    migrate(conn, version)
}

/// Whether the database has an older schema than this build writes (a
/// read-only load must then be copied before `prepare` can migrate it).
/// Anything unreadable is left for `prepare` to report.
pub(crate) fn needs_migration(conn: &Connection) -> bool {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|v| (1..SCHEMA_VERSION).contains(&v))
}

fn migrate(conn: &mut Connection, from: i64) -> Result<()> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let from = usize::try_from(from)
        .map_err(|_| Error::new(format!("cannot migrate from schema version {from}")))?;
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[from..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
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
    pub name: String,
    pub(crate) keys: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

pub fn list(conn: &Connection) -> Result<Vec<SecretInfo>> {
    let mut stmt = conn.prepare(
        "SELECT s.name, (SELECT count(*) FROM entries e WHERE e.secret_id = s.id),
                s.created_at, s.updated_at
         FROM secrets s ORDER BY s.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SecretInfo {
            name: r.get(0)?,
            keys: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM secrets ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn info(conn: &Connection, name: &SecretName) -> Result<Option<SecretInfo>> {
    Ok(conn
        .query_row(
            "SELECT s.name, (SELECT count(*) FROM entries e WHERE e.secret_id = s.id),
                    s.created_at, s.updated_at
             FROM secrets s WHERE s.name = ?1",
            [name.as_str()],
            |r| {
                Ok(SecretInfo {
                    name: r.get(0)?,
                    keys: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The `no secret named …` error, with the closest existing name.
pub(crate) fn missing(conn: &Connection, name: &SecretName) -> Error {
    let names = names(conn).unwrap_or_default();
    let hint = match crate::names::closest(name.as_str(), names.iter().map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`? `vault secret list` shows every secret"),
        None => "`vault secret list` shows every secret".to_string(),
    };
    Error::new(format!("no secret named `{name}`")).hint(hint)
}

fn id_of(conn: &Connection, name: &SecretName) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM secrets WHERE name = ?1",
        [name.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| missing(conn, name))
}

pub(crate) fn exists(conn: &Connection, name: &SecretName) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM secrets WHERE name = ?1",
            [name.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The entries of a secret, sorted by key: one query (this is on `run`'s
/// path). A secret always has a key, so no rows means no such secret.
pub fn entries(conn: &Connection, name: &SecretName) -> Result<Vec<(EnvKey, SecretValue)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.key, e.value FROM entries e JOIN secrets s ON s.id = e.secret_id
         WHERE s.name = ?1 ORDER BY e.key",
    )?;
    let mut rows = stmt.query([name.as_str()])?;
    let mut out = vec![];
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let value = Zeroizing::new(row.get::<_, String>(1)?);
        // Keys and values were validated when written; a hand-edited database
        // that breaks the rules is reported, not passed on.
        let key = EnvKey::parse(&key).map_err(|e| e.context(format_args!("secret `{name}`")))?;
        let value = SecretValue::new(&key, value)?;
        out.push((key, value));
    }
    if out.is_empty() && !exists(conn, name)? {
        return Err(missing(conn, name));
    }
    Ok(out)
}

/// Creates `name` with `entries`; with `replace`, an existing secret of that
/// name is replaced (its creation time and history kept, the replaced
/// entries becoming its previous version).
pub fn create_secret(
    conn: &Connection,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
    replace: bool,
) -> Result<()> {
    if exists(conn, name)? {
        if !replace {
            return Err(Error::new(format!("a secret named `{name}` already exists"))
                .hint(format!(
                    "pass --force to replace it, or `vault secret set {name} KEY=VALUE` to change keys"
                )));
        }
        let id = id_of(conn, name)?;
        let before = history::begin(conn, id)?;
        conn.execute("DELETE FROM entries WHERE secret_id = ?1", [id])?;
        put_entries(conn, id, entries)?;
        history::finish(conn, before)?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO secrets (name, created_at, updated_at, version, updated_by)
         VALUES (?1, ?2, ?2, 1, ?3)",
        params![name.as_str(), now(), history::author(conn)?],
    )?;
    let id = id_of(conn, name)?;
    put_entries(conn, id, entries)
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
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
) -> Result<bool> {
    let id = id_of(conn, name)?;
    let before = history::begin(conn, id)?;
    put_entries(conn, id, entries)?;
    history::finish(conn, before)
}

/// Makes the secret's entries exactly `entries` (`edit`, `rollback`):
/// keys not in it are removed, the rest added or overwritten, so the
/// descriptions of keys that stay are kept. Returns whether anything changed.
pub(crate) fn replace(
    conn: &Connection,
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
    let id = id_of(conn, name)?;
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
pub(crate) fn unset(conn: &Connection, name: &SecretName, keys: &[EnvKey]) -> Result<()> {
    let id = id_of(conn, name)?;
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
    for k in keys {
        stmt.execute(params![id, k.as_str()])?;
    }
    history::finish(conn, before)?;
    Ok(())
}

pub(crate) fn rename(conn: &Connection, old: &SecretName, new: &SecretName) -> Result<()> {
    let id = id_of(conn, old)?;
    if old != new && exists(conn, new)? {
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
pub fn delete(conn: &Connection, name: &SecretName) -> Result<()> {
    let id = id_of(conn, name)?;
    conn.execute("DELETE FROM secrets WHERE id = ?1", [id])?;
    Ok(())
}

/// Sets (or with `None` removes) the description of one key; not a new
/// version: descriptions are notes about keys, not their values.
pub(crate) fn describe(
    conn: &Connection,
    name: &SecretName,
    key: &EnvKey,
    text: Option<&str>,
) -> Result<()> {
    let id = id_of(conn, name)?;
    let n = conn.execute(
        "UPDATE entries SET description = ?1 WHERE secret_id = ?2 AND key = ?3",
        params![text, id, key.as_str()],
    )?;
    if n == 0 {
        return Err(no_such_key(name, key, &keys_of(conn, id)?));
    }
    Ok(())
}

/// The descriptions of a secret's keys that have one, sorted by key.
pub(crate) fn descriptions(conn: &Connection, name: &SecretName) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT e.key, e.description FROM entries e JOIN secrets s ON s.id = e.secret_id
         WHERE s.name = ?1 AND e.description IS NOT NULL ORDER BY e.key",
    )?;
    let rows = stmt.query_map([name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
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
    let mut stmt = conn.prepare("SELECT recipient FROM recipients ORDER BY rowid")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub struct RecipientInfo {
    pub(crate) recipient: String,
    pub(crate) added_at: String,
}

pub fn recipients_info(conn: &Connection) -> Result<Vec<RecipientInfo>> {
    let mut stmt = conn.prepare("SELECT recipient, added_at FROM recipients ORDER BY rowid")?;
    let rows = stmt.query_map([], |r| {
        Ok(RecipientInfo {
            recipient: r.get(0)?,
            added_at: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds a recipient; returns false if it was already there.
pub(crate) fn add_recipient(conn: &Connection, recipient: &str) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO recipients (recipient, added_at) VALUES (?1, ?2)",
        params![recipient, now()],
    )?;
    Ok(n == 1)
}

/// Removes a recipient; returns false if it was not there.
pub(crate) fn remove_recipient(conn: &Connection, recipient: &str) -> Result<bool> {
    let n = conn.execute("DELETE FROM recipients WHERE recipient = ?1", [recipient])?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::MAIN_DB;

    /// A tripwire for whoever adds a migration: commands that only read
    /// load the database read-only (vault.rs, `read_only_image`), where
    /// `migrate` cannot write, so vault.rs migrates a writable copy of an
    /// older one (`needs_migration`; tested there with a v1 vault). A new
    /// migration must keep that working; then move this number.
    #[test]
    fn read_only_loads_of_older_schemas_are_migrated_in_a_copy() {
        assert_eq!(SCHEMA_VERSION, 2);
        let v1 = Connection::open_in_memory().unwrap();
        v1.execute_batch(MIGRATIONS[0]).unwrap();
        v1.pragma_update(None, "user_version", 1).unwrap();
        assert!(needs_migration(&v1));
        assert!(!needs_migration(&create(&[]).unwrap()));
    }

    /// A database as a write sees it: `vault.rs` names the writer first.
    fn db(recipients: &[String]) -> Connection {
        let conn = create(recipients).unwrap();
        set_author(&conn, "age1writer").unwrap();
        conn
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
        let conn = db(&["age1x".into()]);
        create_secret(&conn, &name("db"), &[kv("B", "2"), kv("A", "1")], false).unwrap();
        create_secret(&conn, &name("api"), &[kv("K", "v")], false).unwrap();
        let l = list(&conn).unwrap();
        assert_eq!(
            l.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["api", "db"]
        );
        assert_eq!(l[1].keys, 2);
        let e = entries(&conn, &name("db")).unwrap();
        assert_eq!(e[0].0.as_str(), "A");
        assert_eq!(e[1].1.expose(), "2");
        assert_eq!(recipients(&conn).unwrap(), ["age1x"]);
    }

    #[test]
    fn duplicate_needs_replace() {
        let conn = db(&[]);
        create_secret(&conn, &name("db"), &[kv("A", "1")], false).unwrap();
        let err = create_secret(&conn, &name("db"), &[kv("A", "2")], false).unwrap_err();
        assert!(err.message().contains("already exists"));
        create_secret(&conn, &name("db"), &[kv("C", "3")], true).unwrap();
        let e = entries(&conn, &name("db")).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0.as_str(), "C");
    }

    #[test]
    fn set_unset_rename_delete() {
        let conn = db(&[]);
        create_secret(&conn, &name("db"), &[kv("A", "1"), kv("B", "2")], false).unwrap();
        set(&conn, &name("db"), &[kv("A", "9"), kv("C", "3")]).unwrap();
        unset(&conn, &name("db"), &[EnvKey::parse("B").unwrap()]).unwrap();
        let e = entries(&conn, &name("db")).unwrap();
        let got: Vec<_> = e.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(got, [("A", "9"), ("C", "3")]);
        assert!(unset(&conn, &name("db"), &[EnvKey::parse("Z").unwrap()]).is_err());
        let all = [EnvKey::parse("A").unwrap(), EnvKey::parse("C").unwrap()];
        assert!(unset(&conn, &name("db"), &all).is_err());
        rename(&conn, &name("db"), &name("db2")).unwrap();
        assert!(entries(&conn, &name("db")).is_err());
        delete(&conn, &name("db2")).unwrap();
        assert!(list(&conn).unwrap().is_empty());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "entries cascade with their secret");
    }

    #[test]
    fn missing_suggests_closest() {
        let conn = db(&[]);
        create_secret(&conn, &name("db-prod"), &[kv("A", "1")], false).unwrap();
        let err = entries(&conn, &name("db-prd")).unwrap_err();
        assert!(err.hint_text().unwrap().contains("db-prod"));
    }

    #[test]
    fn serialize_round_trip_and_checks() {
        let mut conn = db(&["age1x".into()]);
        create_secret(&conn, &name("db"), &[kv("A", "1")], false).unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let mut c2 = Connection::open_in_memory().unwrap();
        c2.deserialize_read_exact(MAIN_DB, &bytes[..], bytes.len(), false)
            .unwrap();
        prepare(&mut c2, "vault.age").unwrap();
        assert_eq!(entries(&c2, &name("db")).unwrap()[0].1.expose(), "1");

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
        create_secret(&conn, &name("gone"), &[kv("K", canary)], false).unwrap();
        create_secret(&conn, &name("kept"), &[kv("K", "x")], false).unwrap();
        delete(&conn, &name("gone")).unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
        assert!(!found, "secure_delete must wipe the deleted value");
    }

    fn values(conn: &Connection, n: &str) -> Vec<(String, String)> {
        entries(conn, &name(n))
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn every_change_keeps_the_previous_version_with_time_and_author() {
        let conn = db(&[]);
        let db_ = name("db");
        create_secret(&conn, &db_, &[kv("A", "1"), kv("B", "2")], false).unwrap();
        set_author(&conn, "age1other").unwrap();
        assert!(set(&conn, &db_, &[kv("A", "9")]).unwrap());
        // The same value again is no change and no version.
        assert!(!set(&conn, &db_, &[kv("A", "9")]).unwrap());
        unset(&conn, &db_, &[EnvKey::parse("B").unwrap()]).unwrap();
        rename(&conn, &db_, &name("pg")).unwrap();
        create_secret(&conn, &name("pg"), &[kv("Z", "z")], true).unwrap();

        let vs = history::versions(&conn, &name("pg")).unwrap();
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
        let v1 = history::version(&conn, &name("pg"), 1).unwrap();
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
        create_secret(&conn, &s, &[kv("K", "OLDEST-VALUE-0")], false).unwrap();
        for i in 1..=11 {
            set(&conn, &s, &[kv("K", &format!("value-{i:02}"))]).unwrap();
        }
        let vs = history::versions(&conn, &s).unwrap();
        assert_eq!(vs.len(), 11, "the current one and ten earlier");
        assert_eq!(vs.last().unwrap().number, 2);
        assert!(history::version(&conn, &s, 1).is_err());
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let canary = b"OLDEST-VALUE-0";
        assert!(!bytes.windows(canary.len()).any(|w| w == canary));
    }

    #[test]
    fn rollback_makes_a_new_version_equal_to_an_old_one() {
        let conn = db(&[]);
        let s = name("s");
        create_secret(&conn, &s, &[kv("A", "1"), kv("B", "2")], false).unwrap();
        describe(&conn, &s, &EnvKey::parse("A").unwrap(), Some("the a")).unwrap();
        set(&conn, &s, &[kv("A", "x"), kv("C", "3")]).unwrap();
        let r = history::rollback(&conn, &s, None).unwrap();
        assert_eq!((r.to, r.new_version), (1, Some(3)));
        assert_eq!(
            values(&conn, "s"),
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(
            descriptions(&conn, &s).unwrap(),
            [("A".into(), "the a".into())]
        );
        // Back to version 2, then "to the current one" is refused.
        history::rollback(&conn, &s, Some(2)).unwrap();
        assert_eq!(values(&conn, "s").len(), 3);
        assert!(history::rollback(&conn, &s, Some(4)).is_err());
        let err = history::rollback(&conn, &s, Some(99)).unwrap_err();
        assert!(
            err.hint_text().unwrap().contains("versions 1 to 4"),
            "{err:?}"
        );
        let fresh = name("fresh");
        create_secret(&conn, &fresh, &[kv("A", "1")], false).unwrap();
        assert!(history::rollback(&conn, &fresh, None).is_err());
    }

    #[test]
    fn deleting_a_secret_wipes_its_history() {
        let mut conn = db(&[]);
        let s = name("gone");
        create_secret(&conn, &s, &[kv("K", "HISTORIC-CANARY-1")], false).unwrap();
        set(&conn, &s, &[kv("K", "HISTORIC-CANARY-2")]).unwrap();
        create_secret(&conn, &name("kept"), &[kv("K", "x")], false).unwrap();
        delete(&conn, &s).unwrap();
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
        assert!(create_secret(&conn, &name("s"), &[kv("A", "1")], false).is_err());
    }

    #[test]
    fn a_damaged_history_row_is_an_error_not_output() {
        let conn = db(&[]);
        create_secret(&conn, &name("s"), &[kv("A", "1")], false).unwrap();
        set(&conn, &name("s"), &[kv("A", "2")]).unwrap();
        for bad in [r#"{"BAD KEY": "v"}"#, r#"{"A": 1}"#, "not json", "{}"] {
            conn.execute("UPDATE history SET entries = ?1", [bad])
                .unwrap();
            let err = history::versions(&conn, &name("s")).unwrap_err();
            assert!(err.message().contains("damaged"), "{bad}: {err:?}");
        }
    }
}
