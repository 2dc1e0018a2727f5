//! `vault unlock`, `lock`, `status` and `passwd`: the commands around the
//! identity's passphrase and the agent that saves typing it.

use crate::output::{note, out};
use std::{path::Path, time::Duration};

use serde_json::json;

use crate::{
    agent,
    context::Context,
    crypto,
    error::{Error, Result},
    store, unlock, vault,
    vault::Vault,
};

pub(crate) fn unlock(ctx: &Context, timeout: Duration) -> Result<()> {
    if unlock::identity_given(ctx) {
        return Err(Error::new(
            "nothing to unlock: --identity / VAULT_IDENTITY or VAULT_AGE_KEY opens the vault without a passphrase",
        )
        .hint("unset VAULT_IDENTITY and VAULT_AGE_KEY to unlock identity.age"));
    }
    let text = unlock::identity_text(ctx).map_err(|e| {
        // "The vault is locked" is wrong while an agent holds the key.
        match agent::status(&ctx.paths.dir) {
            Ok(Some(running))
                if !unlock::passphrase_given(ctx) && !crate::term::have_terminal() =>
            {
                Error::new(format!(
                "an agent already holds the key ({} left), and replacing it needs the passphrase: there is no terminal to ask for it",
                human(running.seconds_left())
            ))
            .hint("the running agent serves every command until it expires; to start a new one, give the passphrase (--passphrase-file / VAULT_PASSPHRASE_FILE, VAULT_PASSPHRASE) or run `vault unlock` in a terminal")
            }
            _ => e,
        }
    })?;
    let status = agent::start(&ctx.paths.dir, &text, timeout)?;
    if !status.memory_locked {
        crate::term::warn(
            "the agent could not lock its memory (RLIMIT_MEMLOCK): the identity may be swapped to disk",
        );
    }
    note!(
        "Unlocked for {} (agent pid {}); `vault lock` locks again",
        human(status.seconds_left()),
        status.pid
    );
    Ok(())
}

pub(crate) fn lock(ctx: &Context) -> Result<()> {
    if agent::stop(&ctx.paths.dir)? {
        note!("Locked");
    } else {
        note!(
            "Already locked: no agent is running for {}",
            ctx.paths.dir.display()
        );
    }
    Ok(())
}

pub(crate) fn status(ctx: &Context, as_json: bool) -> Result<()> {
    let file = &ctx.paths.file;
    let exists = file.exists();
    let agent = agent::status(&ctx.paths.dir)?;
    // Count secrets only when that needs no passphrase.
    let opened = if exists && (agent.is_some() || unlock::identity_given(ctx)) {
        unlock::unlock(ctx)
            .and_then(|k| {
                let v = Vault::open(&ctx.paths, &k)?;
                let n = store::list(v.conn(), None)?.len();
                Ok((n, v.provenance().clone(), k.recipients().to_vec()))
            })
            .ok()
    } else {
        None
    };
    let secrets = opened.as_ref().map(|o| o.0);
    let provenance = opened.as_ref().map(|o| &o.1);
    if as_json {
        let out = json!({
            "vault": file,
            "exists": exists,
            "unlocked": agent.is_some(),
            "seconds_left": agent.as_ref().map(agent::Status::seconds_left),
            "agent_pid": agent.as_ref().map(|a| a.pid),
            "socket": agent.as_ref().map(|a| &a.socket),
            "secrets": secrets,
            "generation": provenance.and_then(|p| p.meta.map(|m| m.generation)),
            "signer": provenance.and_then(|p| p.signer.clone()),
            "signed_by_you": opened.as_ref().and_then(|(_, p, mine)| p.signer.as_ref().map(|s| mine.contains(s))),
        });
        out!("{}", serde_json::to_string_pretty(&out).unwrap_or_default())?;
        return Ok(());
    }
    let mut text = format!(
        "vault:    {} ({})\n",
        file.display(),
        if exists { "exists" } else { "missing" }
    );
    match &agent {
        Some(a) => {
            text += &format!("state:    unlocked, {} left\n", human(a.seconds_left()));
            text += &format!("agent:    pid {}, {}\n", a.pid, a.socket.display());
        }
        None => text += "state:    locked\n",
    }
    if let Some(n) = secrets {
        text += &format!("secrets:  {n}\n");
    }
    if let Some((_, p, mine)) = &opened {
        text += &format!(
            "written:  {}
",
            super::recipients::provenance_line(p, mine)
        );
    }
    // Paths are shown as a table shows them: control characters escaped.
    crate::output::print(&text.lines().fold(String::new(), |mut all, l| {
        all.push_str(&super::table::escape_controls(l));
        all.push('\n');
        all
    }))
}

/// Re-seals `identity.age` with a new passphrase, atomically and under the
/// vault directory's lock. `vault.age` is not touched, and a running agent
/// keeps its (unchanged) identity.
pub(crate) fn passwd(ctx: &Context, new_file: Option<&Path>) -> Result<()> {
    if ctx.sources.identity.is_some() {
        return Err(Error::new(
            "--identity / VAULT_IDENTITY is set: passwd changes the passphrase of identity.age",
        )
        .hint("unset VAULT_IDENTITY"));
    }
    let text = unlock::identity_text(ctx)?;
    let new = match new_file {
        Some(f) => unlock::read_passphrase_file(f)?,
        None => unlock::ask_new_passphrase(unlock::NewFor::Passwd)?,
    };
    let sealed = crypto::seal_identity_text(&text, &new)?;
    vault::replace_identity(&ctx.paths, &sealed)?;
    note!("Changed the passphrase of {}", ctx.paths.identity.display());
    Ok(())
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
