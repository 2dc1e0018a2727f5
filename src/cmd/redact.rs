//! `vault run --redact[=always]` and `vault redact [SOURCE]…` (issue 19):
//! which values are masked (every value a source set, never an inherited
//! one), and when `run` masks at all. The replacing is `redact`'s, the
//! parent that forwards signals `supervise`'s.

use std::{
    ffi::OsString,
    fs::File,
    io::{self, IsTerminal},
    os::fd::AsFd,
};

use crate::{
    Context,
    cli::{RedactArgs, RedactWhen},
    env::ChildEnv,
    error::{Error, Result, describe_io},
    redact::{self, Copied, Redactor},
    supervise,
};

/// Whether `run --redact=WHEN` masks: always with `always`; otherwise not
/// when stdout and stderr are both terminals, where a pipe in between
/// breaks colours and full-screen programs (`op run`'s top complaint)
/// and a person, not a log, is watching.
pub(crate) fn wanted(when: RedactWhen) -> bool {
    when == RedactWhen::Always || !(io::stdout().is_terminal() && io::stderr().is_terminal())
}

/// `run --redact`: the command as our child, its output masked; ends this
/// process as the command ended. Returns only an error from before it ran.
pub(crate) fn run(
    ctx: &Context,
    argv: &[OsString],
    env: ChildEnv,
    redactor: Redactor,
) -> Result<()> {
    let exit = supervise::run(&ctx.hardening, argv, &env, redactor)?;
    // `finish` does not return: wipe the values first.
    drop(env);
    supervise::finish(exit)
}

/// `vault redact`: stdin to stdout, masked.
pub(crate) fn filter(ctx: &Context, args: RedactArgs) -> Result<()> {
    let env = super::run::build(ctx, &args.env, false)?;
    if args.env.explain {
        return super::run::explain(ctx, &env, &args.env);
    }
    super::run::check(ctx, &env, &args.env)?;
    let mut redactor = redactor(&env)?;
    drop(env);
    let mut out = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Error::new(format!("cannot use stdout: {}", describe_io(&e))))?;
    match redact::copy(&mut redactor, &mut io::stdin().lock(), &mut out) {
        Copied::Done | Copied::Closed => Ok(()),
        Copied::WriteFailed(e) => Err(crate::output::stdout_error(&e)),
        Copied::ReadFailed(e) => Err(Error::new(format!(
            "cannot read stdin: {}",
            describe_io(&e)
        ))),
    }
}

/// The filter for every value the sources set; a warning when none is long
/// enough to mask, since the output then passes unchanged.
pub(crate) fn redactor(env: &ChildEnv) -> Result<Redactor> {
    let redactor = Redactor::new(redact::patterns(env.source_values()))?;
    if redactor.is_empty() {
        crate::term::warn(&format!(
            "no source sets a value of {} bytes or more: nothing will be masked",
            redact::MIN_LEN
        ));
    }
    Ok(redactor)
}
