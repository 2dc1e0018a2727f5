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
    // v2 (issue 16): every secret belongs to an environment; v1's land in
    // `main`. SQLite cannot change a UNIQUE constraint in place, so the
    // table is rebuilt. `migrate` runs this with foreign keys off (dropping
    // the old table must not cascade into `entries`) and the legacy rename
    // on (so `entries` keeps referring to `secrets`, not to the old copy).
    "ALTER TABLE secrets RENAME TO secrets_v1;
     CREATE TABLE secrets (
         id         INTEGER PRIMARY KEY,
         env        TEXT NOT NULL DEFAULT 'main',
         name       TEXT NOT NULL,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         UNIQUE (env, name)
     );
     INSERT INTO secrets (id, env, name, created_at, updated_at)
         SELECT id, 'main', name, created_at, updated_at FROM secrets_v1;
     DROP TABLE secrets_v1;",
];

/// The environment every secret of a version-1 vault is in, and the one a
/// command works in when neither `-e`, `VAULT_ENV` nor a project names one.
pub(crate) const DEFAULT_ENV: &str = "main";

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

/// A database as version 1 of the schema made it, with one secret `db`
/// in it: for the tests of loading and migrating older vaults.
#[cfg(test)]
pub(crate) fn create_v1(recipients: &[String]) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    configure(&conn).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    for r in recipients {
        conn.execute(
            "INSERT INTO recipients (recipient, added_at) VALUES (?1, ?2)",
            params![r, now()],
        )
        .unwrap();
    }
    conn.execute_batch(
        "INSERT INTO secrets (id, name, created_at, updated_at)
             VALUES (7, 'db', '2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z');
         INSERT INTO entries VALUES (7, 'PGPASSWORD', 'pw'), (7, 'PGUSER', 'app');",
    )
    .unwrap();
    conn
}

/// Whether a loaded database has a known schema older than this build's,
/// so that `prepare` will migrate it (and needs a writable copy).
pub(crate) fn needs_migration(conn: &Connection) -> bool {
    schema_version(conn).is_ok_and(|v| v > 0 && v < SCHEMA_VERSION)
}

fn migrate(conn: &mut Connection, from: i64) -> Result<()> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let from = usize::try_from(from)
        .map_err(|_| Error::new(format!("cannot migrate from schema version {from}")))?;
    // Rebuilding a table (v2) must neither cascade a DROP into `entries`
    // nor let RENAME rewrite `entries`' reference to `secrets`; both
    // pragmas only take effect outside a transaction.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")?;
    let migrated = (|| -> Result<()> {
        let tx = conn.transaction()?;
        for sql in &MIGRATIONS[from..] {
            tx.execute_batch(sql)?;
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
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF;")?;
    migrated
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
    pub env: String,
    pub name: String,
    pub keys: i64,
    pub created_at: String,
    pub updated_at: String,
}

const INFO_COLUMNS: &str = "s.env, s.name,
    (SELECT count(*) FROM entries e WHERE e.secret_id = s.id), s.created_at, s.updated_at";

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretInfo> {
    Ok(SecretInfo {
        env: r.get(0)?,
        name: r.get(1)?,
        keys: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// The secrets of environment `env` sorted by name, or with `None` those of
/// every environment, sorted by environment and name.
pub fn list(conn: &Connection, env: Option<&str>) -> Result<Vec<SecretInfo>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM secrets s
         WHERE ?1 IS NULL OR s.env = ?1 ORDER BY s.env, s.name"
    ))?;
    let rows = stmt.query_map([env], info_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn names(conn: &Connection, env: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM secrets WHERE env = ?1 ORDER BY name")?;
    let rows = stmt.query_map([env], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    Ok(conn
        .query_row(
            &format!("SELECT {INFO_COLUMNS} FROM secrets s WHERE s.env = ?1 AND s.name = ?2"),
            [env, name.as_str()],
            info_row,
        )
        .optional()?)
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
    let hint = match crate::names::closest(name.as_str(), names.iter().map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`? {list}"),
        None => {
            // The name may exist elsewhere: say where.
            let elsewhere: Option<String> = conn
                .query_row(
                    "SELECT env FROM secrets WHERE name = ?1 ORDER BY env LIMIT 1",
                    [name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .ok()
                .flatten();
            match elsewhere {
                Some(e) => format!("environment `{e}` has one: `-s {e}/{name}`, or `-e {e}`"),
                None => list,
            }
        }
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
        "SELECT e.key, e.value FROM entries e JOIN secrets s ON s.id = e.secret_id
         WHERE s.env = ?1 AND s.name = ?2 ORDER BY e.key",
    )?;
    let mut rows = stmt.query([env, name.as_str()])?;
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
    if out.is_empty() && !exists(conn, env, name)? {
        return Err(missing(conn, env, name));
    }
    Ok(out)
}

/// Creates `name` in `env` with `entries`; with `replace`, an existing
/// secret of that name is replaced (its creation time kept).
pub fn create_secret(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
    replace: bool,
) -> Result<()> {
    let now = now();
    if exists(conn, env, name)? {
        if !replace {
            let flag = if env == DEFAULT_ENV {
                String::new()
            } else {
                format!(" -e {env}")
            };
            let what = if env == DEFAULT_ENV {
                String::new()
            } else {
                format!(" in environment `{env}`")
            };
            return Err(Error::new(format!("a secret named `{name}` already exists{what}"))
                .hint(format!(
                    "pass --force to replace it, or `vault secret set{flag} {name} KEY=VALUE` to change keys"
                )));
        }
        let id = id_of(conn, env, name)?;
        conn.execute("DELETE FROM entries WHERE secret_id = ?1", [id])?;
        conn.execute(
            "UPDATE secrets SET updated_at = ?1 WHERE id = ?2",
            params![now, id],
        )?;
    } else {
        conn.execute(
            "INSERT INTO secrets (env, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![env, name.as_str(), now],
        )?;
    }
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
    let entries = entries(conn, from, name)?;
    create_secret(conn, to, name, &entries, replace)?;
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

/// Sets keys of an existing secret, adding or overwriting.
pub(crate) fn set(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    entries: &[(EnvKey, SecretValue)],
) -> Result<()> {
    let id = id_of(conn, env, name)?;
    put_entries(conn, id, entries)?;
    touch(conn, id)
}

/// Removes keys of an existing secret. Every key must exist, and at least
/// one must remain (a secret without keys is deleted, not emptied).
pub(crate) fn unset(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    keys: &[EnvKey],
) -> Result<()> {
    let id = id_of(conn, env, name)?;
    let present: Vec<String> = {
        let mut stmt = conn.prepare("SELECT key FROM entries WHERE secret_id = ?1")?;
        stmt.query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    for k in keys {
        if !present.iter().any(|p| p == k.as_str()) {
            let mut e = Error::new(format!("secret `{name}` has no key `{k}`"));
            if let Some(c) = crate::names::closest(k.as_str(), present.iter().map(String::as_str)) {
                e = e.hint(format!(
                    "did you mean `{c}`? `vault secret show {name}` lists its keys"
                ));
            } else {
                e = e.hint(format!("`vault secret show {name}` lists its keys"));
            }
            return Err(e);
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
    let mut stmt = conn.prepare("DELETE FROM entries WHERE secret_id = ?1 AND key = ?2")?;
    for k in keys {
        stmt.execute(params![id, k.as_str()])?;
    }
    touch(conn, id)
}

fn touch(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE secrets SET updated_at = ?1 WHERE id = ?2",
        params![now(), id],
    )?;
    Ok(())
}

pub(crate) fn rename(
    conn: &Connection,
    env: &str,
    old: &SecretName,
    new: &SecretName,
) -> Result<()> {
    let id = id_of(conn, env, old)?;
    if old != new && exists(conn, env, new)? {
        return Err(
            Error::new(format!("a secret named `{new}` already exists")).hint(format!(
                "delete it first with `vault secret delete {new}`, or pick another name"
            )),
        );
    }
    conn.execute(
        "UPDATE secrets SET name = ?1, updated_at = ?2 WHERE id = ?3",
        params![new.as_str(), now(), id],
    )?;
    Ok(())
}

/// Deletes a secret and, through the foreign key, its entries.
pub fn delete(conn: &Connection, env: &str, name: &SecretName) -> Result<()> {
    let id = id_of(conn, env, name)?;
    conn.execute("DELETE FROM secrets WHERE id = ?1", [id])?;
    Ok(())
}

pub fn recipients(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT recipient FROM recipients ORDER BY rowid")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub struct RecipientInfo {
    pub recipient: String,
    pub added_at: String,
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

    /// Commands that only read load the database read-only (vault.rs,
    /// `read_only_image`), where `migrate` cannot write: an older vault is
    /// migrated in a writable copy there (`vault::tests` covers it).
    #[test]
    fn read_only_loads_migrate_a_copy() {
        assert_eq!(SCHEMA_VERSION, 2);
    }

    fn v1() -> Connection {
        create_v1(&[])
    }

    #[test]
    fn v1_secrets_land_in_main() {
        let mut conn = v1();
        prepare(&mut conn, "vault.age").unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let l = list(&conn, None).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].env.as_str(), l[0].name.as_str(), l[0].keys),
            ("main", "db", 2)
        );
        assert_eq!(l[0].created_at, "2025-01-01T00:00:00Z");
        let e = entries(&conn, "main", &name("db")).unwrap();
        assert_eq!(e[0].1.expose(), "pw");
        // the foreign key still points at `secrets`, and still cascades
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'entries'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("REFERENCES secrets(id)"), "{sql}");
        delete(&conn, "main", &name("db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // a fresh vault and a migrated one have the same schema
        let fresh = create(&[]).unwrap();
        let schema = |c: &Connection| -> Vec<(String, Option<String>)> {
            let mut st = c
                .prepare("SELECT name, sql FROM sqlite_schema ORDER BY name")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(schema(&conn), schema(&fresh));
    }

    #[test]
    fn environments_hold_names_of_their_own() {
        let conn = create(&[]).unwrap();
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
        let conn = create(&["age1x".into()]).unwrap();
        create_secret(
            &conn,
            "main",
            &name("db"),
            &[kv("B", "2"), kv("A", "1")],
            false,
        )
        .unwrap();
        create_secret(&conn, "main", &name("api"), &[kv("K", "v")], false).unwrap();
        let l = list(&conn, Some("main")).unwrap();
        assert_eq!(
            l.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["api", "db"]
        );
        assert_eq!(l[1].keys, 2);
        let e = entries(&conn, "main", &name("db")).unwrap();
        assert_eq!(e[0].0.as_str(), "A");
        assert_eq!(e[1].1.expose(), "2");
        assert_eq!(recipients(&conn).unwrap(), ["age1x"]);
    }

    #[test]
    fn duplicate_needs_replace() {
        let conn = create(&[]).unwrap();
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
        let conn = create(&[]).unwrap();
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
        let conn = create(&[]).unwrap();
        create_secret(&conn, "main", &name("db-prod"), &[kv("A", "1")], false).unwrap();
        let err = entries(&conn, "main", &name("db-prd")).unwrap_err();
        assert!(err.hint_text().unwrap().contains("db-prod"));
    }

    #[test]
    fn serialize_round_trip_and_checks() {
        let mut conn = create(&["age1x".into()]).unwrap();
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
        let mut conn = create(&[]).unwrap();
        conn.pragma_update(None, "user_version", -156).unwrap();
        let err = prepare(&mut conn, "vault.age").unwrap_err();
        assert!(err.message().contains("not a vault database"), "{err:?}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = create(&[]).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = prepare(&mut conn, "vault.age").unwrap_err();
        assert!(err.message().contains("newer"));
    }

    #[test]
    fn deleted_values_leave_no_bytes() {
        let mut conn = create(&[]).unwrap();
        let canary = "CANARY-7f3a9c-deleted-value";
        create_secret(&conn, "main", &name("gone"), &[kv("K", canary)], false).unwrap();
        create_secret(&conn, "main", &name("kept"), &[kv("K", "x")], false).unwrap();
        delete(&conn, "main", &name("gone")).unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
        assert!(!found, "secure_delete must wipe the deleted value");
    }
}
