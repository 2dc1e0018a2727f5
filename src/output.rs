//! The one place that writes to stdout and stderr (DESIGN "v2: Hardening",
//! Output). `println!` and `eprintln!` panic when a write fails, so
//! `vault secret list | head -1` on a large vault, or `vault doctor >
//! /dev/full`, exited 101 with a panic message. Here:
//!
//! - a closed stdout (EPIPE: the reader is gone) ends `vault` quietly,
//!   with status 0, as ripgrep does: the reader took what it wanted;
//! - any other write error (a full disk) is one `vault: error:` line and
//!   exit 1;
//! - stderr (messages, warnings, the error itself) is best effort: when it
//!   cannot be written there is nowhere left to say so.

use std::io::{self, Write};

use crate::error::{Error, Result, describe_io};

/// Writes `text` to stdout and flushes it.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| stdout_error(&e))
}

/// What a failed write to stdout becomes.
pub(crate) fn stdout_error(e: &io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::closed_stdout()
    } else {
        Error::new(format!("cannot write to stdout: {}", describe_io(e)))
    }
}

/// One line on stderr; a failure to write it is ignored. A control
/// character in `text` (a newline or an escape in a file name, a git PATH)
/// is written escaped, as `\n` or `\u{1b}`: a message stays one line and
/// never drives the terminal.
pub(crate) fn stderr_line(text: &str) {
    stderr_painted_line(&one_line(text));
}

/// `text` with every private key masked (`names::mask_key_material`) and
/// every control character escaped (`char::escape_debug`).
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let text = crate::names::mask_key_material(text);
    if !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `stderr_line` for a line whose control characters are meant: the
/// colour codes `term` puts around a label (its parts escaped already).
pub(crate) fn stderr_painted_line(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// `println!` that returns the write's `Result` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics (for messages, never for values).
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(&format!($($arg)*))
    };
}

pub(crate) use {note, out};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_control_characters_only() {
        assert_eq!(
            one_line("cannot read /tmp/a b/é.env"),
            "cannot read /tmp/a b/é.env"
        );
        assert_eq!(
            one_line("cannot read /tmp/nl\ndir/\u{1b}[2J.env\r\t"),
            "cannot read /tmp/nl\\ndir/\\u{1b}[2J.env\\r\\t"
        );
    }

    #[test]
    fn a_closed_pipe_is_quiet_and_other_failures_are_errors() {
        let pipe = stdout_error(&io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_quiet());
        assert_eq!(pipe.exit_code(), 0);
        let full = stdout_error(&io::Error::from_raw_os_error(
            rustix::io::Errno::NOSPC.raw_os_error(),
        ));
        assert!(!full.is_quiet());
        assert_eq!(full.exit_code(), 1);
        assert_eq!(
            full.message(),
            "cannot write to stdout: no space left on device"
        );
    }
}
