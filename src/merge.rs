//! The three-way merge of a vault (DESIGN v2 "Git"): the pure rules (one
//! value, one secret, the recipients, rotation marks), unit-tested case by
//! case below, and their application to OURS's database in memory, given
//! BASE and THEIRS. Loading, verifying and writing the files is
//! `vault.rs`'s (`load_merge`, `MergeInputs::write`); what is printed is
//! `cmd/merge.rs`'s.
//!
//! Secrets are matched by (environment, name), never by id: ids are
//! assigned per file, and two branches that each create a secret give
//! them the same id. Most secrets of a large vault are the same on all
//! three sides, so OURS and THEIRS are first summarised, on the thread
//! that loaded each, as one keyed hash of every secret's keys and values
//! (`summarize`); BASE's hash of a secret is taken only where OURS and
//! THEIRS differ, and only secrets whose hashes differ are read in full.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    hash::{BuildHasher, Hasher, RandomState},
};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    names::{EnvKey, SecretName},
    store::{self, conflicts::Conflict},
    vault::Role,
};

// ------------------------------------------------------------ the rules

/// Which side a merged value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// OURS's (unchanged on their side, or the same change on both).
    Ours,
    /// THEIRS's (changed only on their side).
    Theirs,
    /// Changed differently on both sides (deleted on one counts).
    Conflict,
}

/// The three-way rule for one value, `None` meaning absent: a change on
/// one side is taken, the same change on both is taken, different
/// changes conflict.
pub(crate) fn pick<T: PartialEq>(base: Option<T>, ours: Option<T>, theirs: Option<T>) -> Pick {
    if ours == theirs || theirs == base {
        Pick::Ours
    } else if ours == base {
        Pick::Theirs
    } else {
        Pick::Conflict
    }
}

/// A secret's keys and values on one side.
pub(crate) type Values<'a> = BTreeMap<&'a str, &'a str>;

/// One key changed differently on both sides (`Debug` shows no value).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyConflict<'a> {
    pub(crate) key: &'a str,
    pub(crate) base: Option<&'a str>,
    pub(crate) ours: Option<&'a str>,
    pub(crate) theirs: Option<&'a str>,
}

impl std::fmt::Debug for KeyConflict<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |v: Option<&str>| if v.is_some() { "set" } else { "absent" };
        f.debug_struct("KeyConflict")
            .field("key", &self.key)
            .field("base", &side(self.base))
            .field("ours", &side(self.ours))
            .field("theirs", &side(self.theirs))
            .finish()
    }
}

/// What the merge makes of one secret (`Debug` shows keys, no value).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SecretMerge<'a> {
    /// OURS as it is (absent included).
    Ours,
    /// THEIRS as it is (absent: deleted).
    Theirs,
    /// Deleted on one side and changed on the other (or a merge that
    /// would leave it with no key): OURS stays, one conflict for the
    /// whole secret.
    Whole,
    /// Both changed it: key by key, `changes` taken from THEIRS (`None`:
    /// remove the key), `conflicts` left as OURS has them.
    Keys {
        changes: Vec<(&'a str, Option<&'a str>)>,
        conflicts: Vec<KeyConflict<'a>>,
    },
}

impl std::fmt::Debug for SecretMerge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretMerge::Ours => f.write_str("Ours"),
            SecretMerge::Theirs => f.write_str("Theirs"),
            SecretMerge::Whole => f.write_str("Whole"),
            SecretMerge::Keys { changes, conflicts } => {
                let changes: Vec<(&str, &str)> = changes
                    .iter()
                    .map(|(k, v)| (*k, if v.is_some() { "set" } else { "removed" }))
                    .collect();
                f.debug_struct("Keys")
                    .field("changes", &changes)
                    .field("conflicts", conflicts)
                    .finish()
            }
        }
    }
}

/// The three-way rule for a secret, then for each of its keys.
pub(crate) fn merge_secret<'a>(
    base: Option<&Values<'a>>,
    ours: Option<&Values<'a>>,
    theirs: Option<&Values<'a>>,
) -> SecretMerge<'a> {
    match pick(base, ours, theirs) {
        Pick::Ours => return SecretMerge::Ours,
        Pick::Theirs => return SecretMerge::Theirs,
        Pick::Conflict => {}
    }
    let (Some(o), Some(t)) = (ours, theirs) else {
        return SecretMerge::Whole;
    };
    let empty = Values::new();
    let b = base.unwrap_or(&empty);
    let keys: BTreeSet<&str> = b.keys().chain(o.keys()).chain(t.keys()).copied().collect();
    let (mut changes, mut conflicts) = (vec![], vec![]);
    let mut left = 0;
    for key in keys {
        let (bv, ov, tv) = (
            b.get(key).copied(),
            o.get(key).copied(),
            t.get(key).copied(),
        );
        match pick(bv, ov, tv) {
            Pick::Ours => left += usize::from(ov.is_some()),
            Pick::Theirs => {
                left += usize::from(tv.is_some());
                changes.push((key, tv));
            }
            Pick::Conflict => {
                left += usize::from(ov.is_some());
                conflicts.push(KeyConflict {
                    key,
                    base: bv,
                    ours: ov,
                    theirs: tv,
                });
            }
        }
    }
    if left == 0 {
        // Each side removed the keys the other kept: a secret has a key.
        return SecretMerge::Whole;
    }
    SecretMerge::Keys { changes, conflicts }
}

/// Whether `side` changed the value of a key `base` has (DESIGN v2
/// "Git": what clears a rotation mark; adding or removing a key does not).
pub(crate) fn changed_a_value(base: Option<&Values>, side: Option<&Values>) -> bool {
    let (Some(b), Some(s)) = (base, side) else {
        return false;
    };
    b.iter().any(|(k, v)| s.get(k).is_some_and(|sv| sv != v))
}

/// A secret's rotation mark after the merge: each side's mark survives
/// unless the other side changed a value of the secret (rotated it), or
/// cleared that very mark (`vault secret rotated`, or its own value
/// change). When both survive, the earlier one: rotation has been due
/// since then.
pub(crate) fn merge_mark<'a>(
    base: Option<&'a str>,
    ours: Option<&'a str>,
    theirs: Option<&'a str>,
    ours_changed: bool,
    theirs_changed: bool,
) -> Option<&'a str> {
    let survives = |mark: Option<&'a str>, other: Option<&'a str>, other_changed: bool| {
        mark.filter(|m| !(other_changed || (base == Some(*m) && other.is_none())))
    };
    let o = survives(ours, theirs, theirs_changed);
    let t = survives(theirs, ours, ours_changed);
    match (o, t) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The merged members: additions from both sides are kept, a removal on
/// either side wins. OURS's order, then THEIRS's additions.
pub(crate) fn merge_recipients(base: &[String], ours: &[String], theirs: &[String]) -> Vec<String> {
    let removed = |r: &String| base.contains(r) && !(ours.contains(r) && theirs.contains(r));
    let mut out: Vec<String> = ours.iter().filter(|r| !removed(r)).cloned().collect();
    for r in theirs {
        if !removed(r) && !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

// ----------------------------------------------------------- summaries

/// One secret of one side, as `summarize` saw it.
#[derive(Debug)]
pub(crate) struct Summary {
    id: i64,
    env: String,
    name: String,
    /// A keyed hash (random key per process) of its keys and values;
    /// BASE's is taken when `apply` needs it (`None` until then).
    digest: Option<u64>,
    version: i64,
    updated_at: String,
    rotate_since: Option<String>,
}

/// Every secret of a side, sorted by environment and name (as bytes, the
/// way SQLite's index orders them), and whether every `entries` row passed
/// `store::check_entry` on the way.
pub(crate) struct Summaries(Vec<Summary>, bool, Vec<Described>);

/// A key's description on one side: (secret id, key, description).
/// Descriptions are kept apart from the digests (a note is not a value:
/// changing one makes no version) and merged key by key on their own
/// (`apply`), so that one changed on a branch is not lost.
type Described = (i64, String, String);

impl Summaries {
    /// Whether every entry row was valid as read.
    pub(crate) fn entries_valid(&self) -> bool {
        self.1
    }
}

/// The summaries of one database: one sequential pass over `entries` in
/// rowid order (no index look-up per row, no value copied), each row's
/// key and value hashed with `hasher` and the hashes of a secret's rows
/// added up (so their order does not matter), then `secrets` in
/// (env, name) order. `hasher` is shared by the three sides, so equal
/// content gives equal digests; its key is random per process, so nobody
/// can make two different secrets collide on purpose.
///
/// OURS's rows also go through the write path's row checks
/// (`store::check_entry`), as they become the result's; THEIRS's rows are
/// only compared (what the merge copies from THEIRS is checked again by
/// the write, `Report::touched`). BASE's entries are not read here at all:
/// a secret whose OURS and THEIRS agree merges to that whatever BASE held
/// (`apply`), so BASE's digest is taken, by the secret's index, only for
/// the few that differ (`base_digest`; for every secret when the merge
/// drops a member, as rotation marks then depend on it); its secrets are
/// listed, with whether each has a key.
pub(crate) fn summarize(conn: &Connection, hasher: &RandomState, role: Role) -> Result<Summaries> {
    if role == Role::Base {
        return listed(conn);
    }
    let check = role == Role::Ours;
    // Secret ids are rowids, dense unless many secrets were deleted: a
    // digest per id in a vector (no hash of each row's id), or in a map
    // when the ids are sparse.
    let (count, max_id): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(max(id), 0) FROM secrets",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut digests = Digests::new(count, max_id);
    let mut valid = true;
    let mut described = vec![];
    {
        let mut stmt = conn.prepare("SELECT secret_id, key, value, description FROM entries")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let (key, value) = (text(r, 1), text(r, 2));
            if check {
                // The write path's own check, made here while the row is
                // at hand (`store::validate_with`).
                valid &= store::check_entry(key, value).is_ok()
                    && match r.get_ref(3) {
                        Ok(rusqlite::types::ValueRef::Null) => true,
                        Ok(rusqlite::types::ValueRef::Text(d)) => {
                            std::str::from_utf8(d).is_ok_and(store::is_description)
                        }
                        _ => false,
                    };
            }
            let (key, value) = (key.unwrap_or_default(), value.unwrap_or_default());
            if let Some(d) = text(r, 3) {
                described.push((
                    id,
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(d).into_owned(),
                ));
            }
            digests.add(id, row_digest(hasher, key, value));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT id, env, name, version, updated_at, rotate_since FROM secrets ORDER BY env, name",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(r) = rows.next()? {
        // A secret has a key: a row without any is no secret (as `full`
        // sees it too).
        let id = r.get(0)?;
        let Some(digest) = digests.get(id) else {
            continue;
        };
        out.push(Summary {
            id,
            digest: Some(digest),
            env: r.get(1)?,
            name: r.get(2)?,
            version: r.get(3)?,
            updated_at: r.get(4)?,
            rotate_since: r.get(5)?,
        });
    }
    // Every row's secret exists (no orphan: `store::validate`'s check).
    valid &= out.len() == digests.len();
    Ok(Summaries(out, valid, described))
}

/// Column `i` of `r` as text, `None` for any other type (which the row
/// checks refuse, and a digest takes as empty).
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Option<&'r [u8]> {
    match r.get_ref(i) {
        Ok(rusqlite::types::ValueRef::Text(t)) => Some(t),
        _ => None,
    }
}

/// One row's share of its secret's digest (the digests of a secret's rows
/// are added up, so that their order does not matter).
fn row_digest(hasher: &RandomState, key: &[u8], value: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_usize(key.len());
    h.write(key);
    h.write_usize(value.len());
    h.write(value);
    h.finish()
}

/// BASE's secrets without their digests: those with a key (a row without
/// any is no secret, as `summarize` and `full` see it), in (env, name)
/// order; one index probe of `entries` each.
fn listed(conn: &Connection) -> Result<Summaries> {
    let mut stmt = conn.prepare(
        "SELECT id, env, name, version, updated_at, rotate_since FROM secrets s
         WHERE EXISTS (SELECT 1 FROM entries e WHERE e.secret_id = s.id)
         ORDER BY env, name",
    )?;
    let out = stmt
        .query_map([], |r| {
            Ok(Summary {
                id: r.get(0)?,
                env: r.get(1)?,
                name: r.get(2)?,
                digest: None,
                version: r.get(3)?,
                updated_at: r.get(4)?,
                rotate_since: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Summaries(out, true, vec![]))
}

/// The digest `summarize` would have given secret `id` of `conn`, from its
/// rows alone (the index on `entries`).
fn base_digest(conn: &Connection, hasher: &RandomState, id: i64) -> Result<u64> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM entries WHERE secret_id = ?1")?;
    let mut rows = stmt.query([id])?;
    let mut digest = 0u64;
    while let Some(r) = rows.next()? {
        let (key, value) = (text(r, 0), text(r, 1));
        digest = digest.wrapping_add(row_digest(
            hasher,
            key.unwrap_or_default(),
            value.unwrap_or_default(),
        ));
    }
    Ok(digest)
}

/// The digest of each secret id seen in `entries`: ids up to `max_id` in
/// a vector (no hash of each row's id) when they are dense, as rowids are
/// unless many secrets were deleted; any other id (sparse ids, or an
/// orphan row's id beyond them) in a map.
struct Digests {
    dense: Vec<Option<u64>>,
    in_dense: usize,
    sparse: std::collections::HashMap<i64, u64>,
}

impl Digests {
    fn new(count: i64, max_id: i64) -> Digests {
        let slots = match usize::try_from(max_id) {
            Ok(max) if max_id <= 4 * count + 1024 => max + 1,
            _ => 0,
        };
        Digests {
            dense: vec![None; slots],
            in_dense: 0,
            sparse: std::collections::HashMap::new(),
        }
    }

    fn add(&mut self, id: i64, digest: u64) {
        match usize::try_from(id).ok().and_then(|i| self.dense.get_mut(i)) {
            Some(Some(d)) => *d = d.wrapping_add(digest),
            Some(slot) => {
                *slot = Some(digest);
                self.in_dense += 1;
            }
            None => {
                let d = self.sparse.entry(id).or_insert(0);
                *d = d.wrapping_add(digest);
            }
        }
    }

    fn get(&self, id: i64) -> Option<u64> {
        match usize::try_from(id).ok().and_then(|i| self.dense.get(i)) {
            Some(d) => *d,
            None => self.sparse.get(&id).copied(),
        }
    }

    /// How many ids have a digest.
    fn len(&self) -> usize {
        self.in_dense + self.sparse.len()
    }
}

// --------------------------------------------------------- application

/// What a merge did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Secrets changed in OURS by the merge (taken from THEIRS, added,
    /// deleted, or merged key by key).
    pub(crate) changed: usize,
    pub(crate) conflicts: Vec<Conflict>,
    pub(crate) added_members: Vec<String>,
    pub(crate) removed_members: Vec<String>,
    /// Secrets marked for rotation because the merge removed a member who
    /// could read them on a branch.
    pub(crate) marked: usize,
    /// OURS's secrets (by id) whose entries the merge wrote: the rows the
    /// write must check again (`store::validate_with`).
    pub(crate) touched: Vec<i64>,
    /// Descriptions of keys taken from THEIRS (changed on their side only).
    pub(crate) descriptions: usize,
    /// `ENV/NAME KEY` whose description both sides changed differently:
    /// OURS's is kept (a note, not a value: no conflict to resolve).
    pub(crate) description_clashes: Vec<String>,
}

/// The description each key of the result gets, by the three-way rule
/// (`pick`), for every key whose description differs between OURS and
/// THEIRS (both summaries carry theirs; BASE's is read for just those):
/// a change on one side is taken; changed differently on both, OURS's
/// stays and the clash is reported. Most vaults describe few keys, and
/// when both sides hold the same descriptions nothing is read at all.
#[allow(clippy::type_complexity)]
fn merge_descriptions(
    base: &Connection,
    ours: &Summaries,
    theirs: &Summaries,
    report: &mut Report,
) -> Result<Vec<((String, String, String), Option<String>)>> {
    let by_key = |s: &Summaries| -> BTreeMap<(String, String, String), String> {
        let names: std::collections::HashMap<i64, (&str, &str)> =
            s.0.iter()
                .map(|x| (x.id, (x.env.as_str(), x.name.as_str())))
                .collect();
        s.2.iter()
            .filter_map(|(id, key, d)| {
                let (env, name) = names.get(id)?;
                Some(((env.to_string(), name.to_string(), key.clone()), d.clone()))
            })
            .collect()
    };
    let (o, t) = (by_key(ours), by_key(theirs));
    if o == t {
        return Ok(vec![]);
    }
    let differ: BTreeSet<&(String, String, String)> = o
        .keys()
        .chain(t.keys())
        .filter(|k| o.get(*k) != t.get(*k))
        .collect();
    let mut out = vec![];
    for k in differ {
        let b: Option<String> = base
            .prepare_cached(
                "SELECT e.description FROM entries e JOIN secrets s ON s.id = e.secret_id
                 WHERE s.env = ?1 AND s.name = ?2 AND e.key = ?3",
            )?
            .query_row([&k.0, &k.1, &k.2], |r| r.get(0))
            .optional()?
            .flatten();
        let (od, td) = (o.get(k).cloned(), t.get(k).cloned());
        let chosen = match pick(b.as_ref(), od.as_ref(), td.as_ref()) {
            Pick::Ours => od,
            Pick::Theirs => {
                report.descriptions += 1;
                td
            }
            Pick::Conflict => {
                report
                    .description_clashes
                    .push(format!("{}/{} {}", k.0, k.1, k.2));
                od
            }
        };
        out.push((k.clone(), chosen));
    }
    Ok(out)
}

/// One side of the merge, as `apply` needs it.
pub(crate) struct Side<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) summaries: &'a Summaries,
    pub(crate) recipients: &'a [String],
}

/// A secret of one side read in full.
struct Full {
    id: i64,
    created_at: String,
    version: i64,
    updated_at: String,
    updated_by: String,
    rotate_since: Option<String>,
    /// key → (value, description)
    entries: BTreeMap<String, (Zeroizing<String>, Option<String>)>,
}

impl Full {
    fn values(&self) -> Values<'_> {
        self.entries
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn full(conn: &Connection, env: &str, name: &str) -> Result<Option<Full>> {
    let row = conn
        .prepare_cached(
            "SELECT id, created_at, version, updated_at, updated_by, rotate_since
             FROM secrets WHERE env = ?1 AND name = ?2",
        )?
        .query_row([env, name], |r| {
            Ok(Full {
                id: r.get(0)?,
                created_at: r.get(1)?,
                version: r.get(2)?,
                updated_at: r.get(3)?,
                updated_by: r.get(4)?,
                rotate_since: r.get(5)?,
                entries: BTreeMap::new(),
            })
        })
        .optional()?;
    let Some(mut f) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, description FROM entries WHERE secret_id = ?1 ORDER BY key",
    )?;
    let mut rows = stmt.query([f.id])?;
    while let Some(r) = rows.next()? {
        f.entries
            .insert(r.get(0)?, (Zeroizing::new(r.get(1)?), r.get(2)?));
    }
    // A secret has a key; a row without any is no secret (as `summarize`,
    // which joins on entries, sees it).
    Ok((!f.entries.is_empty()).then_some(f))
}

/// An earlier version, as `history` keeps it.
#[derive(Clone)]
struct Version {
    number: i64,
    name: String,
    changed_at: String,
    changed_by: String,
    entries: Zeroizing<String>,
}

impl Version {
    fn same(&self, other: &Version) -> bool {
        self.name == other.name
            && self.changed_at == other.changed_at
            && self.changed_by == other.changed_by
            && self.entries == other.entries
    }
}

fn history(conn: &Connection, id: i64) -> Result<Vec<Version>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, name, changed_at, changed_by, entries FROM history
         WHERE secret_id = ?1 ORDER BY version",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(Version {
            number: r.get(0)?,
            name: r.get(1)?,
            changed_at: r.get(2)?,
            changed_by: r.get(3)?,
            entries: Zeroizing::new(r.get(4)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The current version of secret `id` as a history row would keep it.
fn as_version(conn: &Connection, name: &str, f: &Full) -> Result<Version> {
    Ok(Version {
        number: f.version,
        name: name.to_string(),
        changed_at: f.updated_at.clone(),
        changed_by: f.updated_by.clone(),
        entries: entries_json(conn, f.id)?,
    })
}

/// `{KEY: value}` of secret `id`, as `history.entries` and whole-secret
/// conflicts hold it (SQLite writes it, as for history).
fn entries_json(conn: &Connection, id: i64) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        conn.prepare_cached(
            "SELECT json_group_object(key, value ORDER BY key) FROM entries WHERE secret_id = ?1",
        )?
        .query_row([id], |r| r.get(0))?,
    ))
}

/// Replaces the history of OURS's secret `id` by the union of `rows`
/// (duplicates, such as the versions before the branches parted, once),
/// oldest first by time, the newest `KEPT` of them, numbered up to just
/// below `current`. Returns the current version's number (raised if the
/// kept versions need more room below it).
fn rewrite_history(conn: &Connection, id: i64, rows: Vec<Version>, current: i64) -> Result<i64> {
    let mut union: Vec<Version> = vec![];
    for v in rows {
        if !union.iter().any(|u| u.same(&v)) {
            union.push(v);
        }
    }
    union.sort_by(|a, b| {
        a.changed_at
            .cmp(&b.changed_at)
            .then(a.number.cmp(&b.number))
    });
    let kept = store::history::KEPT as usize;
    if union.len() > kept {
        union.drain(..union.len() - kept);
    }
    let n = union.len() as i64;
    let current = current.max(n + 1);
    conn.prepare_cached("DELETE FROM history WHERE secret_id = ?1")?
        .execute([id])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO history (secret_id, version, name, changed_at, changed_by, entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, v) in union.iter().enumerate() {
        stmt.execute(params![
            id,
            current - n + i as i64,
            v.name,
            v.changed_at,
            v.changed_by,
            v.entries.as_str()
        ])?;
    }
    conn.prepare_cached("UPDATE secrets SET version = ?1 WHERE id = ?2")?
        .execute(params![current, id])?;
    Ok(current)
}

fn set_mark(conn: &Connection, id: i64, mark: Option<&str>) -> Result<()> {
    conn.prepare_cached("UPDATE secrets SET rotate_since = ?1 WHERE id = ?2")?
        .execute(params![mark, id])?;
    Ok(())
}

/// Whether `a` and `b` share a key with the same value.
fn overlap(a: Option<&Values>, b: Option<&Values>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|(k, v)| b.get(k) == Some(v)),
        _ => false,
    }
}

/// Merges BASE and THEIRS into OURS's database `ours` (DESIGN v2 "Git"),
/// in one transaction; `author` is the merger's recipient (history's
/// `changed_by` for the versions the merge makes).
pub(crate) fn apply(
    ours: &mut Connection,
    ours_side: (&Summaries, &[String]),
    base: &Side,
    theirs: &Side,
    author: &str,
    hasher: &RandomState,
) -> Result<Report> {
    store::set_author(ours, author)?;
    let tx = ours.transaction()?;
    let conn: &Connection = &tx;
    let mut report = Report::default();
    let now = store::now();
    // Secrets whose merged values share nothing with OURS's (THEIRS's),
    // for rotation marks when the merge removes a member (below).
    let mut fresh_from_ours: HashSet<(String, String)> = HashSet::new();
    let mut fresh_from_theirs: HashSet<(String, String)> = HashSet::new();

    let descriptions = merge_descriptions(base.conn, ours_side.0, theirs.summaries, &mut report)?;
    let merged = merge_recipients(base.recipients, ours_side.1, theirs.recipients);
    let dropped = |side: &[String]| side.iter().any(|r| !merged.contains(r));
    let dropping = dropped(ours_side.1) || dropped(theirs.recipients);
    let (b, o, t) = (&base.summaries.0, &ours_side.0.0, &theirs.summaries.0);
    let (mut i, mut j, mut k) = (0, 0, 0);
    loop {
        let next = [b.get(i), o.get(j), t.get(k)]
            .into_iter()
            .flatten()
            .map(sort_key)
            .min();
        let Some(next) = next else { break };
        let (sb, so, st) = (
            take(b, &mut i, &next),
            take(o, &mut j, &next),
            take(t, &mut k, &next),
        );
        let any = sb.or(so).or(st).expect("one side has it");
        let (env, name) = (any.env.as_str(), any.name.as_str());
        let same_marks = mark(sb) == mark(so) && mark(so) == mark(st);
        // Their branch made versions of its own (even ending where it began).
        let their_history = st.is_some() && meta(st) != meta(sb) && meta(st) != meta(so);
        let (d_o, d_t) = (so.and_then(|s| s.digest), st.and_then(|s| s.digest));
        if d_o == d_t && same_marks && !their_history && !dropping {
            // The same on both branches: that is the result whatever BASE
            // held (unchanged, or the same change on both), and BASE's
            // values are not needed (the two tests below would both skip).
            continue;
        }
        let d_b = match sb {
            Some(s) => Some(match s.digest {
                Some(d) => d,
                None => base_digest(base.conn, hasher, s.id)?,
            }),
            None => None,
        };
        let same_values = d_b == d_o && d_o == d_t;
        if same_values && same_marks && !their_history {
            continue;
        }
        if pick(d_b, d_o, d_t) == Pick::Ours && same_marks && !their_history && !dropping {
            // Changed on our side only: nothing to take.
            continue;
        }
        if same_values {
            // Only marks or history differ: no value to read.
            if let Some(so) = so {
                let id = id_of(conn, env, name)?;
                let m = merge_mark(mark(sb), mark(Some(so)), mark(st), false, false);
                if m != so.rotate_since.as_deref() {
                    set_mark(conn, id, m)?;
                }
                if their_history && let Some(tf) = full(theirs.conn, env, name)? {
                    let mut rows = history(conn, id)?;
                    rows.extend(history(theirs.conn, tf.id)?);
                    rows.push(as_version(theirs.conn, name, &tf)?);
                    let of = full(conn, env, name)?.ok_or_else(gone)?;
                    let mine = as_version(conn, name, &of)?;
                    rows.retain(|v| !v.same(&mine));
                    rewrite_history(conn, id, rows, so.version)?;
                }
            }
            continue;
        }
        let of = if so.is_some() {
            full(conn, env, name)?
        } else {
            None
        };
        let tf = if st.is_some() {
            full(theirs.conn, env, name)?
        } else {
            None
        };
        // BASE's values are OURS's when their digests agree (the common
        // case: changed on their branch only), and only its values are
        // needed then; BASE is read in full otherwise.
        let base_is_ours = sb.is_some() && d_b == d_o;
        let bf = if sb.is_some() && !base_is_ours {
            full(base.conn, env, name)?
        } else {
            None
        };
        let (ov, tv) = (of.as_ref().map(Full::values), tf.as_ref().map(Full::values));
        let bv = if base_is_ours {
            ov.clone()
        } else {
            bf.as_ref().map(Full::values)
        };
        let ours_changed = changed_a_value(bv.as_ref(), ov.as_ref());
        let theirs_changed = changed_a_value(bv.as_ref(), tv.as_ref());
        let m = merge_mark(mark(sb), mark(so), mark(st), ours_changed, theirs_changed);
        let id_key = (env.to_string(), name.to_string());
        let merged = merge_secret(bv.as_ref(), ov.as_ref(), tv.as_ref());
        match merged {
            SecretMerge::Ours => {
                if !overlap(ov.as_ref(), tv.as_ref()) {
                    fresh_from_theirs.insert(id_key);
                }
                if let Some(of) = &of {
                    if m != of.rotate_since.as_deref() {
                        set_mark(conn, of.id, m)?;
                    }
                    if their_history && let Some(tf) = &tf {
                        let mut rows = history(conn, of.id)?;
                        rows.extend(history(theirs.conn, tf.id)?);
                        rows.push(as_version(theirs.conn, name, tf)?);
                        let mine = as_version(conn, name, of)?;
                        rows.retain(|v| !v.same(&mine));
                        rewrite_history(conn, of.id, rows, of.version)?;
                    }
                }
            }
            SecretMerge::Theirs => {
                report.changed += 1;
                fresh_from_theirs.remove(&id_key);
                if !overlap(tv.as_ref(), ov.as_ref()) {
                    fresh_from_ours.insert(id_key);
                }
                match (&of, &tf) {
                    (Some(of), None) => {
                        conn.execute("DELETE FROM secrets WHERE id = ?1", [of.id])?;
                    }
                    (None, Some(tf)) => {
                        report
                            .touched
                            .push(insert_from(conn, theirs.conn, env, name, tf, m)?);
                    }
                    (Some(of), Some(tf)) => {
                        let mut rows = history(conn, of.id)?;
                        rows.push(as_version(conn, name, of)?);
                        rows.extend(history(theirs.conn, tf.id)?);
                        conn.prepare_cached("DELETE FROM entries WHERE secret_id = ?1")?
                            .execute([of.id])?;
                        put_entries(conn, of.id, &tf.entries)?;
                        report.touched.push(of.id);
                        conn.prepare_cached(
                            "UPDATE secrets SET updated_at = ?1, updated_by = ?2, rotate_since = ?3
                             WHERE id = ?4",
                        )?
                        .execute(params![
                            tf.updated_at,
                            tf.updated_by,
                            m,
                            of.id
                        ])?;
                        let theirs_now = as_version(theirs.conn, name, tf)?;
                        rows.retain(|v| !v.same(&theirs_now));
                        rewrite_history(conn, of.id, rows, tf.version)?;
                    }
                    (None, None) => {}
                }
            }
            SecretMerge::Whole => {
                let json =
                    |c: &Connection, f: &Option<Full>| -> Result<Option<Zeroizing<String>>> {
                        f.as_ref().map(|f| entries_json(c, f.id)).transpose()
                    };
                let bf = match bf {
                    None if base_is_ours => full(base.conn, env, name)?,
                    bf => bf,
                };
                report.conflicts.push(Conflict {
                    env: env.to_string(),
                    secret: SecretName::parse(name)?,
                    key: None,
                    base: json(base.conn, &bf)?,
                    ours: json(conn, &of)?,
                    theirs: json(theirs.conn, &tf)?,
                });
            }
            SecretMerge::Keys { changes, conflicts } => {
                let (of, tf) = (of.as_ref().ok_or_else(gone)?, tf.as_ref().ok_or_else(gone)?);
                if !changes.is_empty() {
                    report.changed += 1;
                    report.touched.push(of.id);
                }
                let mut rows = history(conn, of.id)?;
                let before = as_version(conn, name, of)?;
                rows.extend(history(theirs.conn, tf.id)?);
                rows.push(as_version(theirs.conn, name, tf)?);
                for (key, value) in &changes {
                    match value {
                        Some(v) => {
                            let description = tf.entries.get(*key).and_then(|(_, d)| d.as_deref());
                            conn.execute(
                                "INSERT INTO entries (secret_id, key, value, description)
                                 VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT (secret_id, key) DO UPDATE SET value = excluded.value,
                                     description = coalesce(excluded.description, description)",
                                params![of.id, key, v, description],
                            )?;
                        }
                        None => {
                            conn.execute(
                                "DELETE FROM entries WHERE secret_id = ?1 AND key = ?2",
                                params![of.id, key],
                            )?;
                        }
                    }
                }
                for c in &conflicts {
                    report.conflicts.push(Conflict {
                        env: env.to_string(),
                        secret: SecretName::parse(name)?,
                        key: Some(EnvKey::parse(c.key)?),
                        base: c.base.map(|v| Zeroizing::new(v.to_string())),
                        ours: c.ours.map(|v| Zeroizing::new(v.to_string())),
                        theirs: c.theirs.map(|v| Zeroizing::new(v.to_string())),
                    });
                }
                let after: Values = {
                    let mut a = ov.clone().unwrap_or_default();
                    for (key, value) in &changes {
                        match value {
                            Some(v) => a.insert(key, v),
                            None => a.remove(key),
                        };
                    }
                    a
                };
                if !overlap(Some(&after), ov.as_ref()) {
                    fresh_from_ours.insert(id_key.clone());
                }
                if !overlap(Some(&after), tv.as_ref()) {
                    fresh_from_theirs.insert(id_key);
                }
                if changes.is_empty() {
                    // Nothing taken: OURS's values stay, and so does its
                    // current version; their versions join its history.
                    rows.retain(|v| !v.same(&before));
                    set_mark(conn, of.id, m)?;
                    rewrite_history(conn, of.id, rows, of.version)?;
                } else {
                    // A new version, the merge's, over both sides' own.
                    rows.push(before);
                    conn.execute(
                        "UPDATE secrets SET updated_at = ?1, updated_by = ?2, rotate_since = ?3
                         WHERE id = ?4",
                        params![now, author, m, of.id],
                    )?;
                    rewrite_history(conn, of.id, rows, of.version.max(tf.version) + 1)?;
                }
            }
        }
    }

    // Descriptions, over whatever the secrets' merge wrote.
    for ((env, name, key), description) in descriptions {
        let Some(id) = conn
            .prepare_cached("SELECT id FROM secrets WHERE env = ?1 AND name = ?2")?
            .query_row([&env, &name], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            continue;
        };
        let changed = conn
            .prepare_cached(
                "UPDATE entries SET description = ?1
                 WHERE secret_id = ?2 AND key = ?3 AND description IS NOT ?1",
            )?
            .execute(params![description, id, key])?;
        if changed > 0 {
            report.touched.push(id);
        }
    }

    // Members.
    for r in ours_side.1 {
        if !merged.contains(r) {
            store::remove_recipient(conn, r)?;
            report.removed_members.push(r.clone());
        }
    }
    for r in theirs.recipients {
        if merged.contains(r) && !ours_side.1.contains(r) {
            // THEIRS's row as it is: when, and by whom (validated with
            // THEIRS, and again before the write), the member was added.
            let (added_at, added_by): (String, Option<String>) = theirs
                .conn
                .query_row(
                    "SELECT added_at, added_by FROM recipients WHERE recipient = ?1",
                    [r],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .unwrap_or_else(|| {
                    (
                        now.clone(),
                        Some(author.to_string()).filter(|a| !a.is_empty()),
                    )
                });
            conn.execute(
                "INSERT OR IGNORE INTO recipients (recipient, added_at, added_by) VALUES (?1, ?2, ?3)",
                params![r, added_at, added_by],
            )?;
            report.added_members.push(r.clone());
        }
    }
    // A member the merge removes could read, on the branch that still
    // listed them, every value that branch's file held: each secret whose
    // merged values share one with that branch is marked for rotation
    // (secrets rotated on the other branch, and secrets only the other
    // branch has, are not). `recipients remove` marks what the removing
    // branch held; this covers what the other branch added or changed.
    let sides = [
        (dropped(ours_side.1), &fresh_from_ours),
        (dropped(theirs.recipients), &fresh_from_theirs),
    ];
    for (drops, fresh) in sides {
        if !drops {
            continue;
        }
        let unmarked: Vec<(i64, String, String)> = {
            let mut stmt =
                conn.prepare("SELECT id, env, name FROM secrets WHERE rotate_since IS NULL")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (id, env, name) in unmarked {
            if !fresh.contains(&(env, name)) {
                set_mark(conn, id, Some(&now))?;
                report.marked += 1;
            }
        }
    }
    // Conflicts THEIRS still carries stay unresolved; the new ones replace
    // any older row for the same key.
    for c in store::conflicts::list(theirs.conn)? {
        let exists: bool = conn.query_row(
            "SELECT count(*) FROM conflicts WHERE env = ?1 AND secret = ?2 AND key IS ?3",
            params![c.env, c.secret.as_str(), c.key.as_ref().map(EnvKey::as_str)],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if !exists {
            store::conflicts::insert(conn, &c)?;
        }
    }
    for c in &report.conflicts {
        conn.execute(
            "DELETE FROM conflicts WHERE env = ?1 AND secret = ?2 AND (key IS ?3 OR ?3 IS NULL)",
            params![c.env, c.secret.as_str(), c.key.as_ref().map(EnvKey::as_str)],
        )?;
        store::conflicts::insert(conn, c)?;
    }
    tx.commit()?;
    Ok(report)
}

fn sort_key(s: &Summary) -> (&[u8], &[u8]) {
    (s.env.as_bytes(), s.name.as_bytes())
}

/// The summary at `list[*n]` if it is the secret `next`, stepping past it.
fn take<'s>(list: &'s [Summary], n: &mut usize, next: &(&[u8], &[u8])) -> Option<&'s Summary> {
    let s = list.get(*n).filter(|s| sort_key(s) == *next);
    if s.is_some() {
        *n += 1;
    }
    s
}

fn mark(s: Option<&Summary>) -> Option<&str> {
    s.and_then(|s| s.rotate_since.as_deref())
}

fn meta(s: Option<&Summary>) -> Option<(i64, &str)> {
    s.map(|s| (s.version, s.updated_at.as_str()))
}

fn gone() -> Error {
    Error::new("internal error: a secret of the merge went missing")
}

fn id_of(conn: &Connection, env: &str, name: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM secrets WHERE env = ?1 AND name = ?2",
        [env, name],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(gone)
}

fn put_entries(
    conn: &Connection,
    id: i64,
    entries: &BTreeMap<String, (Zeroizing<String>, Option<String>)>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO entries (secret_id, key, value, description) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (k, (v, d)) in entries {
        stmt.execute(params![id, k, v.as_str(), d])?;
    }
    Ok(())
}

/// A secret only THEIRS has, copied into OURS with its history.
fn insert_from(
    conn: &Connection,
    theirs: &Connection,
    env: &str,
    name: &str,
    tf: &Full,
    mark: Option<&str>,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO secrets (env, name, created_at, updated_at, version, updated_by, rotate_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            env,
            name,
            tf.created_at,
            tf.updated_at,
            tf.version,
            tf.updated_by,
            mark
        ],
    )?;
    let id = conn.last_insert_rowid();
    put_entries(conn, id, &tf.entries)?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO history (secret_id, version, name, changed_at, changed_by, entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for v in history(theirs, tf.id)? {
        stmt.execute(params![
            id,
            v.number,
            v.name,
            v.changed_at,
            v.changed_by,
            v.entries.as_str()
        ])?;
    }
    Ok(id)
}

/// For an OURS of schema version 1 (unsigned, so its id was made up by
/// the migration in memory): the vault id and diff key of the signed side,
/// so that the result is that vault.
pub(crate) fn adopt_identity(ours: &Connection, from: &Connection) -> Result<()> {
    for key in ["vault_id", "diff_key"] {
        let value: Option<String> = from
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        if let Some(v) = value {
            ours.execute(
                "UPDATE meta SET value = ?1 WHERE key = ?2",
                [v.as_str(), key],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals<'a>(pairs: &[(&'a str, &'a str)]) -> Values<'a> {
        pairs.iter().copied().collect()
    }

    /// A database with secrets at `ids`, each with one key `K` = `v<id>`.
    fn with_secrets(ids: &[i64]) -> Connection {
        let conn = store::create(&[]).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for id in ids {
            conn.execute(
                "INSERT INTO secrets (id, env, name, created_at, updated_at)
                 VALUES (?1, 'main', ?2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                params![id, format!("s{id}")],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO entries (secret_id, key, value) VALUES (?1, 'K', ?2)",
                params![id, format!("v{id}")],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn summaries_agree_for_dense_and_sparse_ids_and_see_orphans() {
        let hasher = RandomState::new();
        let digests = |conn: &Connection| -> Vec<(String, u64)> {
            summarize(conn, &hasher, Role::Ours)
                .unwrap()
                .0
                .into_iter()
                .map(|s| (s.name, s.digest.expect("OURS is hashed")))
                .collect()
        };
        // BASE's digest of a secret, taken later by its id, is the one
        // the scan gives; BASE lists the same secrets, none hashed yet.
        let later = |conn: &Connection| -> Vec<(String, u64)> {
            summarize(conn, &hasher, Role::Base)
                .unwrap()
                .0
                .into_iter()
                .map(|s| {
                    assert_eq!(s.digest, None);
                    (s.name, base_digest(conn, &hasher, s.id).unwrap())
                })
                .collect()
        };
        // The same secret gives the same digest whichever way ids are held.
        let dense = with_secrets(&[1, 2, 3]);
        let sparse = with_secrets(&[1, 2, 3, 1_i64 << 40]);
        let (d, s) = (digests(&dense), digests(&sparse));
        assert_eq!(d.len(), 3);
        assert_eq!(s.len(), 4);
        let s_small: Vec<_> = s.iter().filter(|(n, _)| n.len() == 2).cloned().collect();
        assert_eq!(d, s_small);
        assert_ne!(d[0].1, d[1].1);
        // A second key adds to the secret's digest.
        dense
            .execute(
                "INSERT INTO entries (secret_id, key, value) VALUES (2, 'L', 'x')",
                [],
            )
            .unwrap();
        let d2 = digests(&dense);
        assert_eq!(d2[0], d[0]);
        assert_ne!(d2[1].1, d[1].1);
        assert_eq!(later(&dense), d2);
        assert_eq!(later(&sparse), s);
        // A secret without any key is no secret on any side.
        dense
            .execute(
                "INSERT INTO secrets (id, env, name, created_at, updated_at)
                 VALUES (7, 'main', 'empty', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                [],
            )
            .unwrap();
        assert_eq!(later(&dense), digests(&dense));
        assert!(
            summarize(&dense, &hasher, Role::Ours)
                .unwrap()
                .entries_valid()
        );
        // An entry whose secret does not exist, beyond the largest id or
        // inside the range of ids: not valid.
        for orphan in [99_i64, 1 << 50] {
            let conn = with_secrets(&[1, 2, 3]);
            conn.execute(
                "INSERT INTO entries (secret_id, key, value) VALUES (?1, 'K', 'x')",
                [orphan],
            )
            .unwrap();
            let s = summarize(&conn, &hasher, Role::Ours).unwrap();
            assert!(!s.entries_valid(), "orphan {orphan}");
            assert_eq!(s.0.len(), 3);
        }
        let conn = with_secrets(&[1, 2, 3]);
        conn.execute("DELETE FROM secrets WHERE id = 2", [])
            .unwrap();
        assert!(
            !summarize(&conn, &hasher, Role::Ours)
                .unwrap()
                .entries_valid()
        );
        // A bad key is seen only when asked to check.
        let conn = with_secrets(&[1]);
        conn.execute(
            "INSERT INTO entries (secret_id, key, value) VALUES (1, 'bad key', 'x')",
            [],
        )
        .unwrap();
        assert!(
            !summarize(&conn, &hasher, Role::Ours)
                .unwrap()
                .entries_valid()
        );
        assert!(
            summarize(&conn, &hasher, Role::Theirs)
                .unwrap()
                .entries_valid()
        );
    }

    #[test]
    fn debug_of_a_merge_shows_keys_and_no_value() {
        let m = SecretMerge::Keys {
            changes: vec![("A", Some("canary-a")), ("B", None)],
            conflicts: vec![KeyConflict {
                key: "C",
                base: Some("canary-base"),
                ours: Some("canary-ours"),
                theirs: None,
            }],
        };
        let shown = format!("{m:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(
            shown.contains("\"A\"") && shown.contains("\"C\""),
            "{shown}"
        );
    }

    /// Every case of the table for one value: absent (None), the base
    /// value x, and two other values y and z.
    #[test]
    fn one_value_every_case() {
        use Pick::*;
        let (x, y, z) = (Some("x"), Some("y"), Some("z"));
        let cases = [
            // base, ours, theirs → pick
            (None, None, None, Ours),
            (None, y, None, Ours),   // added on ours
            (None, None, y, Theirs), // added on theirs
            (None, y, y, Ours),      // added alike on both
            (None, y, z, Conflict),  // added differently
            (x, x, x, Ours),         // untouched
            (x, y, x, Ours),         // changed on ours
            (x, x, y, Theirs),       // changed on theirs
            (x, y, y, Ours),         // the same change on both
            (x, y, z, Conflict),     // different changes
            (x, None, x, Ours),      // deleted on ours
            (x, x, None, Theirs),    // deleted on theirs
            (x, None, None, Ours),   // deleted on both
            (x, None, y, Conflict),  // deleted on ours, changed on theirs
            (x, y, None, Conflict),  // changed on ours, deleted on theirs
        ];
        for (b, o, t, want) in cases {
            assert_eq!(pick(b, o, t), want, "base {b:?} ours {o:?} theirs {t:?}");
        }
    }

    #[test]
    fn a_secret_merges_whole_then_key_by_key() {
        let base = vals(&[("A", "1"), ("B", "2"), ("C", "3")]);
        // Different keys changed on each side: both changes, no conflict.
        let ours = vals(&[("A", "10"), ("B", "2"), ("C", "3")]);
        let theirs = vals(&[("A", "1"), ("B", "20"), ("C", "3"), ("D", "4")]);
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), Some(&theirs)),
            SecretMerge::Keys {
                changes: vec![("B", Some("20")), ("D", Some("4"))],
                conflicts: vec![]
            }
        );
        // The same key changed differently: a conflict on that key; a key
        // removed on theirs is taken.
        let theirs = vals(&[("A", "11"), ("B", "2")]);
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), Some(&theirs)),
            SecretMerge::Keys {
                changes: vec![("C", None)],
                conflicts: vec![KeyConflict {
                    key: "A",
                    base: Some("1"),
                    ours: Some("10"),
                    theirs: Some("11")
                }]
            }
        );
        // Removed on one side, changed on the other: a key conflict.
        let theirs = vals(&[("B", "2"), ("C", "3")]);
        let SecretMerge::Keys { conflicts, .. } =
            merge_secret(Some(&base), Some(&ours), Some(&theirs))
        else {
            panic!()
        };
        assert_eq!(conflicts[0].theirs, None);
        // Whole-secret rules.
        assert_eq!(
            merge_secret(Some(&base), Some(&base), Some(&ours)),
            SecretMerge::Theirs
        );
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), Some(&base)),
            SecretMerge::Ours
        );
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), Some(&ours)),
            SecretMerge::Ours
        );
        assert_eq!(
            merge_secret(Some(&base), Some(&base), None),
            SecretMerge::Theirs
        );
        assert_eq!(
            merge_secret(Some(&base), None, Some(&base)),
            SecretMerge::Ours
        );
        assert_eq!(merge_secret(None, None, Some(&base)), SecretMerge::Theirs);
        assert_eq!(merge_secret(None, Some(&base), None), SecretMerge::Ours);
        assert_eq!(merge_secret(Some(&base), None, None), SecretMerge::Ours);
        // Deleted on one side, changed on the other: the whole secret.
        assert_eq!(
            merge_secret(Some(&base), None, Some(&ours)),
            SecretMerge::Whole
        );
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), None),
            SecretMerge::Whole
        );
        // Created on both: key by key against an empty base.
        let a = vals(&[("K", "1"), ("L", "same")]);
        let b = vals(&[("K", "2"), ("L", "same"), ("M", "3")]);
        assert_eq!(
            merge_secret(None, Some(&a), Some(&b)),
            SecretMerge::Keys {
                changes: vec![("M", Some("3"))],
                conflicts: vec![KeyConflict {
                    key: "K",
                    base: None,
                    ours: Some("1"),
                    theirs: Some("2")
                }]
            }
        );
        // Each side removed the key the other kept: no key would be left.
        let base = vals(&[("A", "1"), ("B", "2")]);
        let ours = vals(&[("B", "2")]);
        let theirs = vals(&[("A", "1")]);
        assert_eq!(
            merge_secret(Some(&base), Some(&ours), Some(&theirs)),
            SecretMerge::Whole
        );
    }

    #[test]
    fn a_changed_value_is_not_an_added_or_removed_key() {
        let base = vals(&[("A", "1"), ("B", "2")]);
        assert!(!changed_a_value(Some(&base), Some(&base)));
        assert!(!changed_a_value(
            Some(&base),
            Some(&vals(&[("A", "1"), ("B", "2"), ("C", "3")]))
        ));
        assert!(!changed_a_value(Some(&base), Some(&vals(&[("A", "1")]))));
        assert!(changed_a_value(
            Some(&base),
            Some(&vals(&[("A", "9"), ("B", "2")]))
        ));
        assert!(!changed_a_value(None, Some(&base)));
        assert!(!changed_a_value(Some(&base), None));
    }

    #[test]
    fn rotation_marks() {
        let (m, n) = (Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z"));
        // A new mark on one side survives if the other side changed no value...
        assert_eq!(merge_mark(None, m, None, false, false), m);
        assert_eq!(merge_mark(None, None, m, false, false), m);
        // ...and a change of a value on the other side clears it.
        assert_eq!(merge_mark(None, m, None, false, true), None);
        assert_eq!(merge_mark(None, None, m, true, false), None);
        // Its own side's change does not (the mark came after it).
        assert_eq!(merge_mark(None, m, None, true, false), m);
        // An inherited mark cleared on one side (rotated) is cleared.
        assert_eq!(merge_mark(m, m, None, false, false), None);
        assert_eq!(merge_mark(m, None, m, true, false), None);
        assert_eq!(merge_mark(m, m, m, false, false), m);
        // Two marks: the earlier.
        assert_eq!(merge_mark(None, n, m, false, false), m);
        assert_eq!(merge_mark(m, m, n, false, false), m);
    }

    #[test]
    fn members_additions_kept_removals_win() {
        let r = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = r(&["a", "b", "c"]);
        assert_eq!(
            merge_recipients(&base, &r(&["a", "b", "c", "d"]), &r(&["a", "b", "c", "e"])),
            r(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(
            merge_recipients(&base, &r(&["a", "c"]), &r(&["a", "b", "c", "e"])),
            r(&["a", "c", "e"])
        );
        assert_eq!(
            merge_recipients(&base, &r(&["a", "b", "c", "d"]), &r(&["a", "b"])),
            r(&["a", "b", "d"])
        );
        // Removed on one side, while the other added someone.
        assert_eq!(
            merge_recipients(&base, &r(&["b"]), &r(&["a", "b", "c"])),
            r(&["b"])
        );
        // A member added on both sides is kept once.
        assert_eq!(
            merge_recipients(&r(&["a"]), &r(&["a", "x"]), &r(&["a", "x"])),
            r(&["a", "x"])
        );
    }
}
