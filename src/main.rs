//! The `vault` binary: everything lives in the library (`vault::main`).

fn main() {
    std::process::exit(vault::main());
}
