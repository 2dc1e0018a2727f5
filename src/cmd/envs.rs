//! `vault env list`: the environments secrets belong to (DESIGN v2
//! "Environments"). An environment exists while it holds a secret; `main`
//! always does.

use crate::output::out;
use serde_json::json;

use super::table;
use crate::{cli::EnvCommand, context::Context, error::Result, store, unlock, vault::Vault};

pub(crate) fn run(ctx: &Context, command: EnvCommand) -> Result<()> {
    match command {
        EnvCommand::List { json } => list(ctx, json),
    }
}

fn list(ctx: &Context, as_json: bool) -> Result<()> {
    let v = Vault::open(&ctx.paths, &unlock::for_read(ctx)?)?;
    let mut envs = store::envs(v.conn())?;
    for always in [store::DEFAULT_ENV, ctx.scope.env.as_str()] {
        if !envs.iter().any(|(e, _)| e == always) {
            envs.push((always.to_string(), 0));
        }
    }
    envs.sort();
    let current = &ctx.scope.env;
    if as_json {
        let arr: Vec<_> = envs
            .iter()
            .map(|(e, n)| json!({"env": e, "secrets": n, "current": e == current}))
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default())?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = envs
        .iter()
        .map(|(e, n)| {
            let mark = if e == current { "*" } else { "" };
            vec![format!("{e}{mark}"), n.to_string()]
        })
        .collect();
    crate::output::print(&table::render(&["ENV", "SECRETS"], &rows))?;
    Ok(())
}
