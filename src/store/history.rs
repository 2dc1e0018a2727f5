//! Earlier versions of secrets (DESIGN v2 "History"): every change of a
//! secret moves its previous version into `history`, with the time it was
//! made and by whom, and keeps the ten latest; reading one back; what
//! changed between two versions.
//!
//! A version is the secret's name and entries (`{KEY: value}` as JSON, the
//! way SQLite's `json_group_object` writes it). Descriptions are notes about
//! keys and are not versioned. `run` never reads this table: its query is
//! on `entries` alone, so history costs it only the bytes it adds to the
//! file (BENCHMARKS.md).

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use super::{SecretName, exists, id_of, missing, now};
use crate::error::{Error, Result};
use crate::names::{EnvKey, SecretValue};

/// Earlier versions kept besides the current one; an older one is deleted
/// (and, with `secure_delete`, zeroed).
pub(crate) const KEPT: i64 = 10;

/// Records who writes in this connection, for `changed_by`: the writer's
/// recipient, set by `vault.rs` before every write. It lives in a TEMP
/// table, which is in the connection's temp schema and so never part of
/// the serialized database.
pub fn set_author(conn: &Connection, author: &str) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS vault_writer (author TEXT NOT NULL);
         DELETE FROM temp.vault_writer;",
    )?;
    conn.execute(
        "INSERT INTO temp.vault_writer (author) VALUES (?1)",
        [author],
    )?;
    Ok(())
}

/// The writer recorded by `set_author`. A change without one is a bug in
/// `vault`, not something a user did: refused rather than recorded as
/// nobody's.
pub(super) fn author(conn: &Connection) -> Result<String> {
    let found: Option<String> = conn
        .query_row("SELECT author FROM temp.vault_writer", [], |r| r.get(0))
        .optional()
        .unwrap_or(None);
    found.ok_or_else(|| Error::new("internal error: a change of the vault without a writer"))
}

/// A secret as it was before a change began.
pub(super) struct Before {
    id: i64,
    version: i64,
    name: String,
    updated_at: String,
    updated_by: String,
    entries: Zeroizing<String>,
}

/// The name and entries of secret `id`, entries as a JSON object sorted by
/// key.
fn snapshot(conn: &Connection, id: i64) -> Result<(String, Zeroizing<String>)> {
    let (name, entries): (String, String) = conn.query_row(
        "SELECT s.name,
                (SELECT json_group_object(e.key, e.value ORDER BY e.key)
                 FROM entries e WHERE e.secret_id = s.id)
         FROM secrets s WHERE s.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((name, Zeroizing::new(entries)))
}

/// Remembers secret `id` as it is, before a change.
pub(super) fn begin(conn: &Connection, id: i64) -> Result<Before> {
    let (version, updated_at, updated_by) = conn.query_row(
        "SELECT version, updated_at, updated_by FROM secrets WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (name, entries) = snapshot(conn, id)?;
    if entries.as_str() == "{}" {
        // Not a version `history` could hold (nor one vault makes): the
        // writer reports the damage (`Error::data_fault`).
        return Err(Error::new(format!("secret `{name}` has no keys")).data_fault());
    }
    Ok(Before {
        id,
        version,
        name,
        updated_at,
        updated_by,
        entries,
    })
}

/// After a change: if the name or an entry differs from `before`, the old
/// version goes into `history`, the secret gets the next version number,
/// the time and the writer, and versions older than `KEPT` are deleted.
/// Returns whether there was a change (none means no new version).
pub(super) fn finish(conn: &Connection, before: Before) -> Result<bool> {
    let (name, entries) = snapshot(conn, before.id)?;
    if name == before.name && entries == before.entries {
        return Ok(false);
    }
    super::rotation::clear_if_changed(conn, before.id, &before.entries, &entries)?;
    conn.execute(
        "INSERT INTO history (secret_id, version, name, changed_at, changed_by, entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            before.id,
            before.version,
            before.name,
            before.updated_at,
            before.updated_by,
            before.entries.as_str()
        ],
    )?;
    let version = before.version + 1;
    conn.execute(
        "UPDATE secrets SET version = ?1, updated_at = ?2, updated_by = ?3 WHERE id = ?4",
        params![version, now(), author(conn)?, before.id],
    )?;
    conn.execute(
        "DELETE FROM history WHERE secret_id = ?1 AND version < ?2",
        params![before.id, version - KEPT],
    )?;
    Ok(true)
}

/// One version of a secret (`Debug` masks its values).
#[derive(Debug)]
pub(crate) struct Version {
    pub(crate) number: i64,
    /// The secret's name in that version (a rename makes a version).
    pub(crate) name: String,
    /// When this version was made, RFC 3339 UTC.
    pub(crate) made_at: String,
    /// The recipient of whoever made it; empty when unknown (made before
    /// the vault kept history).
    pub(crate) made_by: String,
    pub(crate) entries: Vec<(EnvKey, SecretValue)>,
    pub(crate) current: bool,
}

/// Every kept version of `name`, the current one first, then older ones.
pub(crate) fn versions(conn: &Connection, env: &str, name: &SecretName) -> Result<Vec<Version>> {
    let id = id_of(conn, env, name)?;
    let mut out = vec![current(conn, env, name, id)?];
    let mut stmt = conn.prepare(
        "SELECT version, name, changed_at, changed_by, entries FROM history
         WHERE secret_id = ?1 ORDER BY version DESC",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        out.push(from_row(name, row)?);
    }
    Ok(out)
}

/// Version `number` of `name`, current or kept; an error naming the kept
/// range otherwise.
pub(crate) fn version(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    number: i64,
) -> Result<Version> {
    let id = id_of(conn, env, name)?;
    let cur = current(conn, env, name, id)?;
    if number == cur.number {
        return Ok(cur);
    }
    let found = conn
        .query_row(
            "SELECT version, name, changed_at, changed_by, entries FROM history
             WHERE secret_id = ?1 AND version = ?2",
            params![id, number],
            |row| Ok(from_row(name, row)),
        )
        .optional()?;
    match found {
        Some(v) => v,
        None => {
            let oldest: i64 = conn.query_row(
                "SELECT coalesce(min(version), ?2) FROM history WHERE secret_id = ?1",
                params![id, cur.number],
                |r| r.get(0),
            )?;
            let kept = if oldest == cur.number {
                format!("only version {oldest}, the current one")
            } else {
                format!("versions {oldest} to {}", cur.number)
            };
            Err(
                Error::new(format!("secret `{name}` has no version {number}")).hint(format!(
                    "it keeps {kept}; `vault secret history {name}` lists them"
                )),
            )
        }
    }
}

fn current(conn: &Connection, env: &str, name: &SecretName, id: i64) -> Result<Version> {
    let (number, made_at, made_by): (i64, String, String) = conn.query_row(
        "SELECT version, updated_at, updated_by FROM secrets WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Version {
        number,
        name: name.to_string(),
        made_at,
        made_by,
        entries: super::entries(conn, env, name)?,
        current: true,
    })
}

/// A `history` row, checked as if it had been typed: a row that breaks the
/// rules is a damaged vault, never passed on.
fn from_row(secret: &SecretName, row: &rusqlite::Row<'_>) -> Result<Version> {
    let number: i64 = row.get(0)?;
    let name: String = row.get(1)?;
    let damaged = || {
        Error::new(format!(
            "secret `{secret}`: version {number} in its history is damaged"
        ))
        .hint("the vault was changed by hand; restore it from a backup")
    };
    SecretName::parse(&name).map_err(|_| damaged())?;
    let json = Zeroizing::new(row.get::<_, String>(4)?);
    let entries = parse_entries(&json).ok_or_else(damaged)?;
    Ok(Version {
        number,
        name,
        made_at: row.get(2)?,
        made_by: row.get(3)?,
        entries,
        current: false,
    })
}

/// `{KEY: value}` with every key and value valid; `None` otherwise.
pub(super) fn parse_entries(json: &str) -> Option<Vec<(EnvKey, SecretValue)>> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).ok()?;
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let serde_json::Value::String(value) = value else {
            return None;
        };
        let value = Zeroizing::new(value);
        let key = EnvKey::parse(&key).ok()?;
        let value = SecretValue::new(&key, value).ok()?;
        out.push((key, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (!out.is_empty()).then_some(out)
}

/// What `rollback` did.
#[derive(Debug)]
pub(crate) struct Rollback {
    /// The version whose entries the secret now has.
    pub(crate) to: i64,
    /// The new current version, `None` when the entries were already those.
    pub(crate) new_version: Option<i64>,
}

/// Makes a new version of `name` whose entries equal version `to` (default:
/// the one before the current). The name stays as it is now: a rename is
/// undone with `rename`.
pub(crate) fn rollback(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    to: Option<i64>,
) -> Result<Rollback> {
    if !exists(conn, env, name)? {
        return Err(missing(conn, env, name));
    }
    let id = id_of(conn, env, name)?;
    let current: i64 = conn.query_row("SELECT version FROM secrets WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    let target = match to {
        Some(n) if n == current => {
            return Err(
                Error::new(format!("version {n} is the current version of `{name}`")).hint(
                    format!("`vault secret history {name}` lists the earlier ones"),
                ),
            );
        }
        Some(n) => n,
        None if current == 1 => {
            return Err(
                Error::new(format!("`{name}` has no earlier version to go back to"))
                    .hint("it was created with its current keys and never changed"),
            );
        }
        None => current - 1,
    };
    let wanted = version(conn, env, name, target)?;
    let changed = super::replace(conn, env, name, &wanted.entries)?;
    Ok(Rollback {
        to: target,
        new_version: changed.then_some(current + 1),
    })
}

/// Which keys were added, changed or removed from one version to the next
/// (names only), and a rename.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) added: Vec<String>,
    pub(crate) changed: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) renamed_from: Option<String>,
}

impl Change {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.renamed_from.is_none()
    }

    /// `added A, B; changed C; removed D; renamed from old`, or `no change`.
    pub(crate) fn summary(&self) -> String {
        let mut parts = vec![];
        for (label, keys) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ] {
            if !keys.is_empty() {
                parts.push(format!("{label} {}", keys.join(", ")));
            }
        }
        if let Some(old) = &self.renamed_from {
            parts.push(format!("renamed from {old}"));
        }
        if parts.is_empty() {
            "no change".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// The change from `older` to `newer`; entries in any order.
pub(crate) fn diff(older: &[(EnvKey, SecretValue)], newer: &[(EnvKey, SecretValue)]) -> Change {
    fn find<'a>(list: &'a [(EnvKey, SecretValue)], k: &EnvKey) -> Option<&'a SecretValue> {
        list.iter().find(|(x, _)| x == k).map(|(_, v)| v)
    }
    let mut c = Change::default();
    for (k, v) in newer {
        match find(older, k) {
            None => c.added.push(k.to_string()),
            Some(old) if old != v => c.changed.push(k.to_string()),
            Some(_) => {}
        }
    }
    for (k, _) in older {
        if find(newer, k).is_none() {
            c.removed.push(k.to_string());
        }
    }
    c.added.sort();
    c.changed.sort();
    c.removed.sort();
    c
}

/// The change that made each version of `versions` (newest first, as
/// `versions` returns them) out of the one before it; `None` for version 1
/// and for the oldest kept one, whose predecessor is gone.
pub(crate) fn changes(versions: &[Version]) -> Vec<Option<Change>> {
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let prev = versions.get(i + 1).filter(|p| p.number == v.number - 1)?;
            let mut c = diff(&prev.entries, &v.entries);
            if prev.name != v.name {
                c.renamed_from = Some(prev.name.clone());
            }
            Some(c)
        })
        .collect()
}
