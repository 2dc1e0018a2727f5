//! The terminal, and the only code that uses it: hidden prompts (a
//! passphrase, a value), line prompts, confirmation, telling "no terminal"
//! apart from other failures, and the colour of stderr's labels.
//!
//! Prompts go to the controlling terminal (`/dev/tty`), never stdin, which
//! may carry data; with no terminal they fail at once instead of hanging.

use std::{
    fs,
    io::{self, BufRead, IsTerminal, Write},
};

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    output,
};

/// A hidden prompt on the controlling terminal: what is typed is not shown.
/// The `io::Error` is returned as is, so that callers word it (and can tell
/// `no_terminal` apart).
#[allow(clippy::disallowed_methods, reason = "term is the home of rpassword")]
pub(crate) fn hidden(prompt: &str) -> io::Result<Zeroizing<String>> {
    // rpassword prints the prompt and only then turns echo off: what is
    // typed the instant the prompt shows (a passphrase typed ahead) was
    // echoed. Echo goes off here first, before the prompt; rpassword
    // restores the state it found (echo still off), and this restores the
    // terminal as it was, on every path.
    let quiet = EchoOff::new();
    let typed = rpassword::prompt_password(prompt).map(Zeroizing::new);
    drop(quiet);
    typed
}

/// The terminal with echo turned off until dropped, then restored as it
/// was; nothing at all where there is no terminal (rpassword then says so).
struct EchoOff {
    tty: Option<(fs::File, rustix::termios::Termios)>,
}

impl EchoOff {
    fn new() -> EchoOff {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let tty = open_tty().ok().and_then(|tty| {
            let was = tcgetattr(&tty).ok()?;
            let mut quiet = was.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            // TCSANOW: input typed ahead stays queued for the prompt.
            tcsetattr(&tty, OptionalActions::Now, &quiet).ok()?;
            Some((tty, was))
        });
        EchoOff { tty }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some((tty, was)) = &self.tty {
            let _ = rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, was);
        }
    }
}

/// `hidden`, for a passphrase.
pub(crate) fn hidden_secret(prompt: &str) -> io::Result<SecretString> {
    hidden(prompt).map(|p| SecretString::from(p.to_string()))
}

/// A line typed on the terminal, shown as typed (for values that are not
/// secret, like a host name).
pub(crate) fn line(prompt: &str) -> Result<String> {
    Ok(line_or_end(prompt)?.unwrap_or_default())
}

/// `line`, with `None` for the end of input (Ctrl-D, a hung-up terminal)
/// where an empty answer would mean "the default".
pub(crate) fn line_or_end(prompt: &str) -> Result<Option<String>> {
    let tty = open_tty().map_err(|e| {
        Error::new(format!(
            "cannot open the terminal: {}",
            crate::error::describe_io(&e)
        ))
    })?;
    let mut w = &tty;
    let _ = w.write_all(prompt.as_bytes());
    let _ = w.flush();
    let mut line = String::new();
    let n = io::BufReader::new(&tty).read_line(&mut line).map_err(|e| {
        Error::new(format!(
            "cannot read from the terminal: {}",
            crate::error::describe_io(&e)
        ))
    })?;
    if n == 0 {
        let _ = w.write_all(b"\n");
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// Asks a yes/no question on the terminal; anything but y/yes is no.
pub(crate) fn confirm(question: &str) -> Result<bool> {
    let answer = line(question)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

#[allow(clippy::disallowed_methods, reason = "term owns /dev/tty")]
fn open_tty() -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

/// Whether a terminal can be opened for prompts (and an editor).
pub(crate) fn have_terminal() -> bool {
    open_tty().is_ok()
}

/// Whether an error opening or using `/dev/tty` means there is no terminal.
pub(crate) fn no_terminal(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    [
        Errno::NXIO,
        Errno::NOTTY,
        Errno::NOENT,
        Errno::NODEV,
        Errno::ACCESS,
    ]
    .iter()
    .any(|n| code == Some(n.raw_os_error()))
        || e.kind() == io::ErrorKind::UnexpectedEof
}

/// Prints `vault: warning: …` on stderr.
pub(crate) fn warn(msg: &str) {
    output::stderr_painted_line(&format!(
        "vault: {}: {}",
        paint("warning", "33"),
        output::one_line(msg)
    ));
}

/// Prints `vault: note: …` on stderr.
pub(crate) fn note(msg: &str) {
    output::stderr_painted_line(&format!(
        "vault: {}: {}",
        paint("note", "36"),
        output::one_line(msg)
    ));
}

/// Prints an error as `vault: error: …` and its `hint: …` on stderr;
/// nothing for a closed stdout, which ends `vault` quietly.
pub(crate) fn report(e: &Error) {
    if e.is_quiet() {
        return;
    }
    output::stderr_painted_line(&format!(
        "vault: {}: {}",
        paint("error", "31"),
        output::one_line(e.message())
    ));
    if let Some(h) = e.hint_text() {
        output::stderr_painted_line(&format!("{}: {}", paint("hint", "36"), output::one_line(h)));
    }
}

/// Colour for stderr labels: only on a terminal, and never with `NO_COLOR`
/// set (no-color.org).
fn paint(label: &str, sgr: &str) -> String {
    let wanted =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if wanted {
        format!("\x1b[1;{sgr}m{label}\x1b[0m")
    } else {
        label.to_string()
    }
}
