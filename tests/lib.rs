//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod agent;
mod badinput;
mod dotenv;
mod fuzz_seeds;
mod init;
mod inputs;
mod invariants;
mod man;
mod polish;
mod regression;
mod reliability;
mod run;
mod secret;
mod team;
