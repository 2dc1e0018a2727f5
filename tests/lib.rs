//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod agent;
mod badinput;
mod concurrency;
mod crash;
mod dotenv;
mod fuzz_seeds;
mod init;
mod inputs;
mod man;
mod regression;
mod run;
mod secret;
mod team;
mod templates;

