//! The process state `vault` hardens at start (DESIGN.md invariant 7), and
//! what it was before, so that `run` can hand its child the caller's.

use std::sync::{Arc, atomic::AtomicBool};

/// The process settings `vault` hardens at start (DESIGN.md invariant 7),
/// as they were before, so that `run` can give its child the caller's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hardening {
    umask: rustix::fs::Mode,
    core: rustix::process::Rlimit,
}

impl Hardening {
    /// umask 077; soft core limit 0 (the hard limit untouched, so it can be
    /// restored); not dumpable; SIGXFSZ handled, so a write past the
    /// file-size limit fails with EFBIG instead of killing us mid-write.
    pub(crate) fn apply() -> Hardening {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let core = getrlimit(Resource::Core);
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: core.maximum,
            },
        );
        #[cfg(target_os = "linux")]
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
        // A handled signal resets to default on exec; an ignored one would
        // stay ignored in `run`'s child.
        let _ = signal_hook::flag::register(
            signal_hook::consts::SIGXFSZ,
            Arc::new(AtomicBool::new(false)),
        );
        Hardening { umask, core }
    }

    /// Puts back the caller's umask and core limit (right before exec).
    pub(crate) fn restore(&self) {
        rustix::process::umask(self.umask);
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, self.core);
    }

    /// Hardens again after `restore`: `run --redact` gives its child the
    /// caller's settings only for as long as spawning it takes, and stays
    /// the parent holding the secrets.
    pub(crate) fn reapply(&self) {
        use rustix::process::{Resource, Rlimit, setrlimit};
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: self.core.maximum,
            },
        );
    }
}
