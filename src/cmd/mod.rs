//! One module per command. Commands validate input, call `vault`/`store`,
//! and print; they hold no SQL and no crypto.

mod input;
mod run;
mod secret;
mod table;

use crate::{Context, Result, cli::Command, vault};

pub fn dispatch(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Init => init(ctx),
        Command::Secret(c) => secret::run(ctx, c),
        Command::Run(args) => run::run(ctx, args),
        Command::Shell(args) => run::shell(ctx, args),
    }
}

fn init(ctx: &Context) -> Result<()> {
    vault::init(ctx)?;
    eprintln!("Created the vault at {}", ctx.paths.file.display());
    Ok(())
}
