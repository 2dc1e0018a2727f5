//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

// A test crate has no outside to keep things from: `pub` in its modules is
// how they share helpers, which the package-wide lint would refuse.
#![allow(unreachable_pub)]
// clippy.toml's file-write and terminal rules guard the product; tests make
// their fixtures and damage by writing files directly.
#![allow(clippy::disallowed_methods)]

mod support;

mod agent;
mod atomic_writes;
mod badinput;
mod ci;
mod concurrency;
mod crash;
mod doctor;
mod dotenv;
mod environments;
mod file_faults;
mod files;
mod fuzz_seeds;
mod git;
mod git_merge;
mod hardening;
mod history;
mod identity;
mod init;
mod inputs;
mod man;
mod messages;
mod page_reads;
mod plaintext;
mod projects;
mod recovery;
mod regression;
mod rotation;
mod run;
mod secret;
mod suggestions;
mod team;
mod templates;
mod terminal;
mod trust;
mod unchanged;
