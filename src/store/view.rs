//! Whole-vault listings for `vault git show` (DESIGN v2 "Git"): every
//! entry of every environment, and the unresolved conflicts by name. The
//! caller has run `validate` on the database; rows are checked again as
//! they are read all the same, since they are printed.

use rusqlite::Connection;
use zeroize::Zeroizing;

use super::SecretName;
use crate::error::{Error, Result};
use crate::names::{EnvKey, SecretValue};

/// One entry: environment, secret, key and value.
pub(crate) struct Entry {
    pub(crate) env: String,
    pub(crate) name: String,
    pub(crate) key: EnvKey,
    pub(crate) value: SecretValue,
}

/// Every entry, sorted by environment, secret and key (bytewise, as
/// SQLite's BINARY collation and Rust's `str` order both sort).
pub(crate) fn every_entry(conn: &Connection) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT s.env, s.name, e.key, e.value FROM entries e JOIN secrets s ON s.id = e.secret_id
         ORDER BY s.env, s.name, e.key",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        let (Ok(env), Ok(name), Ok(key), Ok(value)) = (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3).map(Zeroizing::new),
        ) else {
            return Err(damaged());
        };
        if SecretName::parse(&env).is_err() || SecretName::parse(&name).is_err() {
            return Err(damaged());
        }
        let key = EnvKey::parse(&key).map_err(|_| damaged())?;
        let value = SecretValue::new(&key, value).map_err(|_| damaged())?;
        out.push(Entry {
            env,
            name,
            key,
            value,
        });
    }
    Ok(out)
}

/// The unresolved conflicts as `(env, secret, key)`, `None` for a whole
/// secret; sorted, without their values.
pub(crate) fn conflict_names(conn: &Connection) -> Result<Vec<(String, String, Option<String>)>> {
    let mut stmt =
        conn.prepare("SELECT DISTINCT env, secret, key FROM conflicts ORDER BY env, secret, key")?;
    let mut rows = stmt.query([])?;
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        let (Ok(env), Ok(secret), Ok(key)) = (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, Option<String>>(2),
        ) else {
            return Err(damaged());
        };
        let ok = SecretName::parse(&env).is_ok()
            && SecretName::parse(&secret).is_ok()
            && key.as_deref().is_none_or(|k| EnvKey::parse(k).is_ok());
        if !ok {
            return Err(damaged());
        }
        out.push((env, secret, key));
    }
    Ok(out)
}

fn damaged() -> Error {
    Error::new("the vault holds a row that is not valid")
        .hint("restore it from a backup or from version control")
}
