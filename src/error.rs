//! The one error type. Every failure a user can cause ends up here, with the
//! exit code it maps to and, where there is one, a hint naming the command
//! that fixes it. Messages name keys, files and line numbers, never values.

use std::{fmt, io, path::Path};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and how the process should exit because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Anything `vault` refuses or fails at: exit 1.
    Vault,
    /// A command line clap could not reject by itself: exit 2.
    Usage,
    /// `run` found the command but could not execute it: exit 126.
    NotExecutable,
    /// `run` could not find the command: exit 127.
    NotFound,
    /// stdout was closed by its reader (EPIPE): stop, say nothing, exit 0.
    Quiet,
}

pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
    /// Raised by the data rather than by the request (SQLite refusing a
    /// query on a BLOB value, say): a write that meets it checks the vault
    /// and reports the damage it finds (`vault::read_modify_write`).
    data_fault: bool,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Vault,
            message: message.into(),
            hint: None,
            data_fault: false,
        }
    }

    /// Marks this error as raised by the data (see `data_fault`).
    pub(crate) fn data_fault(mut self) -> Self {
        self.data_fault = true;
        self
    }

    /// Whether the data raised it, which may then be damaged.
    pub(crate) fn is_data_fault(&self) -> bool {
        self.data_fault
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::new(message).kind(Kind::Usage)
    }

    /// The reader of stdout went away (`vault secret list | head -1`).
    pub(crate) fn closed_stdout() -> Self {
        Error::new("stdout was closed").kind(Kind::Quiet)
    }

    /// Whether this ends `vault` without a word (see `Kind::Quiet`).
    pub(crate) fn is_quiet(&self) -> bool {
        self.kind == Kind::Quiet
    }

    pub(crate) fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An I/O failure on `path`, worded for a person ("permission denied").
    pub(crate) fn io(action: &str, path: &Path, err: io::Error) -> Self {
        Error::io_on(&format!("{action} {}", path.display()), &err)
    }

    /// "cannot {what}: {reason}" for an I/O failure on something that is not
    /// a path (stdout, the terminal), with the disk-full hint where it fits.
    pub(crate) fn io_on(what: &str, err: &io::Error) -> Self {
        let reason = describe_io(err);
        let e = Error::new(format!("cannot {what}: {reason}"));
        if is_disk_full(err) {
            e.hint(DISK_FULL)
        } else {
            e
        }
    }

    /// `io` for a step of replacing `target` (temp file, write, rename):
    /// the disk-full hint says that `target`, and no other file, is
    /// unchanged (`vault allow` said "the old vault file" of allowed.json).
    pub(crate) fn io_replacing(action: &str, path: &Path, target: &Path, err: io::Error) -> Self {
        let full = is_disk_full(&err);
        let e = Error::io(action, path, err);
        if full {
            e.hint(format!("{DISK_FULL}; {} is unchanged", target.display()))
        } else {
            e
        }
    }

    /// This error placed in a context ("FILE, line 3: …"): the message is
    /// prefixed, the kind and hint are kept. Re-wrapping by hand, as
    /// `Error::new(format!("…: {}", e.message()))`, loses the hint.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// What kind of error this is (its exit code).
    pub(crate) fn kind_of(&self) -> Kind {
        self.kind
    }

    pub(crate) fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Vault => 1,
            Kind::Usage => 2,
            Kind::NotExecutable => 126,
            Kind::NotFound => 127,
            Kind::Quiet => 0,
        }
    }
}

// `Debug` is what `?` in a test prints; keep it as safe as `Display`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // A database read through the VFS (issue 20) fails with an I/O
        // error when a chunk fails to authenticate.
        if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::DatabaseCorrupt)
        ) {
            return Error::new(
                "the vault file is damaged: a part of it fails to decrypt or authenticate",
            )
            .hint("restore it from a backup or from version control; `vault doctor` shows more");
        }
        // Statements are parameterised, so SQLite's message never holds a value.
        Error::new(format!("database error: {e}"))
            .hint("`vault doctor` checks the vault file; please report this if it persists")
            .data_fault()
    }
}

const DISK_FULL: &str = "free some disk space (or raise the file-size limit) and try again";

fn is_disk_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == libc_efbig() || code == libc_enospc())
}

fn libc_efbig() -> i32 {
    rustix::io::Errno::FBIG.raw_os_error()
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// `io::Error`'s Display appends "(os error N)"; people need only the words.
pub(crate) fn describe_io(err: &io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
    .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_hint_and_kind() {
        let e = Error::usage("bad key")
            .hint("keys are portable names")
            .context("a.env, line 3");
        assert_eq!(e.message(), "a.env, line 3: bad key");
        assert_eq!(e.hint_text(), Some("keys are portable names"));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn io_on_words_the_reason_and_hints_at_a_full_disk() {
        let full = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let e = Error::io_on("write to stdout", &full);
        assert_eq!(
            e.message(),
            "cannot write to stdout: no space left on device"
        );
        assert!(e.hint_text().unwrap().contains("free some disk space"));
        let e = Error::io(
            "read",
            Path::new("/x"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(e.message(), "cannot read /x: entity not found");
        assert_eq!(e.hint_text(), None);
    }
}
