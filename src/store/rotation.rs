//! Rotation marks (DESIGN v2 "Git", "Removing a member"): when a member is
//! removed, every secret is marked `rotate_since` that moment, since they
//! could read its values and git history keeps the old files. A change of
//! an existing value clears the mark (`history::finish` calls
//! `clear_if_changed`); `vault secret rotated NAME` clears it by hand.
//!
//! What clears a mark, and what does not:
//! - a new value for a key the secret had before (`set`, `import` or
//!   `create --force` over it, `edit`, `generate`, `rollback`): cleared;
//! - adding a key, renaming, describing: not cleared (the old values are
//!   all still there);
//! - removing a key: not cleared either. The keys that remain hold values
//!   the removed member could read; removing one of them rotates nothing.
//! - `secret copy` carries the source's mark to the copy (the same values,
//!   so the same exposure), keeping the earlier of two marks.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SecretName, check_time, id_of, now};
use crate::error::{Error, Result};

/// Marks every secret of every environment that has no mark yet (an
/// existing mark is earlier, and stays). Returns how many secrets are
/// marked now, in all.
pub(crate) fn mark_all(conn: &Connection) -> Result<usize> {
    conn.execute(
        "UPDATE secrets SET rotate_since = ?1 WHERE rotate_since IS NULL",
        [now()],
    )?;
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM secrets WHERE rotate_since IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The mark of `name` in `env`, if it has one (an error if there is no
/// such secret).
pub(crate) fn mark(conn: &Connection, env: &str, name: &SecretName) -> Result<Option<String>> {
    let id = id_of(conn, env, name)?;
    let since: Option<String> = conn
        .query_row(
            "SELECT rotate_since FROM secrets WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    since.map(checked).transpose()
}

/// Clears the mark of `name` in `env` by hand (`vault secret rotated`):
/// not a new version, since no value changes. Returns whether it had one.
pub(crate) fn clear(conn: &Connection, env: &str, name: &SecretName) -> Result<bool> {
    let id = id_of(conn, env, name)?;
    let n = conn.execute(
        "UPDATE secrets SET rotate_since = NULL WHERE id = ?1 AND rotate_since IS NOT NULL",
        [id],
    )?;
    Ok(n == 1)
}

/// Every marked secret as `(env, name, since)`, sorted by environment and
/// name, each validated (they are printed).
pub(crate) fn marks(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT env, name, rotate_since FROM secrets
         WHERE rotate_since IS NOT NULL ORDER BY env, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = vec![];
    for row in rows {
        let (env, name, since) = row.map_err(|_| damaged())?;
        if SecretName::parse(&env).is_err() || SecretName::parse(&name).is_err() {
            return Err(damaged());
        }
        out.push((env, name, checked(since)?));
    }
    Ok(out)
}

/// After a change of secret `id` from entries `before` to `after` (JSON
/// objects `{KEY: value}`, as `history` keeps them): a key present in both
/// with a different value is a rotation, which clears the mark.
pub(super) fn clear_if_changed(
    conn: &Connection,
    id: i64,
    before: &str,
    after: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE secrets SET rotate_since = NULL
         WHERE id = ?1 AND rotate_since IS NOT NULL AND EXISTS (
             SELECT 1 FROM json_each(?2) b JOIN json_each(?3) a ON a.key = b.key
             WHERE a.value IS NOT b.value)",
        params![id, before, after],
    )?;
    Ok(())
}

/// `secret copy`: the copy in `to` gets the mark of the original in
/// `from`, unless it has an earlier one.
pub(super) fn carry(conn: &Connection, from: &str, to: &str, name: &SecretName) -> Result<()> {
    let Some(since) = mark(conn, from, name)? else {
        return Ok(());
    };
    conn.execute(
        "UPDATE secrets SET rotate_since = ?1
         WHERE env = ?2 AND name = ?3 AND (rotate_since IS NULL OR rotate_since > ?1)",
        params![since, to, name.as_str()],
    )?;
    Ok(())
}

fn checked(since: String) -> Result<String> {
    check_time(&since).map_err(|()| damaged())?;
    Ok(since)
}

fn damaged() -> Error {
    Error::new("the vault lists a secret with an invalid rotation mark")
        .hint("restore it from a backup or from version control")
}

#[cfg(test)]
mod tests {
    use super::super::{create, create_secret, replace, set, set_author, unset};
    use super::*;
    use crate::names::{EnvKey, SecretValue};

    fn kv(k: &str, v: &str) -> (EnvKey, SecretValue) {
        let k = EnvKey::parse(k).unwrap();
        let v = SecretValue::new(&k, zeroize::Zeroizing::new(v.to_string())).unwrap();
        (k, v)
    }

    fn db() -> Connection {
        let conn = create(&[]).unwrap();
        set_author(&conn, "age1writer").unwrap();
        conn
    }

    fn name(n: &str) -> SecretName {
        SecretName::parse(n).unwrap()
    }

    #[test]
    fn a_changed_value_clears_the_mark_and_a_new_key_or_removal_does_not() {
        let conn = db();
        let db_ = name("db");
        create_secret(&conn, "main", &db_, &[kv("A", "1"), kv("B", "2")], false).unwrap();
        create_secret(&conn, "prod", &db_, &[kv("A", "1")], false).unwrap();
        assert_eq!(mark_all(&conn).unwrap(), 2);
        let first = mark(&conn, "main", &db_).unwrap().unwrap();
        // A later removal keeps the earlier mark.
        conn.execute(
            "UPDATE secrets SET rotate_since = '2020-01-01T00:00:00Z'",
            [],
        )
        .unwrap();
        assert_eq!(mark_all(&conn).unwrap(), 2);
        assert_eq!(
            mark(&conn, "main", &db_).unwrap().as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert!(first.ends_with('Z'));
        set(&conn, "main", &db_, &[kv("C", "3")]).unwrap();
        assert!(mark(&conn, "main", &db_).unwrap().is_some(), "a new key");
        set(&conn, "main", &db_, &[kv("A", "1")]).unwrap();
        assert!(
            mark(&conn, "main", &db_).unwrap().is_some(),
            "the same value"
        );
        unset(&conn, "main", &db_, &[EnvKey::parse("C").unwrap()]).unwrap();
        assert!(mark(&conn, "main", &db_).unwrap().is_some(), "a removal");
        super::super::rename(&conn, "main", &db_, &name("db2")).unwrap();
        let db2 = name("db2");
        assert!(mark(&conn, "main", &db2).unwrap().is_some(), "a rename");
        replace(&conn, "main", &db2, &[kv("A", "1"), kv("B", "new")]).unwrap();
        assert!(mark(&conn, "main", &db2).unwrap().is_none(), "a new value");
        // The other environment's secret of the same name keeps its mark.
        assert!(mark(&conn, "prod", &db_).unwrap().is_some());
        assert_eq!(marks(&conn).unwrap().len(), 1);
        assert!(clear(&conn, "prod", &db_).unwrap());
        assert!(!clear(&conn, "prod", &db_).unwrap());
        assert!(marks(&conn).unwrap().is_empty());
    }

    #[test]
    fn a_copy_carries_the_mark_and_a_forced_create_clears_it() {
        let conn = db();
        let db_ = name("db");
        create_secret(&conn, "main", &db_, &[kv("A", "1")], false).unwrap();
        mark_all(&conn).unwrap();
        super::super::copy(&conn, "main", &db_, "prod", false).unwrap();
        assert!(mark(&conn, "prod", &db_).unwrap().is_some());
        create_secret(&conn, "main", &db_, &[kv("A", "2")], true).unwrap();
        assert!(mark(&conn, "main", &db_).unwrap().is_none());
    }

    #[test]
    fn a_forged_mark_is_damage_not_printed() {
        let conn = db();
        create_secret(&conn, "main", &name("db"), &[kv("A", "1")], false).unwrap();
        conn.execute("UPDATE secrets SET rotate_since = 'soon\x1b[2J'", [])
            .unwrap();
        assert!(marks(&conn).is_err());
        assert!(mark(&conn, "main", &name("db")).is_err());
    }
}
