//! `vault run --redact`: the one case where `vault` does not exec its
//! command but stays as its parent (DESIGN.md, "v2: CI and output"), to
//! copy the command's stdout and stderr through a `redact::Redactor`.
//!
//! Being in between must change nothing else the caller can see:
//!
//! - The child gets exactly the environment `exec` would give it, and the
//!   caller's umask and core limit (restored only around the spawn: this
//!   process keeps its hardening, it holds the secrets). stdin is shared.
//! - When our stdout and stderr are one file (`2>&1`, a CI log), the child
//!   gets one pipe for both, so their interleaving is kept.
//! - Signals another process sends us (SIGINT, SIGTERM, SIGHUP, SIGQUIT,
//!   SIGUSR1, SIGUSR2, SIGWINCH) are passed on. One the kernel sends (a
//!   Ctrl-C or a resize of the terminal) went to the whole foreground
//!   process group, the child included, and is not sent twice: the
//!   signal's `si_code` (SI_USER and friends against SI_KERNEL) tells,
//!   read through signal-hook's `WithOrigin`.
//! - When our output is closed, our end of the child's pipe is closed
//!   too, so the child gets EPIPE or SIGPIPE as it would have.
//! - We exit with the child's status, or die of the child's signal (its
//!   default action restored first), so a shell sees 143 for a SIGTERM.
//!
//! Like a pipe into `cat`, `vault` waits until the command has exited and
//! every process holding its output has closed it.

use std::{
    ffi::OsString,
    fs::File,
    io::{self, Read, Write},
    os::{
        fd::{AsFd, BorrowedFd},
        unix::process::ExitStatusExt,
    },
    process::{Child, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread,
};

use rustix::{
    io::Errno,
    process::{Pid, Signal, WaitId, WaitIdOptions},
};
use signal_hook::{
    consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH},
    iterator::{SignalsInfo, exfiltrator::WithOrigin},
    low_level::siginfo::{Cause, Origin},
};

use crate::{
    env::ChildEnv,
    error::{Error, Result, describe_io},
    exec,
    hardening::Hardening,
    redact::{self, Copied, Redactor},
};

/// The signals passed on to the child when another process sends them.
pub(crate) const FORWARDED: &[i32] =
    &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH];

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

/// Runs `argv` in `env` as our child, its output through `redactor`, and
/// returns how it ended. Fails (127, 126, 1) only before it runs.
pub(crate) fn run(
    hardening: &Hardening,
    argv: &[OsString],
    env: &ChildEnv,
    redactor: Redactor,
) -> Result<Exit> {
    let mut cmd = exec::command(argv, env)?;
    let stdout = dup(io::stdout().as_fd())?;
    let stderr = dup(io::stderr().as_fd())?;
    let merged = same_file(&stdout, &stderr);
    let mut shared = None;
    if merged {
        let (reader, writer) = io::pipe().map_err(pipe_error)?;
        let writer2 = writer.try_clone().map_err(pipe_error)?;
        cmd.stdout(writer).stderr(writer2);
        shared = Some(reader);
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }

    // Watch before the child exists, so no signal falls between the two.
    let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)
        .map_err(|e| Error::new(format!("cannot watch for signals: {}", describe_io(&e))))?;

    hardening.restore();
    let spawned = cmd.spawn();
    hardening.reapply();
    // `cmd` holds our copies of a shared pipe's write end: without closing
    // them, the copy would never see the end of the output.
    drop(cmd);
    let mut child = spawned.map_err(|e| exec::start_failed(argv, env, &e))?;
    let pid = Pid::from_child(&child);

    let mut pumps = vec![];
    match shared {
        Some(reader) => pumps.push(pump(Box::new(reader), stdout, redactor, "output")),
        None => {
            let out = child.stdout.take().expect("stdout was piped");
            let err = child.stderr.take().expect("stderr was piped");
            pumps.push(pump(Box::new(out), stdout, redactor.clone(), "stdout"));
            pumps.push(pump(Box::new(err), stderr, redactor, "stderr"));
        }
    }

    let alive = Arc::new(Mutex::new(true));
    let handle = signals.handle();
    let watcher = {
        let alive = Arc::clone(&alive);
        thread::spawn(move || {
            for origin in signals.forever() {
                forward(&origin, pid, &alive);
            }
        })
    };

    let status = wait(&mut child, pid, &alive);
    // Drain what the child (or a process it left behind) still writes,
    // still reacting to signals meanwhile.
    let mut lost = vec![];
    for p in pumps {
        if let Ok(Some(problem)) = p.join() {
            lost.push(problem);
        }
    }
    handle.close();
    let _ = watcher.join();
    let status = status?;
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        // Neither: not on Unix; report a failure the shell's way.
        (None, None) => Exit::Code(1),
    };
    // Output that could not be written (a full disk; not a reader that
    // went away) is an error, exit 1, as any write of vault's own would
    // be (DESIGN v2 "Hardening"): unless the command failed by itself, its
    // success (or the SIGPIPE our closing its pipe gave it) does not
    // stand for a log that is lost.
    let ours = matches!(exit, Exit::Code(0) | Exit::Code(141) | Exit::Signal(13));
    for text in &lost {
        let level = if ours { "error" } else { "warning" };
        let _ = writeln!(io::stderr(), "vault: {level}: {text}");
    }
    if !lost.is_empty() && ours {
        let _ = writeln!(
            io::stderr(),
            "hint: free some disk space (or raise the file-size limit) and run the command again"
        );
        return Ok(Exit::Code(1));
    }
    Ok(exit)
}

/// Ends this process as the child ended: its exit code, or death by its
/// signal with the default action (so a shell sees 128 + N, and a parent
/// `waitpid` sees the signal). Call it once every secret is dropped.
pub(crate) fn finish(exit: Exit) -> ! {
    match exit {
        Exit::Code(code) => std::process::exit(code),
        Exit::Signal(sig) => {
            // Resets the disposition to the default, unblocks, raises.
            let _ = signal_hook::low_level::emulate_default_handler(sig);
            // A signal whose default is not to terminate cannot have killed
            // the child; if we are still here, say it the shell's way.
            std::process::exit(128 + sig)
        }
    }
}

/// Passes one signal on, or not. Once the child has been reaped, its pid
/// may belong to someone else: then nothing is sent, and the signal acts
/// on us as if no handler were installed (we are only draining output).
fn forward(origin: &Origin, child: Pid, alive: &Mutex<bool>) {
    let alive = alive.lock().unwrap_or_else(PoisonError::into_inner);
    if !*alive {
        let _ = signal_hook::low_level::emulate_default_handler(origin.signal);
        return;
    }
    if !sent_by_another_process(origin, child) {
        return;
    }
    if let Some(sig) = Signal::from_named_raw(origin.signal) {
        let _ = rustix::process::kill_process(child, sig);
    }
}

/// Whether a process sent the signal (kill, sigqueue, tkill), and not the
/// child itself (which would only get its own signal back). The kernel's
/// signals (the terminal's) have reached the child already.
fn sent_by_another_process(origin: &Origin, child: Pid) -> bool {
    matches!(origin.cause, Cause::Sent(_))
        && origin
            .process
            .is_none_or(|p| p.pid != child.as_raw_nonzero().get())
}

/// Waits for the child to end without reaping it, marks it gone under the
/// lock `forward` takes, and only then reaps it: no signal can reach a
/// process that took over its pid.
fn wait(child: &mut Child, pid: Pid, alive: &Mutex<bool>) -> Result<std::process::ExitStatus> {
    let waited = loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(Errno::INTR) => continue,
            other => break other,
        }
    };
    *alive.lock().unwrap_or_else(PoisonError::into_inner) = false;
    waited.map_err(|e| wait_error(io::Error::from(e)))?;
    child.wait().map_err(wait_error)
}

fn wait_error(e: io::Error) -> Error {
    Error::new(format!("cannot wait for the command: {}", describe_io(&e)))
}

fn pipe_error(e: io::Error) -> Error {
    Error::new(format!(
        "cannot make a pipe for the command's output: {}",
        describe_io(&e)
    ))
}

/// Copies one output of the child through its own redactor, in a thread.
fn pump(
    mut from: Box<dyn Read + Send>,
    to: File,
    mut redactor: Redactor,
    what: &'static str,
) -> thread::JoinHandle<Option<String>> {
    thread::spawn(move || {
        let mut to = to;
        let problem = match redact::copy(&mut redactor, &mut from, &mut to) {
            Copied::Done | Copied::Closed => None,
            Copied::WriteFailed(e) => Some(("write", e)),
            Copied::ReadFailed(e) => Some(("read", e)),
        };
        // Closing our end tells the child, at its next write, that its
        // output is gone (EPIPE or SIGPIPE), as it would have learnt
        // without us in between.
        drop(from);
        // Said by `run` once the child has ended (not `eprintln!`, which
        // panics when stderr is what failed).
        problem.map(|(verb, e)| {
            format!(
                "cannot {verb} the command's {what}: {}; the rest of it is lost",
                describe_io(&e)
            )
        })
    })
}

/// A file of our own for fd 1 or 2, written without std's buffering.
fn dup(fd: BorrowedFd<'_>) -> Result<File> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Error::new(format!("cannot use vault's output: {}", describe_io(&e))))
}

/// Whether two descriptors are the same file (stdout and stderr after
/// `2>&1`, or one terminal).
fn same_file(a: &File, b: &File) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}
