//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod agent;
mod atomic_writes;
mod badinput;
mod concurrency;
mod crash;
mod doctor;
mod dotenv;
mod file_faults;
mod fuzz_seeds;
mod hardening;
mod init;
mod inputs;
mod man;
mod plaintext;
mod recovery;
mod regression;
mod run;
mod secret;
mod suggestions;
mod team;
mod templates;
mod terminal;
