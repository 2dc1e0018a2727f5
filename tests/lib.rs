//! Integration tests: the real binary, in a temporary HOME, with no
//! controlling terminal, `VAULT_*` and `RUST_BACKTRACE` cleared.

mod support;

mod init;
mod invariants;
mod run;
mod secret;
