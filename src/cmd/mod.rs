//! One module per command. Commands validate input, call `vault`/`store`,
//! and print; they hold no SQL and no crypto.

use crate::output::note;
mod agent;
mod completions;
mod conflicts;
mod doctor;
mod edit;
mod envs;
pub(crate) mod export;
mod export_ci;
mod files;
mod generate;
mod git;
mod history;
mod import;
mod input;
mod merge;
mod project;
mod recipients;
mod redact;
mod run;
mod secret;
mod table;
mod trust;

use crate::{
    cli::{Command, GitCommand, Lazy, SecretCommand},
    context::Context,
    error::Result,
    project::Use,
    unlock, vault,
};

/// What each command takes from the project it runs in (DESIGN v2
/// "Projects"): its sources, only its vault and environment, or nothing.
pub(crate) fn project_use(command: &Command) -> Use {
    match command {
        Command::Run(_)
        | Command::Shell(_)
        | Command::Export { .. }
        | Command::Check { .. }
        | Command::Redact(_)
        | Command::Render(_) => Use::Sources,
        // git runs `vault git show FILE` on temporary files, in the
        // repository, where a vault.toml that is not allowed must not
        // stop a diff: with FILE given, the project is not looked at.
        // The merge driver, likewise, works on git's temporary files.
        Command::Git(Lazy(GitCommand::Show { file: Some(_), .. } | GitCommand::Merge { .. })) => {
            Use::Nothing
        }
        // A list built into vault: no vault, so no project either.
        Command::Secret(Lazy(SecretCommand::Templates { .. })) => Use::Nothing,
        Command::Init
        | Command::Git(_)
        | Command::Secret(_)
        | Command::Import(_)
        | Command::Status { .. }
        | Command::Doctor
        | Command::Recipients(_)
        | Command::Trust { .. }
        | Command::Conflicts(_)
        | Command::Env(_) => Use::Settings,
        Command::Unlock { .. }
        | Command::Lock
        | Command::Passwd { .. }
        | Command::Recipient
        | Command::Completions { .. }
        | Command::CompleteSecrets { .. }
        | Command::Agent { .. }
        | Command::ExecFiles { .. }
        | Command::Project(_)
        | Command::Allow { .. }
        | Command::Deny { .. } => Use::Nothing,
    }
}

pub(crate) fn dispatch(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Init => init(ctx),
        Command::Secret(Lazy(c)) => secret::run(ctx, c),
        Command::Import(Lazy(args)) => import::run(ctx, args),
        Command::Unlock { timeout } => agent::unlock(ctx, timeout),
        Command::Lock => agent::lock(ctx),
        Command::Doctor => doctor::run(ctx),
        Command::Completions { shell } => completions::run(shell),
        Command::CompleteSecrets { prefix } => {
            completions::secret_names(ctx, prefix.as_deref().unwrap_or(""))
        }
        Command::Status { json } => agent::status(ctx, json),
        Command::Passwd {
            new_passphrase_file,
        } => agent::passwd(ctx, new_passphrase_file.as_deref()),
        Command::Agent { socket, seconds } => crate::agent::serve(&socket, seconds),
        Command::ExecFiles { command } => files::exec_with_files(ctx, &command),
        Command::Recipients(Lazy(c)) => recipients::run(ctx, c),
        Command::Recipient => recipients::own(ctx),
        Command::Trust { yes } => trust::run(ctx, yes),
        Command::Export {
            names,
            format,
            k8s_name,
        } => export::run(ctx, &names, format, k8s_name.as_deref()),
        Command::Env(Lazy(c)) => envs::run(ctx, c),
        Command::Project(Lazy(c)) => project::init(ctx, c),
        Command::Allow { path } => project::allow(ctx, path.as_deref()),
        Command::Deny { path } => project::deny(ctx, path.as_deref()),
        Command::Check { all_envs } => project::check(ctx, all_envs),
        Command::Git(Lazy(GitCommand::Setup)) => git::setup(ctx),
        Command::Git(Lazy(GitCommand::Show { file, reveal })) => {
            git::show(ctx, file.as_deref(), reveal)
        }
        Command::Git(Lazy(GitCommand::Merge {
            base,
            ours,
            theirs,
            path,
        })) => merge::run(ctx, &base, &ours, &theirs, path.as_deref()),
        Command::Conflicts(Lazy(c)) => conflicts::run(ctx, c),
        Command::Run(Lazy(args)) => run::run(ctx, args),
        Command::Shell(Lazy(args)) => run::shell(ctx, args),
        Command::Redact(Lazy(args)) => redact::filter(ctx, args),
        Command::Render(Lazy(args)) => files::render_command(ctx, args),
    }
}

fn init(ctx: &Context) -> Result<()> {
    vault::refuse_existing(&ctx.paths.file)?;
    vault::init(&ctx.paths, unlock::for_write(ctx)?)?;
    note!("Created the vault at {}", ctx.paths.file.display());
    Ok(())
}
