//! `vault git merge BASE OURS THEIRS [PATH]`: git's merge driver (DESIGN
//! v2 "Git"). Keys without a prompt; the three files loaded and verified
//! (`vault::load_merge`); the merge (`merge::apply`); the result written
//! over OURS (`MergeInputs::write`); each conflict named on stderr, never
//! a value, and exit 1 so that git stops.

use std::{
    hash::RandomState,
    path::{Path, PathBuf},
};

use crate::{
    context::{Context, Paths},
    error::{Error, Result},
    merge,
    output::note,
    unlock, vault,
};

pub(crate) fn run(
    ctx: &Context,
    base: &Path,
    ours: &Path,
    theirs: &Path,
    path: Option<&Path>,
) -> Result<()> {
    // The vault as the user knows it: git's PATH (relative to the top of
    // the work tree, where git runs the driver), else the file OURS.
    let shown = path.unwrap_or(ours).display().to_string();
    let Some(keys) = unlock::without_prompt(ctx)? else {
        return Err(Error::new(format!(
            "cannot merge {shown}: no identity to open it with, and the merge driver never asks for a passphrase"
        ))
        .hint("give git one: VAULT_IDENTITY=key.txt (or VAULT_AGE_KEY, or VAULT_PASSPHRASE_FILE), or run `vault unlock` first, then `git merge` again"));
    };
    let vault_path = match path {
        Some(p) => absolute(p)?,
        None => absolute(ours)?,
    };
    let at = path.map(|p| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| vault_path.clone())
            .display()
            .to_string()
    });
    let paths = Paths {
        allow_older: ctx.paths.allow_older,
        ..Paths::new(ctx.paths.dir.clone(), Some(vault_path))
    };
    let hasher = RandomState::new();
    // Each input by its role, and by git's PATH when given (its three
    // files are git's temporary copies of that one vault), else by its
    // own name: without PATH, "OURS (base)" named the wrong file.
    let label = |file: &Path, side: &str| match path {
        Some(p) => format!("{} ({side})", p.display()),
        None => format!("{} ({side})", file.display()),
    };
    let mut inputs = vault::load_merge(
        &paths,
        at.as_deref(),
        [
            (base, label(base, "base")),
            (ours, label(ours, "ours")),
            (theirs, label(theirs, "theirs")),
        ],
        &keys,
        |conn, role| merge::summarize(conn, &hasher, role),
    )?;
    if inputs.ours.provenance.meta.is_none() {
        // A version-1 OURS: the result is the signed side's vault.
        if let Some(side) = [&inputs.theirs, &inputs.base]
            .into_iter()
            .find(|i| i.provenance.meta.is_some())
        {
            merge::adopt_identity(&inputs.ours.conn, &side.conn)?;
        }
    }
    let author = keys.recipients().first().cloned().unwrap_or_default();
    let ours_recipients = inputs.ours.provenance.recipients.clone();
    let report = merge::apply(
        &mut inputs.ours.conn,
        (&inputs.ours.summary, &ours_recipients),
        &merge::Side {
            conn: &inputs.base.conn,
            summaries: &inputs.base.summary,
            recipients: &inputs.base.provenance.recipients,
        },
        &merge::Side {
            conn: &inputs.theirs.conn,
            summaries: &inputs.theirs.summary,
            recipients: &inputs.theirs.provenance.recipients,
        },
        &author,
        &hasher,
    )?;
    // Every entry of OURS was checked as the loader read it; only what the
    // merge wrote needs checking again (all of it, if a row failed).
    let checked = inputs
        .ours
        .summary
        .entries_valid()
        .then_some(report.touched.as_slice());
    inputs.write(&paths, ours, &keys, checked, &shown)?;
    if report.descriptions > 0 {
        note!(
            "Merged {shown}: {} description{} of keys taken from the other branch",
            report.descriptions,
            plural(report.descriptions)
        );
    }
    for c in &report.description_clashes {
        note!(
            "Merged {shown}: both branches changed the description of {c}; this branch's is kept"
        );
    }
    for m in &report.removed_members {
        note!("Merged {shown}: {m} is no longer a member (removed on a branch)");
    }
    for m in &report.added_members {
        note!("Merged {shown}: {m} is a member (added on the other branch)");
    }
    if report.marked > 0 {
        note!(
            "Merged {shown}: {} secret{} marked for rotation (a removed member could read them on a branch)",
            report.marked,
            plural(report.marked)
        );
    }
    if report.conflicts.is_empty() {
        note!(
            "Merged {shown}: {} secret{} changed by the other branch taken, no conflicts",
            report.changed,
            plural(report.changed)
        );
        return Ok(());
    }
    for c in &report.conflicts {
        let what = match (&c.key, &c.base, &c.ours, &c.theirs) {
            (None, _, None, _) => "deleted on this branch, changed on the other",
            (None, _, _, None) => "changed on this branch, deleted on the other",
            (None, _, _, _) => "changed on both branches, no key can be kept",
            (Some(_), None, _, _) => "added on both branches with different values",
            (Some(_), _, None, _) => "removed on this branch, changed on the other",
            (Some(_), _, _, None) => "changed on this branch, removed on the other",
            (Some(_), _, _, _) => "changed on both branches",
        };
        note!("CONFLICT (vault): {}: {what}", c.label());
    }
    let n = report.conflicts.len();
    let flag = match path {
        Some(p) => format!(" --vault {}", p.display()),
        None => String::new(),
    };
    Err(Error::new(format!(
        "merging {shown} left {n} conflict{}: this branch's values stay in place until resolved",
        plural(n)
    ))
    .hint(format!(
        "`vault conflicts list{flag}`, then `vault conflicts resolve{flag} ENV/NAME [KEY] --take ours|theirs|base`, `git add {shown}` and `git commit`"
    )))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}
