//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod badinput;
mod dotenv;
mod fuzz_seeds;
mod init;
mod invariants;
mod regression;
mod reliability;
mod secret;
mod team;
