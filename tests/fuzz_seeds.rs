//! The fuzz targets' seed corpora as ordinary tests: every file in
//! `fuzz/seeds/<target>/` goes through the target's own body (the fuzz
//! crate's `src/lib.rs`, included here), so `cargo test` in CI catches a
//! seed that panics without needing nightly or libFuzzer. RELIABILITY.md
//! has the commands that run the real fuzzers.

use std::{fs, path::PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod harness;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "{target} has too few seeds: {out:?}");
    out
}

/// Runs `body` on each seed, naming the seed that panics.
fn run(target: &str, body: fn(&[u8])) -> usize {
    let seeds = seeds(target);
    for (path, bytes) in &seeds {
        let r = std::panic::catch_unwind(|| body(bytes));
        assert!(r.is_ok(), "{target}: seed {} panics", path.display());
    }
    seeds.len()
}

#[test]
fn dotenv_parse_seeds() {
    run("dotenv_parse", harness::dotenv_parse);
}

/// The real-world corpus (support::dotenv_corpus: required in CI), through
/// the same body: the round trips hold on files projects really have.
#[test]
fn dotenv_parse_real_world_corpus() {
    let Some(corpus) = crate::support::dotenv_corpus() else {
        return;
    };
    let entries = fs::read_dir(corpus.join("files")).unwrap();
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            harness::dotenv_parse(&fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn vault_load_seeds() {
    run("vault_load", harness::vault_load);
}

/// The seed that is a real vault encrypted to the fuzz identity does load,
/// so the fuzzer starts from a file that reaches SQLite, not only age.
#[test]
fn vault_load_seed_reaches_the_database() {
    let keys =
        vault::testing::parse_identity_file(harness::FUZZ_IDENTITY.as_bytes(), "fuzz").unwrap();
    for seed in ["vault-page512.age", "vault-armored.age"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/vault_load")
            .join(seed);
        let conn = vault::testing::load_bytes(&fs::read(path).unwrap(), &keys).unwrap();
        assert_eq!(
            vault::testing::list(&conn, None).unwrap().len(),
            2,
            "{seed}"
        );
    }
}

#[test]
fn db_load_seeds() {
    run("db_load", harness::db_load);
}

#[test]
fn agent_request_seeds() {
    run("agent_request", harness::agent_request);
    // The valid seed reaches the unwrap path and gets a file key back.
    let keys =
        vault::testing::parse_identity_file(harness::FUZZ_IDENTITY.as_bytes(), "fuzz").unwrap();
    let state = vault::testing::AgentState::new(keys, 0);
    let valid = fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/agent_request/unwrap-valid.json"),
    )
    .unwrap();
    let (answer, _) = vault::testing::respond(&state, &valid);
    assert_eq!((answer[0], answer.len()), (b'K', 17));
}
