//! Replacing `vault` with the command `run` was asked to start.
//!
//! By `exec`, not spawn: the child keeps our pid, so its exit status and the
//! signals it gets are the caller's with nothing in between. Before exec the
//! caller's umask and core limit come back (our hardening must not leak into
//! `npm install`); argv goes to `execvp` exactly as given, never through a
//! shell. Failures map to the shell's exit codes: 127 not found, 126 found
//! but not executable. An environment too large to exec (E2BIG) is caught
//! before trying, with its size, and again if exec itself says so.

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    path::PathBuf,
    process::Command,
};

use rustix::io::Errno;

use crate::{
    env::ChildEnv,
    error::{Error, Kind},
    hardening::Hardening,
    names::printable,
};

/// Linux's `MAX_ARG_STRLEN`: the longest single argument or `KEY=VALUE`
/// string, its NUL included.
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// Linux's `ARG_MAX`: exec always allows at least this much.
const ARG_MAX_FLOOR: u64 = 32 * 4096;
/// Linux never allows more than three quarters of the default 8 MiB stack
/// (`_STK_LIM / 4 * 3`), whatever the stack limit.
const ARG_MAX_CEILING: u64 = 6 << 20;

/// Replaces this process with `argv` in `env`. Returns only on failure.
pub(crate) fn exec(hardening: &Hardening, argv: &[OsString], env: &ChildEnv) -> Error {
    let vars = env.vars();
    if argv.is_empty() {
        return no_command();
    }
    if let Err(e) = check_size(argv, &vars) {
        return e;
    }
    let (Some(c_argv), Some(c_env)) = (
        cstrings(argv.iter().map(|a| a.as_encoded_bytes().to_vec())),
        cstrings(vars.iter().map(|(k, v)| {
            let mut kv = k.as_encoded_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            kv
        })),
    ) else {
        // Arguments come from a C argv and values are checked for NUL
        // when stored, so this is an internal error.
        return Error::new("internal error: a NUL byte in the command or its environment");
    };
    hardening.restore();
    let err = execvp_no_shell(&argv[0], &c_argv, &c_env, &vars);
    start_failed(argv, env, &err)
}

fn no_command() -> Error {
    Error::usage("no command to run").hint("give it after `--`: `vault run -s NAME -- COMMAND`")
}

/// The PATH the command gets: its own, else glibc's default.
fn child_path<'a>(vars: &[(&'a OsStr, &'a OsStr)]) -> &'a OsStr {
    vars.iter()
        .find(|(k, _)| *k == "PATH")
        .map_or(OsStr::new("/bin:/usr/bin"), |(_, v)| *v)
}

fn cstrings(items: impl Iterator<Item = Vec<u8>>) -> Option<Vec<CString>> {
    items.map(|b| CString::new(b).ok()).collect()
}

/// `execvp(3)` without its fallback: glibc runs a file that the kernel
/// refuses as not executable (`ENOEXEC`: no `#!` line, another machine's
/// binary, random bytes) through `/bin/sh`, and DESIGN says the command is
/// never run through a shell: it fails with 126 instead. The search is
/// execvp's otherwise: a name with a `/` is run as it is, a bare name is
/// tried in each directory of the child's PATH (an empty entry is the
/// current directory; no PATH is glibc's default `/bin:/usr/bin`), going on
/// past a directory where it is missing or not permitted, and `EACCES` is
/// reported if any try gave it. The signal state is reset as std's
/// `Command::exec` does: an empty mask, and SIGPIPE back to its default
/// (Rust starts with it ignored, and an ignored signal stays ignored across
/// exec). Returns only on failure.
#[allow(unsafe_code)]
fn execvp_no_shell(
    program: &OsStr,
    argv: &[CString],
    env: &[CString],
    vars: &[(&OsStr, &OsStr)],
) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let bytes = program.as_encoded_bytes();
    let candidates: Vec<Vec<u8>> = if bytes.contains(&b'/') {
        vec![bytes.to_vec()]
    } else if bytes.is_empty() {
        return io::Error::from_raw_os_error(libc::ENOENT);
    } else {
        child_path(vars)
            .as_encoded_bytes()
            .split(|&b| b == b':')
            .map(|dir| {
                let mut p = dir.to_vec();
                if !p.is_empty() && !p.ends_with(b"/") {
                    p.push(b'/');
                }
                p.extend_from_slice(bytes);
                p
            })
            .collect()
    };
    // SAFETY: plain libc calls on initialised, local values.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let mut denied = false;
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for candidate in candidates {
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        // SAFETY: `path` and both arrays are NUL-terminated C strings and
        // NULL-terminated pointer arrays that outlive the call.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EACCES) => denied = true,
            Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT) => {}
            _ => return err,
        }
        last = err;
    }
    if denied {
        io::Error::from_raw_os_error(libc::EACCES)
    } else {
        last
    }
}

/// `argv` with exactly `env`, checked against exec's limits: what `exec`
/// replaces us with, and what `run --redact` spawns.
pub(crate) fn command(argv: &[OsString], env: &ChildEnv) -> Result<Command, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(no_command());
    };
    let vars = env.vars();
    check_size(argv, &vars)?;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(vars.iter().copied());
    Ok(cmd)
}

/// The one-line error, with the shell's exit code, for a command that
/// `command` built and that could not be exec'd or spawned.
pub(crate) fn start_failed(argv: &[OsString], env: &ChildEnv, err: &io::Error) -> Error {
    let program = argv.first().map_or(OsStr::new(""), OsString::as_os_str);
    failed(program, err, argv, &env.vars())
}

/// Bytes exec copies onto the new stack: every string with its NUL, and a
/// pointer for each (Linux counts both against its limit).
pub(crate) fn exec_size(argv: &[OsString], vars: &[(&OsStr, &OsStr)]) -> u64 {
    let strings: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>()
        + vars
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len() + 1)
            .sum::<usize>();
    let pointers = (argv.len() + vars.len() + 2) * size_of::<usize>();
    (strings + pointers) as u64
}

/// What exec accepts here: a quarter of the stack limit, at least
/// `ARG_MAX_FLOOR` and at most `ARG_MAX_CEILING` (Linux's `bprm_stack_limits`).
pub(crate) fn exec_limit() -> u64 {
    let stack = rustix::process::getrlimit(rustix::process::Resource::Stack).current;
    let quarter = stack.map_or(u64::MAX, |s| s / 4);
    quarter.clamp(ARG_MAX_FLOOR, ARG_MAX_CEILING)
}

fn check_size(argv: &[OsString], vars: &[(&OsStr, &OsStr)]) -> Result<(), Error> {
    for (i, a) in argv.iter().enumerate() {
        if a.len() + 1 > MAX_ARG_STRLEN {
            return Err(Error::new(format!(
                "argument {i} of the command is {} bytes, more than exec accepts in one argument ({MAX_ARG_STRLEN})",
                a.len() + 1
            ))
            .hint("pass large data through a file or stdin"));
        }
    }
    for (k, v) in vars {
        let len = k.len() + 1 + v.len() + 1;
        if len > MAX_ARG_STRLEN {
            return Err(Error::new(format!(
                "the variable `{}` is {len} bytes, more than exec accepts in one variable ({MAX_ARG_STRLEN})",
                printable(&k.to_string_lossy())
            ))
            .hint("keep large data in a file and put its path in the environment"));
        }
    }
    let (size, limit) = (exec_size(argv, vars), exec_limit());
    if size > limit {
        return Err(too_big(size, Some(limit)));
    }
    Ok(())
}

fn too_big(size: u64, limit: Option<u64>) -> Error {
    let limit = match limit {
        Some(l) => format!("the {l} bytes exec accepts here"),
        None => "what exec accepts here".to_string(),
    };
    Error::new(format!(
        "the environment and arguments are too large to run the command: {size} bytes, more than {limit}"
    ))
    .hint("pass fewer or smaller secrets (large data belongs in a file); exec allows a quarter of the stack limit, `ulimit -s`, up to 6 MiB")
}

/// The one-line error for a failed exec, with the shell's exit code.
fn failed(program: &OsStr, err: &io::Error, argv: &[OsString], vars: &[(&OsStr, &OsStr)]) -> Error {
    let shown = printable(&program.to_string_lossy());
    let errno = err.raw_os_error().map(Errno::from_raw_os_error);
    match errno {
        Some(Errno::TOOBIG) => too_big(exec_size(argv, vars), None),
        // ENOENT for a file that exists: its `#!` interpreter does not.
        Some(Errno::NOENT) if locate(program, vars).is_some() => Error::new(format!(
            "cannot execute `{shown}`: the interpreter on its `#!` line was not found"
        ))
        .kind(Kind::NotExecutable)
        .hint("fix the `#!` line, or install the interpreter it names"),
        Some(Errno::NOENT | Errno::NOTDIR) if program.as_encoded_bytes().contains(&b'/') => {
            Error::new(format!("cannot run `{shown}`: no such file"))
                .kind(Kind::NotFound)
                .hint("check the path")
        }
        // Never handed to /bin/sh instead (`execvp_no_shell`).
        Some(Errno::NOEXEC) => Error::new(format!(
            "cannot execute `{shown}`: not a program for this machine, and no `#!` line"
        ))
        .kind(Kind::NotExecutable)
        .hint("a script needs a first line such as `#!/bin/sh`; vault never runs a command through a shell"),
        Some(Errno::NOENT | Errno::NOTDIR) => Error::new(format!("command not found: `{shown}`"))
            .kind(Kind::NotFound)
            .hint("check the spelling, or that its directory is on the PATH the command gets"),
        _ => Error::new(format!(
            "cannot execute `{shown}`: {}",
            crate::error::describe_io(err)
        ))
        .kind(Kind::NotExecutable)
        .hint("is it a program, or a script with a `#!` line and execute permission (`chmod +x`)?"),
    }
}

/// Where execvp would have found `program`: itself if it holds a `/`, else
/// the first file of that name on the child's PATH (glibc's default PATH
/// when there is none).
fn locate(program: &OsStr, vars: &[(&OsStr, &OsStr)]) -> Option<PathBuf> {
    if program.as_encoded_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(child_path(vars))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
