//! The bodies of the fuzz targets. `tests/fuzz_seeds.rs` in the main crate
//! includes this very file and runs every seed in `fuzz/seeds/<target>/`
//! through it, so CI exercises the same code the fuzzers do.
//!
//! Each function must return normally on any input: an `Err` from `vault`
//! is the right answer to bad bytes; a panic, a hang or an abort is a bug.

use vault::testing::{self as vault_api, Options};

/// A fixed identity for fuzzing only; the seeds in `seeds/vault_load/` are
/// encrypted to it. It protects nothing.
pub const FUZZ_IDENTITY: &str =
    "AGE-SECRET-KEY-1V706UMM6ZCR4N3M8KNPXQHNV4EJ5G0J9AKQHQ4U09EPC9GQSS7QQHW5SCS";

/// `dotenv::parse` with every option, and the round trips `export` promises:
/// whatever parses, rendered as dotenv, parses back to the same values;
/// rendered as JSON, is JSON with the same values.
pub fn dotenv_parse(data: &[u8]) {
    let lookup = |name: &str| (name == "HOME").then(|| "/home/fuzz".to_string());
    for (expand, skip_invalid) in [(true, false), (false, false), (true, true)] {
        let opts = Options {
            expand,
            skip_invalid,
        };
        let _ = vault_api::parse(data, &opts, &lookup);
    }
    let Ok(parsed) = vault_api::parse(data, &Options::default(), &|_| None) else {
        return;
    };
    // Values with NUL cannot be stored (names::SecretValue refuses them).
    let pairs: Vec<(&str, &str)> = parsed
        .entries
        .iter()
        .filter(|e| !e.value.contains('\0'))
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let text = vault_api::render_dotenv(&pairs);
    let back = match vault_api::parse(text.as_bytes(), &Options::default(), &|_| None) {
        Ok(back) => back,
        Err(e) => panic!("rendered dotenv does not parse: {e}"),
    };
    let back: Vec<(&str, &str)> = back
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(pairs, back, "dotenv round trip");
    let json = vault_api::render_json(&pairs);
    let value: serde_json::Value = serde_json::from_str(&json).expect("rendered JSON parses");
    let object = value.as_object().expect("rendered JSON is an object");
    assert_eq!(object.len(), pairs.len());
    for (k, v) in &pairs {
        assert_eq!(object[*k].as_str(), Some(*v), "JSON round trip");
    }
}

/// Arbitrary bytes as a vault file: age header, STREAM payload, then
/// SQLite and the schema check. Loads must fail cleanly, never panic.
pub fn vault_load(data: &[u8]) {
    let keys = vault_api::parse_identity_file(FUZZ_IDENTITY.as_bytes(), "fuzz")
        .expect("the fuzz identity parses");
    if let Ok(conn) = vault_api::load_bytes(data, &keys) {
        read_everything(&conn);
    }
}

/// Arbitrary bytes as the decrypted database: `deserialize`, the schema
/// check and migrations, the queries every command runs, then a write and
/// the serialization a save does.
pub fn db_load(data: &[u8]) {
    if let Ok(mut conn) = vault_api::load_plaintext(data) {
        read_everything(&conn);
        let name = vault::testing::SecretName::parse("fuzz").expect("a valid name");
        let key = vault::testing::EnvKey::parse("KEY").expect("a valid key");
        let value = vault::testing::SecretValue::new(&key, "value".to_string().into())
            .expect("a valid value");
        // A write names its author (history records it), as vault.rs does.
        let _ = vault_api::set_author(&conn, "age1fuzz");
        let _ = vault_api::create_secret(&conn, "main", &name, &[(key, value)], true);
        vault_api::exercise_history(&conn, &name);
        let _ = vault_api::delete(&conn, "main", &name);
        let _ = conn.serialize(rusqlite::MAIN_DB);
    }
}

/// What `secret list`, `secret show` and `recipients list` read.
fn read_everything(conn: &rusqlite::Connection) {
    let _ = vault_api::recipients(conn);
    let _ = vault_api::recipients_info(conn);
    if let Ok(list) = vault_api::list(conn, None) {
        let _ = vault_api::envs(conn);
        for s in list {
            if let Ok(name) = vault::testing::SecretName::parse(&s.name) {
                let _ = vault_api::info(conn, &s.env, &name);
                let _ = vault_api::entries(conn, &s.env, &name);
            }
        }
    }
}

/// A request to the unlock agent, as any process of the same user could send
/// it: malformed JSON, stanzas and operations must get an error answer, never
/// a panic, and no answer may ever hold the identity.
pub fn agent_request(data: &[u8]) {
    let keys = vault_api::parse_identity_file(FUZZ_IDENTITY.as_bytes(), "fuzz")
        .expect("the fuzz identity parses");
    let state = vault::testing::AgentState::new(keys, 0);
    let (answer, _stop) = vault::testing::respond(&state, data);
    assert!(!answer.is_empty(), "every request gets an answer");
    assert!(
        !answer.windows(15).any(|w| w == b"AGE-SECRET-KEY-"),
        "the agent never hands out the identity"
    );
}
