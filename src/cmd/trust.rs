//! `vault trust`: look at a vault that the trust check refuses (a rebuilt
//! vault, a new vault id at a known path, a signer you do not trust yet)
//! and, once the user confirms, make its members the trusted set
//! (DESIGN v2 "Trust", "Refusals"). An unsigned file (re-encrypted by hand
//! with stock age after a recovery) is signed by you once you vouch for it.

use std::io::IsTerminal;

use crate::{
    context::Context,
    error::{Error, Result},
    sign, unlock, vault,
};

pub(crate) fn run(ctx: &Context, yes: bool) -> Result<()> {
    let keys = unlock::for_read(ctx)?;
    let candidate = vault::inspect(&ctx.paths, &keys)?;
    let mine = |r: &str| if keys.is_mine(r) { " (you)" } else { "" };
    let mut out = format!("vault:      {}\n", ctx.paths.file.display());
    match (&candidate.meta, &candidate.signer) {
        (Some(meta), Some(signer)) => {
            out += &format!("vault id:   {}\n", meta.id_hex());
            let highest = crate::trust::Store::new(&ctx.paths.dir)
                .load()
                .ok()
                .and_then(|st| st.vaults.get(&meta.id_hex()).map(|k| k.generation))
                .filter(|&h| h > meta.generation);
            match highest {
                // An older file (a replay, an old checkout): trusting it
                // takes its members, not its generation.
                Some(h) => {
                    out += &format!(
                        "generation: {} (older than generation {h} seen before)\n",
                        meta.generation
                    )
                }
                None => out += &format!("generation: {}\n", meta.generation),
            }
            out += &format!(
                "signed by:  {signer}{} ({})\n",
                mine(signer),
                sign::fingerprint(signer)
            );
        }
        _ => out += "signed by:  nobody (trusting it signs it with your key)\n",
    }
    out += &format!("members ({}):\n", candidate.recipients.len());
    for r in &candidate.recipients {
        out += &format!("  {r}{}\n", mine(r));
    }
    crate::output::print(&out)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::new(
                "refusing to trust without confirmation: there is no terminal to ask on",
            )
            .hint("check the members above, then pass --yes"));
        }
        if !crate::term::confirm("Trust this signer and these members for this vault? [y/N] ")? {
            return Err(Error::new("nothing trusted").hint("answer `y` to trust, or pass --yes"));
        }
    }
    if candidate.signer.is_some() {
        vault::accept(&ctx.paths, &candidate)?;
    } else {
        // Unsigned (version 1, or re-encrypted by hand): you vouch for it,
        // so it is signed by you now.
        vault::resign(&ctx.paths, keys)?;
    }
    crate::output::stderr_line(&format!("Trusted {}", ctx.paths.file.display()));
    Ok(())
}
