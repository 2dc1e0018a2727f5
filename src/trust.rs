//! Who may write a vault (DESIGN v2 "Trust"): the record of what this user
//! has seen, `VAULT_DIR/trusted.json`, and the rules that accept or refuse
//! a file against it.
//!
//! The rules are pure functions on a `State` (`decide`, `check_write`,
//! `record_write`, `replace`), unit-tested one by one below. The file is
//! public data only (recipients, generations, paths), 0600, replaced
//! atomically under `VAULT_DIR/trusted.lock`, a short lock of its own:
//! reads update it too, and a read must never wait for the vault's writers
//! (DESIGN v2 "Performance"). No crypto here: `vault.rs` verifies the
//! signature (`sign.rs`) and tells these rules who signed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fsio;

/// What this user knows of one vault, by its `vault_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Known {
    /// The members a trusted, newest file listed: who may sign.
    pub(crate) members: BTreeSet<String>,
    /// The highest generation seen.
    pub(crate) generation: u64,
    /// The SHA-256 (hex) of the database of the newest file adopted: that
    /// very file is accepted again even when its signer is no longer a
    /// member (a member who removed themselves signed it).
    pub(crate) newest: String,
    /// The paths the vault was seen at (resolved); a path belongs to one
    /// vault at a time.
    pub(crate) paths: BTreeSet<String>,
    /// Whether it was seen signed (every recorded vault is: only version-1
    /// files are read unsigned, and they carry no id).
    pub(crate) signed: bool,
    /// Members a trusted, newer file removed, with the generation that did.
    pub(crate) removed: BTreeMap<String, u64>,
    /// Older generations already reported (once each).
    pub(crate) reported: BTreeSet<u64>,
}

/// All of `trusted.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) vaults: BTreeMap<String, Known>,
}

/// What a reader found in a file, after decrypting it and checking its
/// signature.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seen<'a> {
    /// No signature stanza; `schema` is the file's schema version.
    Unsigned { schema: i64 },
    /// A valid signature by `signer` over this id and generation.
    Signed {
        vault_id: &'a str,
        generation: u64,
        signer: &'a str,
        /// The file's own `recipients` table.
        recipients: &'a [String],
        /// The SHA-256 (hex) of its database, which the signature covers.
        db_sha256: &'a str,
    },
}

/// Something a reader is told on stderr (`vault: note: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// Trust on first use.
    FirstUse { signer: String, members: usize },
    /// A generation below the highest seen, reported once.
    Older { generation: u64, highest: u64 },
}

/// Why a file is refused (exit 1, nothing run, file unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The signature stanza is malformed or does not verify.
    BadSignature,
    /// Signed by a key outside the trusted set (by its fingerprint);
    /// `listed`: one of the file's own recipients (which `vault trust`
    /// can accept), else a key that can read nothing of it.
    Untrusted { fingerprint: String, listed: bool },
    /// No signature where one was seen before (a path last seen signed).
    UnsignedAfterSigned,
    /// No signature on a file of schema version 2 or later.
    UnsignedNewSchema { schema: i64 },
    /// Another vault than the one last seen at this path.
    OtherVault,
    /// A write would encrypt to a member a newer file removed.
    Removed { member: String, generation: u64 },
}

impl State {
    /// The vault last seen at `path`.
    pub(crate) fn at_path(&self, path: &str) -> Option<(&str, &Known)> {
        self.vaults
            .iter()
            .find(|(_, k)| k.paths.contains(path))
            .map(|(id, k)| (id.as_str(), k))
    }

    /// The keys a file's signer may be (its stanza names only a
    /// fingerprint): the file's own recipients, and the trusted and the
    /// removed members of `vault_id` (the last writer may have removed
    /// themselves). Whether the signer is *trusted* is `decide`'s question.
    pub(crate) fn signer_candidates(
        &self,
        vault_id: &str,
        file_recipients: &[String],
    ) -> Vec<String> {
        let mut out: BTreeSet<String> = file_recipients.iter().cloned().collect();
        if let Some(k) = self.vaults.get(vault_id) {
            out.extend(k.members.iter().cloned());
            out.extend(k.removed.keys().cloned());
        }
        out.into_iter().collect()
    }

    /// Records `path` as `vault_id`'s, and no other vault's.
    fn claim_path(&mut self, vault_id: &str, path: &str) {
        for (id, k) in self.vaults.iter_mut() {
            if id != vault_id {
                k.paths.remove(path);
            }
        }
        if let Some(k) = self.vaults.get_mut(vault_id) {
            k.paths.insert(path.to_string());
        }
    }
}

/// The rules for reading (DESIGN v2 "Trust", "Reading", "Refusals", "Older
/// files", "Version-1 files"). On `Ok`, `state` is what `trusted.json`
/// becomes. `is_me` tells your own recipients, always trusted.
#[cfg(test)]
pub(crate) fn decide(
    state: &mut State,
    path: &str,
    seen: Seen<'_>,
    is_me: &dyn Fn(&str) -> bool,
) -> std::result::Result<Vec<Note>, Refusal> {
    decide_at(state, Some(path), seen, is_me)
}

/// `decide` for a file that may be at no path of its own: git's merge
/// driver reads temporary copies (`%O %A %B`), which must neither be
/// recorded as the vault's paths nor claim them; without `path` the rules
/// about paths (another vault, unsigned after signed) do not apply, all
/// the others do.
pub(crate) fn decide_at(
    state: &mut State,
    path: Option<&str>,
    seen: Seen<'_>,
    is_me: &dyn Fn(&str) -> bool,
) -> std::result::Result<Vec<Note>, Refusal> {
    let (vault_id, generation, signer, recipients, db_sha256) = match seen {
        Seen::Unsigned { schema } if schema >= 2 => {
            return Err(Refusal::UnsignedNewSchema { schema });
        }
        Seen::Unsigned { .. } => {
            // A version-1 file is read as before, unless its path was last
            // seen holding a signed vault: a forged v1-shaped file must not
            // replace a signed one.
            return match path.and_then(|p| state.at_path(p)) {
                Some((_, k)) if k.signed => Err(Refusal::UnsignedAfterSigned),
                _ => Ok(vec![]),
            };
        }
        Seen::Signed {
            vault_id,
            generation,
            signer,
            recipients,
            db_sha256,
        } => (vault_id, generation, signer, recipients, db_sha256),
    };
    if let Some((other, _)) = path.and_then(|p| state.at_path(p))
        && other != vault_id
    {
        return Err(Refusal::OtherVault);
    }
    let untrusted = || Refusal::Untrusted {
        fingerprint: crate::sign::fingerprint(signer),
        listed: recipients.iter().any(|r| r == signer),
    };
    let Some(known) = state.vaults.get_mut(vault_id) else {
        // Trust on first use: the signer must be one of the file's own
        // members (or you).
        if !recipients.iter().any(|r| r == signer) && !is_me(signer) {
            return Err(untrusted());
        }
        state.vaults.insert(
            vault_id.to_string(),
            Known {
                members: recipients.iter().cloned().collect(),
                generation,
                newest: db_sha256.to_string(),
                signed: true,
                ..Known::default()
            },
        );
        if let Some(path) = path {
            state.claim_path(vault_id, path);
        }
        return Ok(vec![Note::FirstUse {
            signer: signer.to_string(),
            members: recipients.len(),
        }]);
    };
    // The newest file adopted, read again, is that file: its signer was
    // trusted when it was adopted.
    let same_file = generation == known.generation && known.newest == db_sha256;
    if !same_file && !known.members.contains(signer) && !is_me(signer) {
        return Err(untrusted());
    }
    known.signed = true;
    let mut notes = vec![];
    if generation < known.generation {
        // Normal in git (an older branch or checkout): read as usual,
        // reported once, and it never changes the trusted set.
        if known.reported.insert(generation) {
            notes.push(Note::Older {
                generation,
                highest: known.generation,
            });
        }
    } else if !same_file {
        // A trusted member signed the newest file: its recipients are the
        // trusted set now, and whom it dropped is remembered. (The newest
        // file adopted, read again, changes nothing: your own write may
        // have kept trusted a member it does not list, `record_write`.)
        adopt(known, recipients, generation, db_sha256);
    }
    if let Some(path) = path {
        state.claim_path(vault_id, path);
    }
    Ok(notes)
}

/// `recipients` of a newest file at `generation` become the trusted set.
/// A sibling (another file at the generation already seen, as two branches
/// reach) does not bring back a member removed at that generation or
/// later: it may be the copy of a branch made before the removal, and in a
/// merge too a removal on either side wins.
fn adopt(known: &mut Known, recipients: &[String], generation: u64, db_sha256: &str) {
    let sibling = generation == known.generation;
    let new: BTreeSet<String> = recipients
        .iter()
        .filter(|r| !(sibling && known.removed.get(*r).is_some_and(|&g| g >= generation)))
        .cloned()
        .collect();
    for gone in known.members.difference(&new) {
        known.removed.insert(gone.clone(), generation);
    }
    for back in &new {
        known.removed.remove(back);
    }
    known.members = new;
    known.generation = generation;
    known.newest = db_sha256.to_string();
}

/// The generation a write saves: the newest, above the file's and above
/// everything seen.
/// How this user's record regards the verified signer of a file, without
/// changing the record: what `vault git show` (git's textconv, run on old
/// commits and temporary files) says in its header. `decide` is the rule
/// that accepts or refuses; this only describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    /// One of your own recipients.
    You,
    /// A trusted member of this vault (or the signer of the newest file
    /// adopted, which is that file).
    Member,
    /// A member that a trusted, newer file removed, at that generation.
    Removed { generation: u64 },
    /// A vault not seen before, signed by one of its own recipients: what
    /// a read would trust on first use.
    FirstSight,
    /// None of the above: a read would refuse it.
    Outsider,
}

/// `Standing` of `signer` for a file of `vault_id` and `generation` whose
/// database hashes to `db_sha256` and which lists `recipients`.
pub(crate) fn standing(
    state: &State,
    vault_id: &str,
    generation: u64,
    db_sha256: &str,
    signer: &str,
    recipients: &[String],
    is_me: &dyn Fn(&str) -> bool,
) -> Standing {
    if is_me(signer) {
        return Standing::You;
    }
    match state.vaults.get(vault_id) {
        Some(k)
            if k.members.contains(signer)
                || (generation == k.generation && k.newest == db_sha256) =>
        {
            Standing::Member
        }
        Some(k) => match k.removed.get(signer) {
            Some(&generation) => Standing::Removed { generation },
            None => Standing::Outsider,
        },
        None if recipients.iter().any(|r| r == signer) => Standing::FirstSight,
        None => Standing::Outsider,
    }
}

pub(crate) fn next_generation(state: &State, vault_id: &str, file_generation: u64) -> u64 {
    let seen = state.vaults.get(vault_id).map_or(0, |k| k.generation);
    file_generation.max(seen).saturating_add(1)
}

/// A write of `vault_id` that read a file of `file_generation` listing
/// `before` and will encrypt to `after`: refused if it would encrypt to a
/// member a trusted, newer file removed, unless that member is added by
/// this very write (an explicit `recipients add`) or `allow_older` says
/// so. From a file older than the newest seen, a member that file lists
/// and the newest does not counts as removed too, whether or not this
/// user saw them go (a first read of the newer file, then a replay of an
/// older one: replaying needs no key at all).
pub(crate) fn check_write(
    state: &State,
    vault_id: &str,
    file_generation: u64,
    before: &[String],
    after: &[String],
    allow_older: bool,
) -> std::result::Result<(), Refusal> {
    let Some(known) = state.vaults.get(vault_id) else {
        return Ok(());
    };
    if allow_older {
        return Ok(());
    }
    for r in after {
        if !before.contains(r) {
            continue;
        }
        if let Some(&generation) = known.removed.get(r) {
            return Err(Refusal::Removed {
                member: r.clone(),
                generation,
            });
        }
        if file_generation < known.generation && !known.members.contains(r) {
            return Err(Refusal::Removed {
                member: r.clone(),
                generation: known.generation,
            });
        }
    }
    Ok(())
}

/// After your own write (signed by you, the newest generation), which
/// read a file listing `before` and encrypted to `after`: its recipients
/// are trusted, and the members it dropped (`before` but not `after`) are
/// removed as of `generation`. A trusted member that its starting file did
/// not list stays trusted: a write on an older checkout (a branch made
/// before someone was added elsewhere) removed no one, and marking them
/// removed would refuse the merge that brings them in. In the usual case,
/// a write on the newest file, `before` is the trusted set and its
/// recipients become the trusted set exactly.
pub(crate) fn record_write(
    state: &mut State,
    path: &str,
    vault_id: &str,
    generation: u64,
    before: &[String],
    after: &[String],
    db_sha256: &str,
) {
    let known = state.vaults.entry(vault_id.to_string()).or_default();
    known.signed = true;
    for gone in before.iter().filter(|r| !after.contains(r)) {
        known.members.remove(gone);
        known.removed.insert(gone.clone(), generation);
    }
    for r in after {
        known.removed.remove(r);
        known.members.insert(r.clone());
    }
    known.generation = generation;
    known.newest = db_sha256.to_string();
    state.claim_path(vault_id, path);
}

/// `vault trust`: the file at `path` becomes what is trusted there. A
/// signed file's members become its vault's trusted set (at its
/// generation); an unsigned version-1 file frees the path of the signed
/// vault last seen there.
pub(crate) fn replace(state: &mut State, path: &str, seen: Seen<'_>) {
    match seen {
        Seen::Unsigned { .. } => {
            for k in state.vaults.values_mut() {
                k.paths.remove(path);
            }
        }
        Seen::Signed {
            vault_id,
            generation,
            recipients,
            db_sha256,
            ..
        } => {
            let known = state.vaults.entry(vault_id.to_string()).or_default();
            let new: BTreeSet<String> = recipients.iter().cloned().collect();
            known.removed.retain(|r, _| !new.contains(r));
            known.members = new;
            // Never lower: an older file trusted on purpose gives its
            // members, and older files stay older (replays are still
            // reported and still refused a write to a removed member).
            known.generation = known.generation.max(generation);
            known.newest = db_sha256.to_string();
            known.signed = true;
            known.reported.clear();
            state.claim_path(vault_id, path);
        }
    }
}

// ------------------------------------------------------------- the file

/// `VAULT_DIR/trusted.json` and its lock.
pub(crate) struct Store {
    file: PathBuf,
    lock: PathBuf,
}

impl Store {
    pub(crate) fn new(vault_dir: &Path) -> Self {
        Store {
            file: vault_dir.join("trusted.json"),
            lock: vault_dir.join("trusted.lock"),
        }
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.file
    }

    /// The state as on disk (empty when there is no file yet).
    pub(crate) fn load(&self) -> Result<State> {
        let bytes = match std::fs::read(&self.file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(Error::io("read", &self.file, e)),
        };
        parse(&bytes).ok_or_else(|| {
            Error::new(format!("{} is damaged", self.file.display()))
                .hint("move it aside: vault then trusts each vault again on first use, and says so")
        })
    }

    /// Runs `rule` on the state and saves what it changed. The common case
    /// (a vault read again, nothing new) takes no lock and writes nothing;
    /// a change is re-decided under the lock on a fresh read, so two
    /// readers updating at once lose nothing.
    pub(crate) fn update<T>(&self, rule: impl FnMut(&mut State) -> T) -> Result<T> {
        self.update_from(None, rule)
    }

    /// `update`, starting from `loaded` when the caller has just read the
    /// state (a read needs it for the signer first; parsing it twice is on
    /// `run`'s path). The rule still runs again on a fresh load under the
    /// lock before anything is written.
    pub(crate) fn update_from<T>(
        &self,
        loaded: Option<State>,
        mut rule: impl FnMut(&mut State) -> T,
    ) -> Result<T> {
        let before = match loaded {
            Some(state) => state,
            None => self.load()?,
        };
        let mut after = before.clone();
        let out = rule(&mut after);
        if after == before {
            return Ok(out);
        }
        fsio::ensure_dir(&fsio::parent(&self.file))?;
        let _lock = fsio::WriteLock::acquire(&self.lock)?;
        let before = self.load()?;
        let mut after = before.clone();
        let out = rule(&mut after);
        if after != before {
            let text = render(&after);
            fsio::atomic_write(&self.file, |f| f.write_all(text.as_bytes()))?;
        }
        Ok(out)
    }
}

fn render(state: &State) -> String {
    let vaults: serde_json::Map<String, Value> = state
        .vaults
        .iter()
        .map(|(id, k)| {
            (
                id.clone(),
                json!({
                    "members": k.members,
                    "generation": k.generation,
                    "newest_sha256": k.newest,
                    "paths": k.paths,
                    "signed": k.signed,
                    "removed": k.removed,
                    "reported": k.reported,
                }),
            )
        })
        .collect();
    let mut text =
        serde_json::to_string_pretty(&json!({"version": 1, "vaults": vaults})).unwrap_or_default();
    text.push('\n');
    text
}

fn parse(bytes: &[u8]) -> Option<State> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    if v["version"].as_u64()? != 1 {
        return None;
    }
    let strings = |v: &Value| -> Option<BTreeSet<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut state = State::default();
    for (id, k) in v["vaults"].as_object()? {
        crate::store::parse_vault_id(id)?;
        let removed = k["removed"]
            .as_object()?
            .iter()
            .map(|(r, g)| Some((r.clone(), g.as_u64()?)))
            .collect::<Option<_>>()?;
        let reported = k["reported"]
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()?;
        state.vaults.insert(
            id.clone(),
            Known {
                members: strings(&k["members"])?,
                generation: k["generation"].as_u64()?,
                newest: k["newest_sha256"].as_str()?.to_string(),
                paths: strings(&k["paths"])?,
                signed: k["signed"].as_bool()?,
                removed,
                reported,
            },
        );
    }
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00112233445566778899aabbccddeeff";
    const OTHER_ID: &str = "ffeeddccbbaa99887766554433221100";
    const P: &str = "/home/u/team/vault.age";

    fn me(r: &str) -> bool {
        r == "age1me"
    }

    fn rs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A file signed by `signer`; its database's hash stands for its
    /// content (one per generation here, unless a test says otherwise).
    fn signed<'a>(generation: u64, signer: &'a str, recipients: &'a [String]) -> Seen<'a> {
        const HASHES: [&str; 10] = ["h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"];
        Seen::Signed {
            vault_id: ID,
            generation,
            signer,
            recipients,
            db_sha256: HASHES[generation as usize % 10],
        }
    }

    /// A state that has seen `ID` at `P`, generation 5, members a, b, me.
    fn known() -> State {
        let mut s = State::default();
        let r = rs(&["age1a", "age1b", "age1me"]);
        decide(&mut s, P, signed(5, "age1a", &r), &me).unwrap();
        s
    }

    /// `standing` describes what `decide` would do, and changes nothing.
    #[test]
    fn standing_matches_the_reading_rules() {
        let mut s = known();
        s.vaults
            .get_mut(ID)
            .unwrap()
            .removed
            .insert("age1gone".into(), 4);
        let before = s.clone();
        let r = rs(&["age1a", "age1x"]);
        let st = |id: &str, generation: u64, hash: &str, signer: &str| {
            standing(&s, id, generation, hash, signer, &r, &me)
        };
        assert_eq!(st(ID, 2, "old", "age1me"), Standing::You);
        assert_eq!(st(ID, 2, "old", "age1b"), Standing::Member);
        assert_eq!(
            st(ID, 2, "old", "age1gone"),
            Standing::Removed { generation: 4 }
        );
        // A file's own recipient is no member of a vault already known...
        assert_eq!(st(ID, 9, "new", "age1x"), Standing::Outsider);
        // ...unless it is the newest file adopted, byte for byte.
        assert_eq!(st(ID, 5, "h5", "age1x"), Standing::Member);
        // A vault not seen yet: its own recipients would be trusted on
        // first use, anyone else not.
        assert_eq!(st(OTHER_ID, 1, "x", "age1x"), Standing::FirstSight);
        assert_eq!(st(OTHER_ID, 1, "x", "age1z"), Standing::Outsider);
        assert_eq!(s, before);
        // And `decide` agrees on the refusals.
        let mut d = s.clone();
        assert!(decide(&mut d, P, signed(6, "age1gone", &r), &me).is_err());
        assert!(decide(&mut d, P, signed(6, "age1x", &r), &me).is_err());
    }

    #[test]
    fn first_use_trusts_a_signer_among_the_files_members_and_says_so() {
        let mut s = State::default();
        let r = rs(&["age1a", "age1b"]);
        let notes = decide(&mut s, P, signed(3, "age1a", &r), &me).unwrap();
        assert_eq!(
            notes,
            [Note::FirstUse {
                signer: "age1a".into(),
                members: 2
            }]
        );
        let k = &s.vaults[ID];
        assert_eq!(k.members, r.iter().cloned().collect());
        assert_eq!(k.generation, 3);
        assert!(k.signed && k.paths.contains(P));
        // Seen again: no note, no change.
        let before = s.clone();
        assert_eq!(decide(&mut s, P, signed(3, "age1a", &r), &me).unwrap(), []);
        assert_eq!(s, before);
    }

    #[test]
    fn first_use_refuses_a_signer_outside_the_file() {
        let mut s = State::default();
        let r = rs(&["age1a", "age1b"]);
        let err = decide(&mut s, P, signed(1, "age1mallory", &r), &me).unwrap_err();
        assert!(matches!(err, Refusal::Untrusted { .. }));
        assert_eq!(s, State::default(), "a refusal changes nothing");
        // Yourself, even when not listed (you removed yourself), is trusted.
        decide(&mut s, P, signed(1, "age1me", &r), &me).unwrap();
    }

    #[test]
    fn a_signer_must_be_in_the_trusted_set() {
        let mut s = known();
        let before = s.clone();
        // A non-member who lists themselves in the file is still refused.
        let r = rs(&["age1a", "age1b", "age1me", "age1mallory"]);
        let err = decide(&mut s, P, signed(9, "age1mallory", &r), &me).unwrap_err();
        assert_eq!(
            err,
            Refusal::Untrusted {
                fingerprint: crate::sign::fingerprint("age1mallory"),
                listed: true,
            }
        );
        assert_eq!(s, before);
    }

    #[test]
    fn a_trusted_members_newer_file_sets_the_trusted_set() {
        let mut s = known();
        // b adds c: accepted without a prompt, c is trusted from now on.
        let r = rs(&["age1a", "age1b", "age1me", "age1c"]);
        assert_eq!(decide(&mut s, P, signed(6, "age1b", &r), &me).unwrap(), []);
        assert!(s.vaults[ID].members.contains("age1c"));
        assert_eq!(s.vaults[ID].generation, 6);
        // a removes b: remembered, and b can no longer sign.
        let r = rs(&["age1a", "age1me", "age1c"]);
        decide(&mut s, P, signed(7, "age1a", &r), &me).unwrap();
        assert_eq!(s.vaults[ID].removed.get("age1b"), Some(&7));
        let r_b = rs(&["age1a", "age1b", "age1me", "age1c"]);
        let err = decide(&mut s, P, signed(8, "age1b", &r_b), &me).unwrap_err();
        assert!(matches!(err, Refusal::Untrusted { .. }));
        // Re-added by a trusted member: no longer "removed".
        decide(&mut s, P, signed(8, "age1a", &r_b), &me).unwrap();
        assert!(!s.vaults[ID].removed.contains_key("age1b"));
    }

    #[test]
    fn the_newest_file_is_accepted_again_after_its_signer_left() {
        let mut s = known();
        // b removes themselves and signs that (generation 6).
        let r = rs(&["age1a", "age1me"]);
        decide(&mut s, P, signed(6, "age1b", &r), &me).unwrap();
        assert!(!s.vaults[ID].members.contains("age1b"));
        // The same file, read again: fine.
        decide(&mut s, P, signed(6, "age1b", &r), &me).unwrap();
        // Anything else b signs, even at the same generation, is refused.
        let forged = Seen::Signed {
            vault_id: ID,
            generation: 6,
            signer: "age1b",
            recipients: &r,
            db_sha256: "another database",
        };
        assert!(matches!(
            decide(&mut s, P, forged, &me),
            Err(Refusal::Untrusted { .. })
        ));
        assert!(decide(&mut s, P, signed(7, "age1b", &r), &me).is_err());
    }

    #[test]
    fn an_older_generation_is_read_reported_once_and_changes_nothing_else() {
        let mut s = known();
        let r = rs(&["age1a", "age1b", "age1me", "age1old"]);
        let notes = decide(&mut s, P, signed(2, "age1b", &r), &me).unwrap();
        assert_eq!(
            notes,
            [Note::Older {
                generation: 2,
                highest: 5
            }]
        );
        let k = &s.vaults[ID];
        assert!(
            !k.members.contains("age1old"),
            "older files never change the trusted set"
        );
        assert_eq!(k.generation, 5);
        // Reported once per generation.
        assert_eq!(decide(&mut s, P, signed(2, "age1b", &r), &me).unwrap(), []);
        assert_eq!(
            decide(&mut s, P, signed(3, "age1b", &r), &me)
                .unwrap()
                .len(),
            1
        );
        // An older file still needs a trusted signer.
        assert!(decide(&mut s, P, signed(2, "age1old", &r), &me).is_err());
    }

    #[test]
    fn unsigned_files() {
        // Version 1 where nothing signed was seen: read as before.
        let mut s = State::default();
        assert_eq!(
            decide(&mut s, P, Seen::Unsigned { schema: 1 }, &me).unwrap(),
            []
        );
        assert_eq!(s, State::default());
        // A later schema without a signature: always refused.
        let err = decide(&mut s, P, Seen::Unsigned { schema: 2 }, &me).unwrap_err();
        assert_eq!(err, Refusal::UnsignedNewSchema { schema: 2 });
        // Unsigned at a path last seen signed: refused.
        let mut s = known();
        let err = decide(&mut s, P, Seen::Unsigned { schema: 1 }, &me).unwrap_err();
        assert_eq!(err, Refusal::UnsignedAfterSigned);
        // Elsewhere it is fine.
        decide(&mut s, "/elsewhere", Seen::Unsigned { schema: 1 }, &me).unwrap();
    }

    #[test]
    fn another_vault_id_at_a_known_path_is_refused_until_trusted() {
        let mut s = known();
        let r = rs(&["age1a"]);
        let other = Seen::Signed {
            vault_id: OTHER_ID,
            generation: 1,
            signer: "age1a",
            recipients: &r,
            db_sha256: "x",
        };
        assert_eq!(
            decide(&mut s, P, other, &me).unwrap_err(),
            Refusal::OtherVault
        );
        // The same vault elsewhere (a second checkout) is fine.
        let r5 = rs(&["age1a", "age1b", "age1me"]);
        decide(&mut s, "/other/checkout", signed(5, "age1a", &r5), &me).unwrap();
        // `vault trust` moves the path to the new vault.
        replace(&mut s, P, other);
        assert_eq!(s.at_path(P).unwrap().0, OTHER_ID);
        assert!(!s.vaults[ID].paths.contains(P));
        decide(&mut s, P, other, &me).unwrap();
    }

    #[test]
    fn writes_refuse_removed_members_unless_allowed_or_added_explicitly() {
        let mut s = known();
        let r = rs(&["age1a", "age1me"]);
        decide(&mut s, P, signed(6, "age1a", &r), &me).unwrap();
        assert_eq!(s.vaults[ID].removed.get("age1b"), Some(&6));
        // A replayed older file (gen 5) lists b: its write is refused...
        let old = rs(&["age1a", "age1b", "age1me"]);
        let err = check_write(&s, ID, 5, &old, &old, false).unwrap_err();
        assert_eq!(
            err,
            Refusal::Removed {
                member: "age1b".into(),
                generation: 6
            }
        );
        // ...unless --allow-older, or the write adds b back on purpose.
        check_write(&s, ID, 5, &old, &old, true).unwrap();
        check_write(&s, ID, 5, &r, &old, false).unwrap();
        // The write that goes through is the newest generation, and its
        // recipients the trusted set.
        let g = next_generation(&s, ID, 5);
        assert_eq!(g, 7);
        record_write(&mut s, P, ID, g, &r, &old, "h7");
        assert!(s.vaults[ID].members.contains("age1b"));
        assert!(s.vaults[ID].removed.is_empty());
        assert_eq!(next_generation(&s, ID, 100), 101);
        assert_eq!(next_generation(&State::default(), ID, 0), 1);
    }

    #[test]
    fn a_write_removes_only_whom_its_own_file_listed_and_it_dropped() {
        // Generation 6 (another branch) added c; this write starts from
        // the older generation 5, which lists a, b and me, and drops b.
        let mut s = known();
        let with_c = rs(&["age1a", "age1b", "age1me", "age1c"]);
        decide(&mut s, P, signed(6, "age1a", &with_c), &me).unwrap();
        let before = rs(&["age1a", "age1b", "age1me"]);
        let after = rs(&["age1a", "age1me"]);
        check_write(&s, ID, 5, &before, &after, false).unwrap();
        let g = next_generation(&s, ID, 5);
        record_write(&mut s, P, ID, g, &before, &after, "h7");
        let k = &s.vaults[ID];
        assert_eq!(k.generation, 7);
        assert_eq!(k.removed.get("age1b"), Some(&7), "b was dropped");
        assert!(!k.members.contains("age1b"));
        assert!(
            k.members.contains("age1c") && !k.removed.contains_key("age1c"),
            "c was never in this write's file: still a member"
        );
        // A file that still lists b is refused a write; one listing c is
        // not, and c may sign.
        check_write(&s, ID, 6, &with_c, &with_c, false).unwrap_err();
        let c_only = rs(&["age1a", "age1me", "age1c"]);
        check_write(&s, ID, 7, &c_only, &c_only, false).unwrap();
        decide(&mut s, P, signed(8, "age1c", &c_only), &me).unwrap();
        // Reading your own write again changes nothing.
        let mut s = known();
        decide(&mut s, P, signed(6, "age1a", &with_c), &me).unwrap();
        record_write(&mut s, P, ID, 7, &before, &before, "h7");
        let recorded = s.clone();
        decide(&mut s, P, signed(7, "age1me", &before), &me).unwrap();
        // (`signed` hashes as "h{generation}".)
        assert_eq!(s, recorded);
        assert!(s.vaults[ID].members.contains("age1c"));
    }

    /// A sibling file (the generation already seen, another database: a
    /// branch made before the removal) does not bring a removed member
    /// back, and a write from it is refused.
    #[test]
    fn a_sibling_at_the_same_generation_does_not_undo_a_removal() {
        let mut s = known();
        let all = rs(&["age1a", "age1b", "age1me"]);
        let without_b = rs(&["age1a", "age1me"]);
        record_write(&mut s, P, ID, 6, &all, &without_b, "mine-6");
        assert_eq!(s.vaults[ID].removed.get("age1b"), Some(&6));
        decide(&mut s, P, signed(6, "age1a", &all), &me).unwrap();
        let k = &s.vaults[ID];
        assert!(!k.members.contains("age1b"), "{k:?}");
        assert_eq!(k.removed.get("age1b"), Some(&6));
        assert!(check_write(&s, ID, 6, &all, &all, false).is_err());
        check_write(&s, ID, 6, &all, &all, true).unwrap();
        // A newer file that lists b again (a member re-added b) does.
        decide(&mut s, P, signed(7, "age1a", &all), &me).unwrap();
        assert!(s.vaults[ID].members.contains("age1b"));
    }

    /// A reader who first saw the vault after b was removed never saw b
    /// go: a replayed older file that lists b still cannot be written
    /// back to b.
    #[test]
    fn a_replay_is_refused_even_by_a_reader_who_never_saw_the_removal() {
        let mut s = State::default();
        let newest = rs(&["age1a", "age1me"]);
        decide(&mut s, P, signed(5, "age1a", &newest), &me).unwrap();
        let old = rs(&["age1a", "age1b", "age1me"]);
        let notes = decide(&mut s, P, signed(4, "age1a", &old), &me).unwrap();
        assert_eq!(notes.len(), 1, "reported as older");
        assert_eq!(
            check_write(&s, ID, 4, &old, &old, false).unwrap_err(),
            Refusal::Removed {
                member: "age1b".into(),
                generation: 5
            }
        );
        check_write(&s, ID, 4, &old, &old, true).unwrap();
        // Adding b on purpose (b not in the file written from) is a choice.
        check_write(&s, ID, 4, &newest, &old, false).unwrap();
    }

    #[test]
    fn replace_with_an_unsigned_file_frees_the_path() {
        let mut s = known();
        replace(&mut s, P, Seen::Unsigned { schema: 1 });
        assert!(s.at_path(P).is_none());
        decide(&mut s, P, Seen::Unsigned { schema: 1 }, &me).unwrap();
    }

    #[test]
    fn the_file_round_trips_and_a_damaged_one_is_an_error() {
        let mut s = known();
        let r = rs(&["age1a"]);
        decide(&mut s, P, signed(9, "age1a", &r), &me).unwrap();
        decide(&mut s, P, signed(2, "age1a", &r), &me).unwrap();
        assert_eq!(parse(render(&s).as_bytes()), Some(s.clone()));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), State::default());
        store.update(|st| *st = s.clone()).unwrap();
        assert_eq!(store.load().unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dir.path().join("trusted.lock").exists());
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"version": 2, "vaults": {}}"#,
            r#"{"version": 1, "vaults": {"xyz": {}}}"#,
        ] {
            crate::fsio::write_fixture(store.path(), bad);
            assert!(store.load().is_err(), "{bad}");
        }
    }

    #[test]
    fn update_without_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.update(|_| ()).unwrap();
        assert!(!store.path().exists());
        assert!(!dir.path().join("trusted.lock").exists());
    }
}
