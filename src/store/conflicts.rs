//! Unresolved merge results (DESIGN v2 "Git"): the `conflicts` table that
//! `vault git merge` fills, read back (validated, as every row), resolved
//! by taking a side, and checked by every command that hands a secret's
//! values to a process (`run`, `shell`, `export`, `render`, `redact`,
//! `check`: `usable_entries`).
//!
//! A row is one key (`key` set) or a whole secret (`key` NULL: deleted on
//! one side, changed on the other); a NULL value is "absent on that
//! side"; a whole secret's values are `{KEY: value}` objects, as in
//! `history.entries`.

use rusqlite::{Connection, params};
use zeroize::Zeroizing;

use super::{
    SecretName, create_secret, delete, entries, exists, history::parse_entries, replace, set,
};
use crate::error::{Error, Result};
use crate::names::{EnvKey, SecretValue};

/// Which side of a conflict to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Base,
    Ours,
    Theirs,
}

/// One unresolved conflict (`Debug` shows no value).
pub(crate) struct Conflict {
    pub(crate) env: String,
    pub(crate) secret: SecretName,
    pub(crate) key: Option<EnvKey>,
    pub(crate) base: Option<Zeroizing<String>>,
    pub(crate) ours: Option<Zeroizing<String>>,
    pub(crate) theirs: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conflict")
            .field("env", &self.env)
            .field("secret", &self.secret)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Conflict {
    pub(crate) fn side(&self, side: Side) -> Option<&str> {
        match side {
            Side::Base => self.base.as_deref().map(String::as_str),
            Side::Ours => self.ours.as_deref().map(String::as_str),
            Side::Theirs => self.theirs.as_deref().map(String::as_str),
        }
    }

    /// `ENV/NAME` and the key, as messages name a conflict.
    pub(crate) fn label(&self) -> String {
        match &self.key {
            Some(k) => format!("{}/{} {k}", self.env, self.secret),
            None => format!("{}/{}", self.env, self.secret),
        }
    }
}

fn damaged() -> Error {
    Error::new("the vault holds an invalid merge conflict row")
        .hint("restore it from a backup or from version control; `vault doctor` shows more")
}

/// Every unresolved conflict, sorted by environment, secret and key (the
/// whole secret first), each row validated as it is read.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Conflict>> {
    let mut stmt = conn.prepare(
        "SELECT env, secret, key, base, ours, theirs FROM conflicts
         ORDER BY env, secret, key IS NOT NULL, key",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> Result<Option<Zeroizing<String>>> {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Ok(None),
                rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                    .map(|t| Some(Zeroizing::new(t.to_owned())))
                    .map_err(|_| damaged()),
                _ => Err(damaged()),
            }
        };
        let env = text(0)?.ok_or_else(damaged)?;
        SecretName::parse(&env).map_err(|_| damaged())?;
        let secret = SecretName::parse(&text(1)?.ok_or_else(damaged)?).map_err(|_| damaged())?;
        let key = match text(2)? {
            Some(k) => Some(EnvKey::parse(&k).map_err(|_| damaged())?),
            None => None,
        };
        let (base, ours, theirs) = (text(3)?, text(4)?, text(5)?);
        for v in [&base, &ours, &theirs].into_iter().flatten() {
            let ok = match &key {
                Some(k) => SecretValue::new(k, v.clone()).is_ok(),
                None => parse_entries(v).is_some(),
            };
            if !ok {
                return Err(damaged());
            }
        }
        out.push(Conflict {
            env: env.to_string(),
            secret,
            key,
            base,
            ours,
            theirs,
        });
    }
    Ok(out)
}

/// Records `c` (what `vault git merge` leaves for `resolve`).
pub(crate) fn insert(conn: &Connection, c: &Conflict) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO conflicts (env, secret, key, base, ours, theirs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.env,
        c.secret.as_str(),
        c.key.as_ref().map(EnvKey::as_str),
        c.side(Side::Base),
        c.side(Side::Ours),
        c.side(Side::Theirs),
    ])?;
    Ok(())
}

/// The keys of `name` in `env` with an unresolved conflict (`None`: the
/// whole secret). One indexed look-up in a table that is almost always
/// empty: this is on `run`'s path.
pub(crate) fn of_secret(conn: &Connection, env: &str, name: &SecretName) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key FROM conflicts WHERE env = ?1 AND secret = ?2 ORDER BY key IS NOT NULL, key",
    )?;
    let rows = stmt.query_map([env, name.as_str()], |r| r.get::<_, Option<String>>(0))?;
    let mut out = vec![];
    for key in rows {
        let key = key.map_err(|_| damaged())?;
        out.push(match key {
            Some(k) => EnvKey::parse(&k).map_err(|_| damaged())?.to_string(),
            None => "the whole secret".to_string(),
        });
    }
    Ok(out)
}

/// The entries of a secret that is about to be handed to a process:
/// refused while a merge left a conflict in it (its values are one
/// branch's, not a merged result), naming the keys, never a value.
pub(crate) fn usable_entries(
    conn: &Connection,
    env: &str,
    name: &SecretName,
) -> Result<Vec<(EnvKey, SecretValue)>> {
    unconflicted(conn, env, name, "it is not used until resolved")?;
    entries(conn, env, name)
}

/// Refuses a secret with an unresolved conflict: `why` says what waits.
/// Also for `rename` and `copy`, which would carry the unresolved values
/// away from the conflict that holds them back.
pub(crate) fn unconflicted(
    conn: &Connection,
    env: &str,
    name: &SecretName,
    why: &str,
) -> Result<()> {
    let keys = of_secret(conn, env, name)?;
    if keys.is_empty() {
        return Ok(());
    }
    let env_flag = if env == super::DEFAULT_ENV {
        String::new()
    } else {
        format!("{env}/")
    };
    Err(Error::new(format!(
        "secret `{name}` has an unresolved merge conflict ({}): {why}",
        keys.join(", ")
    ))
    .hint(format!(
        "`vault conflicts list` shows it; `vault conflicts resolve {env_flag}{name} --take ours|theirs|base` settles it"
    )))
}

/// Resolves `c` by taking `side`: the key (or the whole secret) becomes
/// exactly as that side has it, absent included, as a change of the
/// secret (a new version), and the conflict row goes.
pub(crate) fn resolve(conn: &Connection, c: &Conflict, side: Side) -> Result<()> {
    let (env, name) = (c.env.as_str(), &c.secret);
    let value = c.side(side);
    match (&c.key, value) {
        (Some(key), Some(v)) => {
            let pair = vec![(
                key.clone(),
                SecretValue::new(key, Zeroizing::new(v.to_string()))?,
            )];
            if exists(conn, env, name)? {
                set(conn, env, name, &pair)?;
            } else {
                create_secret(conn, env, name, &pair, false)?;
            }
        }
        (Some(key), None) => {
            if exists(conn, env, name)? {
                let mut left = entries(conn, env, name)?;
                if left.iter().any(|(k, _)| k == key) {
                    left.retain(|(k, _)| k != key);
                    // A secret has a key: without its last one it is
                    // absent, as on that side (both branches created it,
                    // say, and BASE had none), unless another of its keys
                    // still waits for its own resolution.
                    let others = of_secret(conn, env, name)?.len() > 1;
                    if left.is_empty() && others {
                        return Err(Error::new(format!(
                            "taking that side would leave `{name}` with no keys while its other conflicts wait"
                        ))
                        .hint(format!(
                            "resolve the other keys of `{name}` first, or take a side for the whole secret"
                        )));
                    }
                    if left.is_empty() {
                        delete(conn, env, name)?;
                    } else {
                        replace(conn, env, name, &left)?;
                    }
                }
            }
        }
        (None, Some(json)) => {
            let pairs = parse_entries(json).ok_or_else(damaged)?;
            create_secret(conn, env, name, &pairs, true)?;
        }
        (None, None) => {
            if exists(conn, env, name)? {
                delete(conn, env, name)?;
            }
        }
    }
    conn.execute(
        "DELETE FROM conflicts WHERE env = ?1 AND secret = ?2 AND key IS ?3",
        params![env, name.as_str(), c.key.as_ref().map(EnvKey::as_str)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md invariant 6: `Debug` of a secret-holding type is redacted.
    /// A `Conflict` holds up to three values of a key (base, ours,
    /// theirs); `{:?}` of one (a log line, an `unwrap` on a `Result` that
    /// carries it, `dbg!`) names the secret and key and shows none of them,
    /// in either shape (one key, or a whole secret's `{KEY: value}` JSON).
    /// (zeroize 1.9's `Zeroizing` prints no content either; what this
    /// catches is a `Debug` that reads a side through `side()`, or a
    /// field that stops being `Zeroizing`.)
    #[test]
    fn debug_shows_no_value() {
        let one_key = Conflict {
            env: "main".into(),
            secret: SecretName::parse("db").unwrap(),
            key: Some(EnvKey::parse("PGPASSWORD").unwrap()),
            base: Some(Zeroizing::new("base-value-7f3a".into())),
            ours: Some(Zeroizing::new("ours-value-91c2".into())),
            theirs: Some(Zeroizing::new("theirs-value-04be".into())),
        };
        let whole = Conflict {
            env: "prod".into(),
            secret: SecretName::parse("api").unwrap(),
            key: None,
            base: None,
            ours: Some(Zeroizing::new(r#"{"TOKEN":"ours-json-5d21"}"#.into())),
            theirs: None,
        };
        for (c, values) in [
            (
                &one_key,
                &["base-value-7f3a", "ours-value-91c2", "theirs-value-04be"][..],
            ),
            (&whole, &["ours-json-5d21", "TOKEN"][..]),
        ] {
            for shown in [format!("{c:?}"), format!("{c:#?}")] {
                for v in values {
                    assert!(!shown.contains(v), "{shown} shows {v}");
                }
                assert!(shown.contains(c.secret.as_str()), "{shown}");
                assert!(shown.contains(&c.env), "{shown}");
            }
        }
        assert!(format!("{one_key:?}").contains("PGPASSWORD"));
    }
}
