//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod agent;
mod dotenv;
mod init;
mod invariants;
mod man;
mod polish;
mod run;
mod secret;
mod team;
